"""Database layer: typed models, engine/session factory and migrations."""

from bot.db.session import Database, make_engine

__all__ = ["Database", "make_engine"]

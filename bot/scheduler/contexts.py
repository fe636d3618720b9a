"""Compliance inputs for a batch of borrowers: the loader the planner calls.

The loader belongs to the compliance engine (:func:`bot.compliance.loader.load_contexts`:
a fixed number of queries per chunk of borrowers, never one per borrower).  The
planner takes it as a parameter so tests can pass their own; this module names
its type and finds the default lazily (``bot.compliance`` itself stays pure and
does not import the database layer).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.orm import Session

from bot.compliance.types import HistoryEntry, StopState, Subject

Context = tuple[Subject, list[HistoryEntry], StopState]
#: ``load(session, borrower_ids, since) -> {borrower_id: (Subject, history, StopState)}``
#: with ``StopState.paid`` False (the planner sets it per installment).
ContextLoader = Callable[[Session, Collection[str], datetime], dict[str, Context]]


def default_loader() -> ContextLoader:
    """The compliance engine's set-based loader."""
    from bot.compliance.loader import load_contexts

    return load_contexts

"""Hooks for what later parts of the bot add to the demo.

A :class:`DemoExtension` is given the running :class:`~bot.demo.world.World` and
is called at three points:

* :meth:`~DemoExtension.setup` once the servers run and the portfolio is imported,
  before the borrowers are cast and the dispatcher's adapters open (the calls add
  the voice channel and make the Korean clips the personas speak; the console
  creates a demo user);
* :meth:`~DemoExtension.after_dispatch` after every dispatch pass of the day loop,
  at the simulated instant: it may act (dial the voice attempts that are due,
  with the sandbox's personas answering as their ``call`` behaviour says) and
  returns counts that the day table shows in columns of their own;
* :meth:`~DemoExtension.closing_lines` at the end, while the servers still run:
  lines printed after the summary (the console's address and its demo login).

``bot demo`` runs :func:`bot.demo.default_extensions` (:class:`bot.demo.calls.VoiceCalls`,
:class:`bot.demo.console.DemoConsole`); add an extension there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.demo.world import World

__all__ = ["DemoExtension"]


class DemoExtension:
    """Does nothing; subclasses override what they need."""

    name = "extension"

    def setup(self, world: World) -> None:
        return None

    def after_dispatch(self, world: World, at: datetime) -> Mapping[str, int]:
        return {}

    def closing_lines(self, world: World) -> list[str]:
        return []

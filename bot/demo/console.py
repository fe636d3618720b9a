"""The supervisor console on the demo's data: a demo user, and where to sign in.

The console is part of the bot's web app (docs/console.md), which the demo runs
anyway for the webhooks; so once the week is over the calls, borrowers, tasks
and the dashboard are there to look at, at ``http://127.0.0.1:<port>/console``
(``bot demo`` keeps serving until Ctrl-C unless ``--no-serve``).

The login: user ``demo``, role ``supervisor`` (reviews calls, corrects intents,
works tasks, reveals a field with a reason; not the audit log), made with
:func:`bot.console.users.ensure_user` in the fresh database of each run.  Its
password is generated (random, 16 characters) the first time and kept in
``DIR/console-login.txt`` (mode 0600), then reused by later runs in the same
folder: not a fixed password that every reader of the docs knows (the console
listens on 127.0.0.1, which any user of a shared machine can reach), and the
same from one run to the next, so the output repeats and the login stays the
one you noted.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from bot.demo.extensions import DemoExtension

if TYPE_CHECKING:
    from bot.demo.world import World

__all__ = ["DEMO_ROLE", "DEMO_USER", "LOGIN_FILE", "DemoConsole", "demo_password"]

DEMO_USER = "demo"
DEMO_ROLE = "supervisor"
LOGIN_FILE = "console-login.txt"
_PREFIX = "password: "


def demo_password(path: Path) -> str:
    """The demo user's password kept at ``path``; a new one (written with mode 0600) if there is none."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(_PREFIX):
                password = line[len(_PREFIX):].strip()
                if 12 <= len(password) <= 128 and password.isprintable() and " " not in password:
                    if path.stat().st_mode & 0o077:
                        os.chmod(path, 0o600)
                    return password
    except (OSError, UnicodeDecodeError):
        pass
    password = secrets.token_urlsafe(12)  # 16 characters
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# The demo console's login (bot demo); local use only.\n"
                 f"user: {DEMO_USER}\n{_PREFIX}{password}\n")
    return password


class DemoConsole(DemoExtension):
    """Creates the demo's console user; the closing lines say where to sign in.

    ``serving``: the web app stays up after the week (``bot demo`` without
    ``--no-serve``), so the closing lines give the console's address.
    """

    name = "console"

    def __init__(self, *, serving: bool = False) -> None:
        self.serving = serving
        self.password: str | None = None

    def setup(self, world: World) -> None:
        from bot.console.users import ensure_user

        world.progress(f"create the console user {DEMO_USER!r} ({DEMO_ROLE}); its password is kept in "
                       f"{world.directory / LOGIN_FILE}")
        self.password = demo_password(world.directory / LOGIN_FILE)
        ensure_user(world.db, DEMO_USER, DEMO_ROLE, self.password, clock=world.clock)

    def closing_lines(self, world: World) -> list[str]:
        login = f"user {DEMO_USER}, password {self.password} (also in {world.directory / LOGIN_FILE})"
        if not self.serving:
            return ["", "The supervisor console (calls, transcripts, borrowers, tasks) was served during the run;",
                    "`bot demo` in a terminal, without --no-serve, keeps it up at the end. Its login:",
                    f"  {login}"]
        base = world.web.base_url
        return ["", "The supervisor console, on the demo's data (Ctrl-C to stop):",
                f"  {base}/console          sign in with {login}",
                f"  {base}/console/calls    every call, masked; a call's page has its transcript and audio",
                f"  {base}/console/calls?queue=1   the review queue: calls that need a person, most urgent first"]

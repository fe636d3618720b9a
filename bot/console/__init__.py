"""The supervisor console: people review what the bot did (docs/console.md).

Served by the bot's web app under ``/console``:

* :mod:`bot.console.users` — console users, roles, argon2 password hashes,
  sign-in with lock-out (``bot user``; :func:`~bot.console.users.ensure_user`
  for the demo);
* :mod:`bot.console.sessions` — server-side sessions (the cookie holds a
  random token, the database its SHA-256) and their CSRF tokens;
* :mod:`bot.console.security` — the security headers of every console response;
* :mod:`bot.console.filters` — every query and form value checked before use;
* :mod:`bot.console.queries` — read models of the pages (masked);
* :mod:`bot.console.actions` — what a person may change: reviews, notes,
  corrections and their effects on the borrower, tasks, reveals (all audited);
* :mod:`bot.console.charts` — small SVG charts drawn on the server;
* :mod:`bot.console.web` / :mod:`bot.console.routes` — the FastAPI plumbing and pages.

Nothing here imports the CLI, the channel adapters, the dispatcher or the sandbox.
"""

"""The ``bot`` command (also ``python -m bot``).

Exit status: 0 success, 1 the work was done but some input was rejected,
2 usage error, unknown id, unreadable input or bad configuration, 3 the database
could not be reached (one line on stderr, no traceback, no SQL).
"""

from __future__ import annotations

import sys

import click

from bot import __version__
from bot.cli.common import App, configure_logging, err_console
from bot.errors import BotError, DatabaseUnavailable, DeliveryError


# name -> (module, attribute, one-line help).  Modules are imported only when their
# command runs, so `bot intent` does not pay for the sandbox or the database layer.
# tests/test_structure.py checks this table against every module's COMMANDS.
COMMAND_TABLE: dict[str, tuple[str, str, str]] = {
    "init": ("bot.cli.data_cmds", "init_cmd", "Create or upgrade the database schema."),
    "import": ("bot.cli.import_cmd", "import_cmd", "Load portfolio CSV files (borrowers, loans, ...)."),
    "sample-data": ("bot.cli.sample_cmd", "sample_data_cmd", "Write a reproducible sample portfolio."),
    "show": ("bot.cli.show_cmd", "show_cmd", "One borrower with loans, history and consents (masked)."),
    "summary": ("bot.cli.show_cmd", "summary_cmd", "The portfolio at a glance."),
    "check": ("bot.cli.check_cmd", "check_cmd", "May this borrower be contacted on a channel at an instant?"),
    "plan": ("bot.cli.plan_cmd", "plan_cmd", "Plan today's contacts (records them; --dry-run to only show)."),
    "risk": ("bot.cli.risk_cmd", "risk_cmd", "Borrowers to watch: ranked by risk score, with the reasons (masked)."),
    "why": ("bot.cli.plan_cmd", "why_cmd", "Explain step by step what would happen to a borrower and why."),
    "run": ("bot.cli.run_cmd", "run_cmd", "Run the service: scheduler and web app (webhooks, unsubscribe)."),
    "purge": ("bot.cli.purge_cmd", "purge_cmd", "Delete what is past its retention (legal holds kept; --dry-run)."),
    "tick": ("bot.cli.tick_cmd", "tick_cmd", "Plan, then send what is due once (re-checked at send time)."),
    "attempts": ("bot.cli.attempts_cmd", "attempts_cmd", "List contact attempts that need a person (unknown, ...)."),
    "call": ("bot.cli.call_cmd", "call_cmd", "Place one scripted call to a borrower now (checked by the rules)."),
    "intent": ("bot.cli.intent_cmd", "intent_cmd", "Classify a borrower's reply (intent and promise date)."),
    "transcribe": ("bot.cli.transcribe_cmd", "transcribe_cmd", "Recognise a recorded answer (WAV) and classify it."),
    "sandbox": ("bot.cli.sandbox_cmd", "sandbox", "Run the local Twilio-compatible sandbox server."),
    "demo": ("bot.cli.demo_cmd", "demo_cmd", "Run the demo on a local SQLite database."),
    "user": ("bot.cli.user_cmd", "user_group", "Console users: add, list, disable, enable, unlock."),
    "apikey": ("bot.cli.apikey_cmd", "apikey_group", "REST API keys: create (shown once), list, revoke."),
    "report": ("bot.cli.report_cmd", "report_cmd", "Effectiveness: contact, promise, cure, recovery rates, cost."),
    "experiment": ("bot.cli.experiment_cmd", "experiment_group",
                   "A/B experiment status: rates with intervals, p-values, MDE, guardrails."),
    "webhook": ("bot.cli.webhook_cmd", "webhook_group", "Signed event webhooks: add, list, remove, deliveries, replay."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_TABLE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMAND_TABLE:
            return command
        import importlib

        module, attr, _ = COMMAND_TABLE[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMAND_TABLE[name][2]) for name in sorted(COMMAND_TABLE)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="bot")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="BOT_CONFIG_FILE",
    help="TOML configuration file (environment variables override it).",
)
@click.option(
    "--database-url",
    help="Database URL; overrides BOT_DATABASE_URL (default: sqlite:///bot.db).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines as text or JSON objects (default: BOT_LOG_FORMAT, else text); masked either way.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, database_url: str | None, verbose: int,
        log_format: str | None) -> None:
    """Payment reminders and voice collection for lenders.

    \b
    Typical first run:
      bot init                           create or upgrade the database
      bot sample-data demo/ --borrowers 1000
      bot import demo/*.csv              load a portfolio
      bot show B000001                   inspect one borrower (masked)
    """
    configure_logging(verbose, log_format)
    app = App(config_file=config_file, database_url=database_url)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turns the bot's deliberate errors into a message and an exit status."""
    try:
        status = cli.main(args=argv, prog_name="bot", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DeliveryError as exc:
        _error(exc)
        sys.exit(1)
    except DatabaseUnavailable as exc:
        _error(exc)
        sys.exit(3)
    except BotError as exc:
        _error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        outage = _database_outage(exc)
        if outage is None:
            raise
        _error(outage)
        sys.exit(3)
    sys.exit(status if isinstance(status, int) else 0)


def _database_outage(exc: Exception) -> DatabaseUnavailable | None:
    """A lost database connection anywhere in ``exc`` (a traceback would print SQL and parameters)."""
    if "sqlalchemy" not in sys.modules:  # nothing touched the database
        return None
    from bot.db.retry import describe, outage_in

    cause = outage_in(exc)
    if cause is None:
        return None
    return DatabaseUnavailable(f"the database is unavailable ({describe(cause)})")


def _error(exc: Exception) -> None:
    err_console.print("[red]error:[/red] ", end="")
    err_console.print(str(exc), markup=False, soft_wrap=True)

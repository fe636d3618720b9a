"""The ``bot`` command (also ``python -m bot``).

Exit status: 0 success, 1 the work was done but some input was rejected,
2 usage error, unknown id, unreadable input or bad configuration.
"""

from __future__ import annotations

import sys

import click

from bot import __version__
from bot.cli.common import App, configure_logging, err_console
from bot.errors import BotError, DeliveryError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, database_url: str | None, verbose: int) -> None:
    """Payment reminders and voice collection for lenders.

    \b
    Typical first run:
      bot init                           create or upgrade the database
      bot sample-data demo/ --borrowers 1000
      bot import demo/*.csv              load a portfolio
      bot show B000001                   inspect one borrower (masked)
    """
    configure_logging(verbose)
    app = App(config_file=config_file, database_url=database_url)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    """Add the commands of every ``bot/cli/*_cmd(s).py`` module (each lists them in COMMANDS)."""
    import importlib
    import pkgutil

    import bot.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.endswith(("_cmd", "_cmds")):
            module = importlib.import_module(f"bot.cli.{info.name}")
            for command in module.COMMANDS:
                cli.add_command(command)


_register()


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
    except BotError as exc:
        _error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def _error(exc: Exception) -> None:
    err_console.print("[red]error:[/red] ", end="")
    err_console.print(str(exc), markup=False)

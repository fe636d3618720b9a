"""The bot's exception tree.

::

    BotError                      base of everything the bot raises on purpose
    ├── ConfigError               a setting is missing or malformed (names the setting)
    ├── UsageError                bad command-line arguments (exit status 2)
    ├── NotFoundError             an id that is not in the database (exit status 2)
    ├── InputFileError            a file that cannot be read or has no known header (exit 2)
    ├── DatabaseUnavailable       the database could not be reached, even after retries (exit 3)
    └── DeliveryError             a channel could not deliver a message
        ├── TransientDeliveryError    retry later with backoff
        └── PermanentDeliveryError    record and never retry

    WebhookRejected               a request refused before it was processed (HTTP status, message)

Messages never contain raw personal data: they name the field, file and line.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class for errors the bot raises deliberately."""


class ConfigError(BotError):
    """A configuration setting is missing or malformed."""


class UsageError(BotError):
    """Command-line arguments that do not make sense."""


class NotFoundError(BotError):
    """An identifier that does not exist."""


class InputFileError(BotError):
    """An input file that cannot be read or understood as a whole."""


class DatabaseUnavailable(BotError):
    """The database could not be reached or the connection was lost, and retries did not help.

    The message names what was being done and the driver's error class, never SQL or parameters."""


class DeliveryError(BotError):
    """A channel failed to deliver a message."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (rate limit, 5xx, connection refused)."""


class PermanentDeliveryError(DeliveryError):
    """Never retry (invalid number, recipient opted out, not a mobile)."""


class ConfigurationDeliveryError(PermanentDeliveryError):
    """The provider refused because of the bot's own configuration (credentials, sender number,
    callback URL, a trial account, geographic permissions): never retried, since every try
    fails alike until a person fixes the setting the message names; the dispatcher logs it
    once per process as a configuration problem."""


class WebhookRejected(Exception):
    """A request refused before it was processed: HTTP status and a message naming what was wrong
    (the field, header or parameter); nothing was stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

"""Request parameters as the REST handlers see them, and the date filters of list requests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

#: parameter name -> every value sent for it, in order (repeated names such as MediaUrl)
FormValues = dict[str, list[str]]


def collect(items: Iterable[tuple[str, str]]) -> FormValues:
    values: FormValues = {}
    for name, value in items:
        values.setdefault(name, []).append(value)
    return values


def first(values: FormValues, name: str) -> str | None:
    """The last value sent for *name* (Twilio keeps the last of a repeated scalar), or None."""
    sent = values.get(name)
    return sent[-1] if sent else None


def parse_date_filter(text: str) -> date | datetime:
    """``YYYY-MM-DD``, an ISO 8601 date-time (``Z`` allowed) or an RFC 2822 date, as Twilio accepts."""
    text = text.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        instant = datetime.fromisoformat(iso)
    except ValueError:
        try:
            instant = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise ValueError("not a date") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)

"""Request parameters as the REST handlers see them, and the date filters of list requests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

from bot.sandbox.errors import TwilioApiError

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


DateFilter = tuple[str, date | datetime]  # (parameter name such as "DateSent<", value)


def date_filters(values: FormValues, names: Iterable[str]) -> list[DateFilter]:
    """The date filters among ``names`` that were sent, parsed; 400 (``TwilioApiError``) naming a bad one."""
    out: list[DateFilter] = []
    for name in names:
        raw = first(values, name)
        if raw:
            try:
                out.append((name, parse_date_filter(raw)))
            except ValueError:
                raise TwilioApiError(400, f"Invalid parameter {name}: not a date") from None
    return out


def date_matches(instant: datetime | None, name: str, value: date | datetime) -> bool:
    """Twilio's list date filters: ``Name`` is the same calendar day (GMT), ``Name<`` on or
    before, ``Name>`` on or after; a date compares days, a date-time compares instants.  An
    unset instant (a call not started) matches nothing."""
    if instant is None:
        return False
    left: date | datetime = instant if isinstance(value, datetime) else instant.date()
    if name.endswith("<"):
        return left <= value  # type: ignore[operator]
    if name.endswith(">"):
        return left >= value  # type: ignore[operator]
    return instant.date() == (value.date() if isinstance(value, datetime) else value)


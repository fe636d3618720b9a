"""Every value the console reads from a query string or a form, checked before use.

A value that is not allowed raises :class:`InvalidInput` naming the field
(never echoing the value); the page answers 400 with that message.  What
passes is a typed value that the queries bind as a parameter: nothing a
person types is ever put into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from bot.console.i18n import N_, Message
from bot.domain import Intent, TaskKind

__all__ = [
    "AuditFilters",
    "CallFilters",
    "EffectivenessFilters",
    "InvalidInput",
    "KNOWN_OUTCOMES",
    "NO_GROUPING",
    "REVEAL_FIELDS",
    "TaskFilters",
    "borrower_id",
    "choice",
    "default_report_window",
    "intent_value",
    "iso_date",
    "page_number",
    "parse_audit_filters",
    "parse_call_filters",
    "parse_effectiveness_filters",
    "parse_task_filters",
    "text",
]

#: Call outcomes the voice scripts record (bot.scripts Outcome kinds); stored values are accepted too.
KNOWN_OUTCOMES = ("promise", "paid_claim", "dispute", "hardship", "callback", "opt_out", "wrong_party",
                  "voicemail", "no_answer", "partial", "refused", "completed")
REVEAL_FIELDS = ("phone", "email", "name")
MAX_PAGE = 100_000
#: The Effectiveness page's grouping when none is asked for, and the value for no grouping (currency only).
DEFAULT_GROUPING = "channel"
NO_GROUPING = "total"
#: The longest window the Effectiveness page computes (a year and a day).
MAX_REPORT_DAYS = 366

_OUTCOME_RE = re.compile(r"^[a-z_]{1,32}$")
_LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ACTION_RE = re.compile(r"^[a-z_.]{1,64}$")


class InvalidInput(ValueError):
    """A query or form value that is not allowed; ``field`` names it, ``message`` (translatable,
    :class:`~bot.console.i18n.Message` or a string marked ``N_``) says what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _one(params: Mapping[str, str], name: str) -> str:
    value = params.get(name) or ""
    if len(value) > 256:
        raise InvalidInput(name, N_("too long"))
    return value.strip()


def iso_date(value: str, field: str) -> date | None:
    if not value:
        return None
    if not _DATE_RE.match(value):
        raise InvalidInput(field, N_("must be a date as YYYY-MM-DD"))
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, N_("is not a real calendar date")) from None
    if not 2000 <= parsed.year <= 2100:
        raise InvalidInput(field, N_("must be between 2000 and 2100"))
    return parsed


def choice(value: str, field: str, allowed: Collection[str]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput(field, N_("is not one of the allowed values"))
    return value


def yes_no(value: str, field: str) -> bool | None:
    found = choice(value, field, ("yes", "no"))
    return None if found is None else found == "yes"


def page_number(value: str) -> int:
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidInput("page", Message(N_("must be a whole number from 1 to %(max)s"), max=MAX_PAGE))
    return int(value)


def intent_value(value: str, field: str = "intent") -> str | None:
    return choice(value, field, [i.value for i in Intent])


def borrower_id(value: str) -> str:
    if not _ID_RE.match(value or ""):
        raise InvalidInput("borrower", N_("is not a borrower id"))
    return value


def text(value: str | None, field: str, *, minimum: int = 1, maximum: int = 2000) -> str:
    """Free text from a form: stripped, with its length checked (it is redacted before storage)."""
    value = (value or "").strip()
    if len(value) < minimum:
        raise InvalidInput(field, N_("is required") if minimum <= 1
                           else Message(N_("needs at least %(n)s characters"), n=minimum))
    if len(value) > maximum:
        raise InvalidInput(field, Message(N_("is longer than %(n)s characters"), n=maximum))
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value):
        raise InvalidInput(field, N_("contains control characters"))
    return value


def _query(values: dict[str, object]) -> str:
    return urlencode({k: v for k, v in values.items() if v not in (None, "", False)})


@dataclass(frozen=True, slots=True)
class CallFilters:
    date_from: date | None = None
    date_to: date | None = None
    outcome: str | None = None
    intent: str | None = None
    flagged: bool | None = None
    low_confidence: bool = False
    locale: str | None = None
    reviewed: bool | None = None
    #: the review queue: only calls to review, most urgent first
    queue: bool = False
    page: int = 1

    def form_values(self) -> dict[str, str]:
        """The values as the filter form shows them."""
        def yn(value: bool | None) -> str:
            return "" if value is None else ("yes" if value else "no")

        return {"from": self.date_from.isoformat() if self.date_from else "",
                "to": self.date_to.isoformat() if self.date_to else "", "outcome": self.outcome or "",
                "intent": self.intent or "", "flagged": yn(self.flagged), "low": "1" if self.low_confidence else "",
                "locale": self.locale or "", "reviewed": yn(self.reviewed), "queue": "1" if self.queue else ""}

    def query(self, page: int | None = None) -> str:
        values: dict[str, object] = dict(self.form_values())
        values["page"] = page if page and page > 1 else None
        return _query(values)


def parse_call_filters(params: Mapping[str, str], outcomes: Collection[str] = KNOWN_OUTCOMES) -> CallFilters:
    date_from = iso_date(_one(params, "from"), "from")
    date_to = iso_date(_one(params, "to"), "to")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("to", N_("is before from"))
    outcome = _one(params, "outcome")
    if outcome and (not _OUTCOME_RE.match(outcome) or outcome not in outcomes):
        raise InvalidInput("outcome", N_("is not a known call outcome"))
    locale = _one(params, "locale")
    if locale and not _LOCALE_RE.match(locale):
        raise InvalidInput("locale", N_("must be a language tag such as en-US"))
    low = _one(params, "low")
    if low not in ("", "1"):
        raise InvalidInput("low", N_("must be 1 or empty"))
    queue = _one(params, "queue")
    if queue not in ("", "1"):
        raise InvalidInput("queue", N_("must be 1 or empty"))
    return CallFilters(
        date_from=date_from, date_to=date_to, outcome=outcome or None, intent=intent_value(_one(params, "intent")),
        flagged=yes_no(_one(params, "flagged"), "flagged"), low_confidence=low == "1", locale=locale or None,
        reviewed=yes_no(_one(params, "reviewed"), "reviewed"), queue=queue == "1",
        page=page_number(_one(params, "page")),
    )


@dataclass(frozen=True, slots=True)
class TaskFilters:
    kind: str | None = None
    assigned: str | None = None  # None any, "me", "none" unassigned, or a user name
    status: str = "open"  # open | closed | all
    page: int = 1

    def form_values(self) -> dict[str, str]:
        return {"kind": self.kind or "", "assigned": self.assigned or "", "status": self.status}

    def query(self, page: int | None = None) -> str:
        values: dict[str, object] = dict(self.form_values())
        values["page"] = page if page and page > 1 else None
        return _query(values)


def parse_task_filters(params: Mapping[str, str]) -> TaskFilters:
    assigned = _one(params, "assigned")
    if assigned and assigned not in ("me", "none") and not _USER_RE.match(assigned):
        raise InvalidInput("assigned", N_("must be me, none or a user name"))
    return TaskFilters(
        kind=choice(_one(params, "kind"), "kind", [k.value for k in TaskKind]),
        assigned=assigned or None,
        status=choice(_one(params, "status"), "status", ("open", "closed", "all")) or "open",
        page=page_number(_one(params, "page")),
    )


@dataclass(frozen=True, slots=True)
class AuditFilters:
    action: str | None = None  # prefix: "console." matches every console.* action
    actor: str | None = None
    subject: str | None = None
    page: int = 1

    def form_values(self) -> dict[str, str]:
        return {k: v or "" for k, v in asdict(self).items() if k != "page"}

    def query(self, page: int | None = None) -> str:
        values: dict[str, object] = dict(self.form_values())
        values["page"] = page if page and page > 1 else None
        return _query(values)


def parse_audit_filters(params: Mapping[str, str]) -> AuditFilters:
    action, actor, subject = _one(params, "action"), _one(params, "actor"), _one(params, "subject")
    if action and not _ACTION_RE.match(action):
        raise InvalidInput("action", N_("may hold lower-case letters, '_' and '.' only"))
    if actor and not _USER_RE.match(actor):
        raise InvalidInput("actor", N_("is not an actor name"))
    if subject and not _ID_RE.match(subject):
        raise InvalidInput("subject", N_("is not an id"))
    return AuditFilters(action or None, actor or None, subject or None, page_number(_one(params, "page")))


@dataclass(frozen=True, slots=True)
class EffectivenessFilters:
    """The Effectiveness page's window ``[date_from, date_to)`` (borrower-local days) and grouping."""

    date_from: date
    date_to: date
    by: str = DEFAULT_GROUPING  # a report dimension, or NO_GROUPING

    @property
    def dimensions(self) -> list[str]:
        return [] if self.by == NO_GROUPING else [self.by]

    def form_values(self) -> dict[str, str]:
        return {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(), "by": self.by}

    def query(self) -> str:
        return _query(dict(self.form_values()))


def default_report_window(today: date, days: int = 7) -> tuple[date, date]:
    """The last ``days`` days up to and including ``today``, as ``[from, to)``."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)


def parse_effectiveness_filters(params: Mapping[str, str], today: date,
                                dimensions: Collection[str]) -> EffectivenessFilters:
    """``from`` and ``to`` (default the last seven days up to ``today``), ``by`` one of
    ``dimensions`` or ``total``; ``from`` must be before ``to``, at most a year and a day apart."""
    default_from, default_to = default_report_window(today)
    date_from = iso_date(_one(params, "from"), "from") or default_from
    date_to = iso_date(_one(params, "to"), "to") or default_to
    if date_to <= date_from:
        raise InvalidInput("to", N_("must be after from (the window is [from, to), to excluded)"))
    if (date_to - date_from).days > MAX_REPORT_DAYS:
        raise InvalidInput("to", Message(N_("the window is at most %(n)s days"), n=MAX_REPORT_DAYS))
    by = choice(_one(params, "by"), "by", (NO_GROUPING, *dimensions)) or DEFAULT_GROUPING
    return EffectivenessFilters(date_from, date_to, by)

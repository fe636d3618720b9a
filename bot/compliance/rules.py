"""The rules: each judges one contact at one instant and says when it would allow it.

A rule is compiled once from its parameters (bot.compliance.config) and then
called for every check, so the hot path is plain attribute access and integer
comparisons.  ``evaluate(ctx, t, local)`` judges the contact at instant ``t``
(``local`` holds ``t`` in each candidate zone, computed once for all rules) and
returns a :class:`RuleResult`; when it blocks, ``next_allowed_at`` is the
earliest instant this rule alone would allow it (None: time will not help).

An allowed verdict is a shared constant unless the caller asked for an
explanation: building a detail string per rule per check would cost more than
the check itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.compliance.calendars import CalendarKey, blocked_days, day_name
from bot.compliance.config import (
    DailyCapParams,
    HolidayParams,
    PostConversationParams,
    RestDayParams,
    RollingCapParams,
    RuleParams,
    WindowParams,
)
from bot.compliance.reasons import Reason
from bot.compliance.types import HistoryEntry, RuleResult, StopState, Subject
from bot.compliance.zones import local_midnight as _local_midnight
from bot.compliance.zones import wall_time
from bot.domain import PHONE_CHANNELS, Channel

__all__ = ["Context", "FlagRule", "Rule", "compile_rule", "flags_clear", "stop_rules"]

_ONE_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)


class Context:
    """One check's inputs, shared by every rule."""

    __slots__ = ("at", "channel", "explain", "history", "loan_id", "state", "subject", "zone_names",
                 "zones")

    def __init__(
        self,
        subject: Subject,
        channel: Channel,
        at: datetime,
        history: Sequence[HistoryEntry],
        state: StopState,
        loan_id: str | None,
        zones: tuple[ZoneInfo, ...],
        zone_names: tuple[str, ...],
        explain: bool,
    ) -> None:
        self.subject = subject
        self.channel = channel
        self.at = at
        self.history = history
        self.state = state
        self.loan_id = loan_id
        self.zones = zones
        self.zone_names = zone_names
        self.explain = explain


@lru_cache(maxsize=8192)
def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return _local_midnight(day, tz)


def _ceil_minute(instant: datetime) -> datetime:
    if instant.second or instant.microsecond:
        return instant.replace(second=0, microsecond=0) + _MINUTE
    return instant


def _hhmm(local: datetime) -> str:
    return local.strftime("%H:%M")


class Rule:
    """Base of every rule: a name, the channels it applies to, shared verdicts."""

    __slots__ = ("channels", "name", "ok", "skipped")

    def __init__(self, name: str, channels: frozenset[Channel]) -> None:
        self.name = name
        self.channels = channels
        self.ok = RuleResult(rule=name, allowed=True)
        self.skipped = {
            ch: RuleResult(rule=name, allowed=True, detail=f"does not apply to {ch.value}")
            for ch in Channel
        }

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        raise NotImplementedError

    def allowed(self, ctx: Context, detail: str) -> RuleResult:
        return RuleResult(rule=self.name, allowed=True, detail=detail) if ctx.explain else self.ok

    def blocked(self, reason: str, until: datetime | None, detail: str) -> RuleResult:
        return RuleResult(rule=self.name, allowed=False, reason=reason, next_allowed_at=until,
                          detail=detail)


# --- stop conditions ------------------------------------------------------------------


class FlagRule(Rule):
    """A fact of the StopState that blocks until a person or the borrower changes it."""

    __slots__ = ("fine", "reason", "test", "why")

    def __init__(self, name: str, channels: frozenset[Channel], reason: Reason, why: str,
                 fine: str, test: Callable[[Context], bool]) -> None:
        super().__init__(name, channels)
        self.reason = reason
        self.why = why
        self.fine = fine
        self.test = test

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        if self.test(ctx):
            return self.blocked(self.reason, None, self.why.format(channel=ctx.channel.value,
                                                                holds=", ".join(ctx.state.holds)))
        return self.allowed(ctx, self.fine.format(channel=ctx.channel.value)) if ctx.explain else self.ok


def flags_clear(ctx: Context) -> bool:
    """True when no :class:`FlagRule` can block: the engine's fast path skips them all."""
    state, channel, subject = ctx.state, ctx.channel, ctx.subject
    if (state.paid or state.holds or state.cease_communication or state.dispute_open
            or channel in state.opted_out or channel not in state.consent
            or channel in state.no_address):
        return False
    if channel is Channel.EMAIL:
        return bool(subject.email)
    return bool(subject.phone_e164) and not state.wrong_number


def _no_address(ctx: Context) -> bool:
    subject = ctx.subject
    address = subject.email if ctx.channel is Channel.EMAIL else subject.phone_e164
    return not address or ctx.channel in ctx.state.no_address


class PromiseRule(Rule):
    """A pending promise pauses contact until 00:00 local on the day after its date."""

    __slots__ = ()

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        promised = ctx.state.promise_until
        if promised is None:
            return self.allowed(ctx, "no pending promise")
        day_after = promised + _ONE_DAY
        until = max(local_midnight(day_after, z) for z in ctx.zones)
        if t < until:
            return self.blocked(Reason.PROMISE_PENDING, until,
                                f"promise to pay by {promised.isoformat()}: paused until {day_after.isoformat()}")
        return self.allowed(ctx, f"promise date {promised.isoformat()} has passed") if ctx.explain else self.ok


class InconvenientTimesRule(Rule):
    """Local times the borrower said are inconvenient (minutes of the day, end exclusive)."""

    __slots__ = ()

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        ranges = ctx.state.inconvenient_times
        if not ranges:
            return self.allowed(ctx, "no inconvenient times on record")
        until: datetime | None = None
        where = ""
        for tz, loc in zip(ctx.zones, local, strict=True):
            seconds = loc.hour * 3600 + loc.minute * 60 + loc.second
            for start, end in ranges:
                s, e = start * 60, end * 60
                if s <= e:
                    inside, end_day = s <= seconds < e, loc.date()
                else:  # wraps past midnight, e.g. (22:00, 07:00)
                    inside = seconds >= s or seconds < e
                    end_day = loc.date() + _ONE_DAY if seconds >= s else loc.date()
                if inside:
                    if end >= 1440:
                        candidate = local_midnight(end_day + _ONE_DAY, tz)
                    else:
                        candidate = wall_time(end_day, time(end // 60, end % 60), tz)
                    if until is None or candidate > until:
                        until, where = candidate, f"{_hhmm(loc)} in {tz.key}"
        if until is not None:
            return self.blocked(Reason.INCONVENIENT_TIME, until,
                                f"{where} is a time the borrower said is inconvenient")
        return self.allowed(ctx, "outside the borrower's inconvenient times")


def stop_rules() -> list[Rule]:
    """The stop conditions every rule set shares, in the order their reasons are reported."""
    every = frozenset(Channel)
    return [
        FlagRule("stop.paid", every, Reason.PAID, "the installment is paid", "not paid",
                  lambda c: c.state.paid),
        FlagRule("stop.hold", every, Reason.HOLD, "on hold ({holds})", "no active hold",
                  lambda c: bool(c.state.holds)),
        FlagRule("stop.cease_communication", every, Reason.CEASE_COMMUNICATION,
                  "the borrower asked for no further communication", "no cease request",
                  lambda c: c.state.cease_communication),
        FlagRule("stop.dispute", every, Reason.DISPUTE_OPEN, "a dispute is open", "no open dispute",
                  lambda c: c.state.dispute_open),
        FlagRule("stop.wrong_number", PHONE_CHANNELS, Reason.WRONG_NUMBER,
                  "the phone number is flagged as not the borrower's", "number not flagged",
                  lambda c: c.state.wrong_number),
        FlagRule("stop.opt_out", every, Reason.OPTED_OUT,
                  "the borrower opted out of {channel} at this address", "no {channel} opt-out",
                  lambda c: c.channel in c.state.opted_out),
        FlagRule("stop.consent", every, Reason.NO_CONSENT,
                  "no consent for {channel} at this address", "{channel} consent on file",
                  lambda c: c.channel not in c.state.consent),
        FlagRule("stop.address", every, Reason.NO_ADDRESS,
                  "no usable {channel} address", "{channel} address on file", _no_address),
        PromiseRule("stop.promise", every),
        InconvenientTimesRule("stop.inconvenient_times", every),
    ]


# --- calendar rules -------------------------------------------------------------------


class WindowRule(Rule):
    """Contact only inside [start, end) local time, in every candidate zone."""

    __slots__ = ("end", "end_s", "label", "start", "start_s")

    def __init__(self, name: str, params: WindowParams) -> None:
        super().__init__(name, params.channels)
        self.start, self.end = params.start, params.end
        self.start_s = params.start.hour * 3600 + params.start.minute * 60 + params.start.second
        self.end_s = params.end.hour * 3600 + params.end.minute * 60 + params.end.second
        self.label = f"{params.start.strftime('%H:%M')}–{params.end.strftime('%H:%M')}"

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        start_s, end_s = self.start_s, self.end_s
        for loc in local:
            seconds = loc.hour * 3600 + loc.minute * 60 + loc.second
            if seconds < start_s or seconds >= end_s:
                return self._blocked(ctx, t, local)
        if ctx.explain:
            shown = ", ".join(f"{_hhmm(loc)} {z}" for loc, z in zip(local, ctx.zone_names, strict=True))
            return self.allowed(ctx, f"{shown}: inside {self.label}")
        return self.ok

    def _blocked(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        until = t
        outside = []
        for tz, loc in zip(ctx.zones, local, strict=True):
            seconds = loc.hour * 3600 + loc.minute * 60 + loc.second
            if seconds < self.start_s:
                candidate = wall_time(loc.date(), self.start, tz)
            elif seconds >= self.end_s:
                candidate = wall_time(loc.date() + _ONE_DAY, self.start, tz)
            else:
                continue
            outside.append(f"{_hhmm(loc)} in {tz.key}")
            if candidate > until:
                until = candidate
        if until <= t:  # cannot happen with sane zones; never propose the past
            until = t + _MINUTE
        return self.blocked(Reason.QUIET_HOURS, until, f"{', '.join(outside)} is outside {self.label}")


class RestDayRule(Rule):
    """No contact on the configured ISO weekdays (Sunday by default), in any candidate zone."""

    __slots__ = ("days",)

    def __init__(self, name: str, params: RestDayParams) -> None:
        super().__init__(name, params.channels)
        self.days = params.days

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        until: datetime | None = None
        which = ""
        for tz, loc in zip(ctx.zones, local, strict=True):
            if loc.isoweekday() in self.days:
                day = loc.date() + _ONE_DAY
                while day.isoweekday() in self.days:
                    day += _ONE_DAY
                candidate = local_midnight(day, tz)
                if until is None or candidate > until:
                    until, which = candidate, f"{loc.strftime('%A %Y-%m-%d')} in {tz.key}"
        if until is not None:
            return self.blocked(Reason.SUNDAY, until, f"{which} is a rest day")
        return self.allowed(ctx, "not a rest day")


class HolidayRule(Rule):
    """No contact on a blocked day of the calendar (bot.compliance.calendars) in any zone."""

    __slots__ = ("by_year", "key")

    def __init__(self, name: str, params: HolidayParams) -> None:
        super().__init__(name, params.channels)
        self.key: CalendarKey = (params.calendar, params.bridge_weekends,
                                 params.extra_holidays, params.extra_working_days)
        self.by_year: dict[int, frozenset[date]] = {}

    def blocked_in(self, year: int) -> frozenset[date]:
        days = self.by_year.get(year)
        if days is None:
            days = self.by_year[year] = blocked_days(self.key, year)
        return days

    def _is_blocked(self, day: date) -> bool:
        return day in self.blocked_in(day.year)

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        until: datetime | None = None
        which = ""
        for tz, loc in zip(ctx.zones, local, strict=True):
            today = loc.date()
            days = self.by_year.get(today.year)
            if days is None:
                days = self.blocked_in(today.year)
            if today in days:
                day = today + _ONE_DAY
                while self._is_blocked(day):
                    day += _ONE_DAY
                candidate = local_midnight(day, tz)
                if until is None or candidate > until:
                    name = day_name(self.key[0], today, self.key[2])
                    until, which = candidate, f"{today.isoformat()} ({name}) in {tz.key}"
        if until is not None:
            return self.blocked(Reason.HOLIDAY, until, f"{which} is a holiday")
        return self.allowed(ctx, "not a holiday")


# --- history rules --------------------------------------------------------------------


def _describe_counted(
    channels: frozenset[Channel], outcomes: frozenset[str] | None, per_channel: bool
) -> str:
    """A human name for what a cap counts: "calls", "calls and texts", "connected calls"."""
    if per_channel:
        noun = "attempts on this channel"
    elif channels == frozenset({Channel.VOICE}):
        noun = "calls"
    elif channels == PHONE_CHANNELS:
        noun = "calls and texts"
    elif channels == frozenset(Channel):
        noun = "contacts"
    else:
        noun = "/".join(sorted(c.value for c in channels)) + " attempts"
    if outcomes is not None:
        noun = "/".join(sorted(str(o) for o in outcomes)) + " " + noun
    return noun


class _CapRule(Rule):
    __slots__ = ("counted", "limit", "outcomes", "per_channel", "per_loan", "what")

    def __init__(self, name: str, params: RollingCapParams | DailyCapParams) -> None:
        super().__init__(name, params.channels)
        self.limit = params.max_count
        self.counted = tuple(params.counted_channels)
        self.outcomes = (tuple(o.value for o in params.outcomes) if params.outcomes is not None
                         else None)
        self.per_loan = params.per_loan
        self.per_channel = params.per_channel
        self.what = _describe_counted(params.counted_channels, params.outcomes, params.per_channel)

    def _times(self, ctx: Context, lo: datetime | None, hi: datetime) -> list[datetime]:
        """Occurrence times of counted entries with lo < occurred_at <= hi (lo None: no bound)."""
        channel = ctx.channel
        loan = ctx.loan_id if self.per_loan else None
        counted, outcomes, per_channel = self.counted, self.outcomes, self.per_channel
        found = []
        for entry in ctx.history:
            when = entry.occurred_at
            if when > hi or (lo is not None and when <= lo):
                continue
            if per_channel:
                if entry.channel != channel:
                    continue
            elif entry.channel not in counted:
                continue
            if outcomes is not None and entry.outcome not in outcomes:
                continue
            if loan is not None and entry.loan_id is not None and entry.loan_id != loan:
                continue
            found.append(when)
        return found


class RollingCapRule(_CapRule):
    """At most ``max_count`` counted attempts in the last ``window_days`` x 24 hours.

    A rolling window contains every calendar-day period that ends today, so it is
    at least as strict as counting "7 consecutive days" by calendar day.
    """

    __slots__ = ("days", "window")

    def __init__(self, name: str, params: RollingCapParams) -> None:
        super().__init__(name, params)
        self.window = timedelta(days=params.window_days)
        self.days = params.window_days

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        found = self._times(ctx, t - self.window, min(t, ctx.at)) if ctx.history else []
        count = len(found)
        if count < self.limit:
            if not ctx.explain:
                return self.ok
            return self.allowed(ctx, f"{count} of {self.limit} {self.what} in {self.days} days")
        found.sort()
        until = _ceil_minute(found[count - self.limit] + self.window)
        return self.blocked(Reason.FREQUENCY_CAP, until,
                            f"{count} {self.what} in the last {self.days} days (at most {self.limit})")


class DailyCapRule(_CapRule):
    """At most ``max_count`` counted attempts per local calendar day, in every zone."""

    __slots__ = ()

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        if not ctx.history:
            return self.allowed(ctx, f"0 of {self.limit} {self.what} today") if ctx.explain else self.ok
        until: datetime | None = None
        most = 0
        hi = min(t, ctx.at)
        for tz, loc in zip(ctx.zones, local, strict=True):
            start = local_midnight(loc.date(), tz)
            count = len(self._times(ctx, start - timedelta(microseconds=1), hi))
            most = max(most, count)
            if count >= self.limit:
                candidate = local_midnight(loc.date() + _ONE_DAY, tz)
                if until is None or candidate > until:
                    until = candidate
        if until is not None:
            return self.blocked(Reason.FREQUENCY_CAP, until,
                                f"{most} {self.what} today (at most {self.limit} a day)")
        return self.allowed(ctx, f"{most} of {self.limit} {self.what} today") if ctx.explain else self.ok


class PostConversationRule(Rule):
    """After a conversation on day 1, no contact through day ``days``; allowed from day days+1."""

    __slots__ = ("counted", "days", "outcomes", "per_loan", "span")

    def __init__(self, name: str, params: PostConversationParams) -> None:
        super().__init__(name, params.channels)
        self.days = params.days
        self.span = timedelta(days=params.days + 2)  # beyond any zone's day boundary
        self.counted = tuple(params.counted_channels)
        self.outcomes = tuple(o.value for o in params.outcomes)
        self.per_loan = params.per_loan

    def evaluate(self, ctx: Context, t: datetime, local: tuple[datetime, ...]) -> RuleResult:
        latest: datetime | None = None
        at = ctx.at
        loan = ctx.loan_id if self.per_loan else None
        for entry in ctx.history:
            when = entry.occurred_at
            if when > at or entry.outcome not in self.outcomes or entry.channel not in self.counted:
                continue
            if loan is not None and entry.loan_id is not None and entry.loan_id != loan:
                continue
            if latest is None or when > latest:
                latest = when
        if latest is None:
            return self.allowed(ctx, "no conversation on record")
        if latest < t - self.span and not ctx.explain:  # long over in every zone
            return self.ok
        until = max(local_midnight(latest.astimezone(tz).date() + timedelta(days=self.days), tz)
                    for tz in ctx.zones)
        if t < until:
            first_day = latest.astimezone(ctx.zones[0]).date()
            return self.blocked(
                Reason.POST_CONVERSATION_WAIT, until,
                f"conversation on {first_day.isoformat()} (day 1): no call through day {self.days}",
            )
        if not ctx.explain:
            return self.ok
        first_day = latest.astimezone(ctx.zones[0]).date()
        return self.allowed(ctx, f"last conversation on {first_day.isoformat()}, wait over")


_COMPILERS: dict[type[RuleParams], type[Rule]] = {
    WindowParams: WindowRule,
    RestDayParams: RestDayRule,
    HolidayParams: HolidayRule,
    RollingCapParams: RollingCapRule,
    DailyCapParams: DailyCapRule,
    PostConversationParams: PostConversationRule,
}


def compile_rule(name: str, params: RuleParams) -> Rule:
    """The rule object for a named parameter set."""
    return _COMPILERS[type(params)](name, params)  # type: ignore[call-arg]


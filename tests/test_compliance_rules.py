"""Case tables for the compliance engine: every rule, zone rule and reason code.

Times are written in the borrower's local zone (``L("2026-11-30T07:30", NY)``) so
that each row reads like the rule it tests.  A row with ``allowed=True`` also
checks that ``next_allowed_at`` is ``at`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.compliance import ALL_REASONS, HistoryEntry, Reason, StopState, Subject, check
from bot.compliance.calendars import blocked_days
from bot.compliance.config import ComplianceConfig, HolidayParams, RestDayParams, default_config
from bot.compliance.zones import phone_zone_names, resolve_zones
from bot.domain import Channel, ContactOutcome

NY = "America/New_York"
CHI = "America/Chicago"
LA = "America/Los_Angeles"
HNL = "Pacific/Honolulu"
SH = "Asia/Shanghai"
URQ = "Asia/Urumqi"
BER = "Europe/Berlin"
LON = "Europe/London"
TYO = "Asia/Tokyo"
SEOUL = "Asia/Seoul"

VOICE, SMS, EMAIL = Channel.VOICE, Channel.SMS, Channel.EMAIL
ALL = frozenset(Channel)
OK = StopState(consent=ALL)


def L(text: str, zone: str) -> datetime:  # noqa: N802 - reads like a literal
    """A local wall-clock time in ``zone`` (never an ambiguous one in these tables)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def H(channel: Channel, when: datetime, outcome: str = ContactOutcome.ATTEMPTED,  # noqa: N802
      loan: str | None = "L1") -> HistoryEntry:
    return HistoryEntry(channel=channel, occurred_at=when.astimezone(UTC), outcome=str(outcome), loan_id=loan)


def daily(channel: Channel, first: str, days: int, zone: str, outcome: str = ContactOutcome.ATTEMPTED,
          loan: str | None = "L1") -> tuple[HistoryEntry, ...]:
    start = L(first, zone)
    return tuple(H(channel, (start + timedelta(days=i)).replace(tzinfo=ZoneInfo(zone)), outcome, loan)
                 for i in range(days))


S_NY = Subject("B1", "US", "NY", None, "+12125551234", "jane@example.com")
S_CA_NY_PHONE = Subject("B2", "US", "CA", None, "+12125551234", "jane@example.com")
S_MA = Subject("B3", "US", "MA", None, "+16175551234", "jane@example.com")
S_WA = Subject("B4", "US", "WA", None, "+12065551234", "jane@example.com")
S_FL = Subject("B5", "US", "FL", None, "+13055551234", "jane@example.com")
S_TOLL_FREE = Subject("B6", "US", "NY", None, "+18005550100", "jane@example.com")
S_US_NOTHING = Subject("B7", "US", None, None, None, "jane@example.com")
S_US_CN_PHONE = Subject("B8", "US", "NY", None, "+8613812341234", "jane@example.com")
S_CHI_TZ = Subject("B9", "US", "NY", "America/Chicago", "+12125551234", "jane@example.com")
S_CHI = Subject("B10", "US", "IL", None, "+13125551234", "jane@example.com")
S_CN = Subject("C1", "CN", "BJ", None, "+8613812341234", "li@example.cn", "zh-CN")
S_XJ = Subject("C2", "CN", "XJ", None, "+8613812341234", "li@example.cn", "zh-CN")
S_DE = Subject("E1", "DE", None, None, "+4915112345678", "max@example.de", "de-DE")
S_GB = Subject("G1", "GB", None, None, "+447911123456", "sam@example.co.uk", "en-GB")
S_JP = Subject("J1", "JP", None, None, None, "ken@example.jp", "ja-JP")
S_KR = Subject("K1", "KR", None, None, "+821012345678", "min@example.kr", "ko-KR")

_SAME = object()  # next_allowed_at == at


@dataclass
class Case:
    id: str
    subject: Subject
    channel: Channel
    at: datetime
    allowed: bool
    reasons: tuple[str, ...] = ()
    next: datetime | None | object = _SAME
    history: tuple[HistoryEntry, ...] = ()
    state: StopState = OK
    loan_id: str | None = "L1"
    rule_set: str | None = None
    zones: tuple[str, ...] | None = None
    blocked_rules: tuple[str, ...] | None = None  # exactly the rules that must block
    config: ComplianceConfig | None = field(default=None, repr=False)


CASES: list[Case] = [
    # --- us.hours ---------------------------------------------------------------------
    Case("ny-0730-blocked-until-0800", S_NY, VOICE, L("2026-11-30T07:30", NY), False, ("quiet_hours",),
         L("2026-11-30T08:00", NY), rule_set="us", zones=(NY,), blocked_rules=("us.hours",)),
    Case("ny-0800-allowed", S_NY, VOICE, L("2026-11-30T08:00", NY), True),
    Case("ny-2059-sms-allowed", S_NY, SMS, L("2026-11-30T20:59:59", NY), True),
    Case("ny-2100-blocked-until-next-morning", S_NY, SMS, L("2026-11-30T21:00", NY), False,
         ("quiet_hours",), L("2026-12-01T08:00", NY)),
    Case("ny-email-sends-too", S_NY, EMAIL, L("2026-11-30T06:00", NY), False, ("quiet_hours",),
         L("2026-11-30T08:00", NY)),
    Case("us-no-sunday-rule", S_NY, SMS, L("2026-11-29T10:00", NY), True),
    # --- candidate zones ----------------------------------------------------------------
    Case("ca-region-ny-phone-1030-ny-is-0730-pt", S_CA_NY_PHONE, SMS, L("2026-11-30T10:30", NY), False,
         ("quiet_hours",), L("2026-11-30T08:00", LA), zones=(LA, NY)),
    Case("ca-region-ny-phone-1100-ny-allowed", S_CA_NY_PHONE, SMS, L("2026-11-30T11:00", NY), True),
    Case("ca-region-ny-phone-2030-pt-is-2330-ny", S_CA_NY_PHONE, VOICE, L("2026-11-30T20:30", LA), False,
         ("quiet_hours",), L("2026-12-01T08:00", LA)),
    Case("explicit-zone-and-region-both-count", S_CHI_TZ, SMS, L("2026-11-30T20:30", CHI), False,
         ("quiet_hours",), L("2026-12-01T08:00", CHI), zones=(CHI, NY)),
    Case("toll-free-number-adds-no-zone", S_TOLL_FREE, SMS, L("2026-11-30T08:30", NY), True, zones=(NY,)),
    Case("us-nothing-known-uses-every-us-zone", S_US_NOTHING, EMAIL, L("2026-11-30T12:00", NY), False,
         ("quiet_hours",), L("2026-11-30T08:00", HNL)),
    Case("far-apart-zones-meet-in-the-evening", S_US_CN_PHONE, SMS, L("2026-11-30T12:00", NY), False,
         ("quiet_hours",), L("2026-12-01T08:00", SH), zones=(NY, SH)),
    Case("never-inside-every-window-gives-none", S_NY, SMS, L("2026-11-30T12:00", NY), False,
         ("inconvenient_time",), None, state=StopState(consent=ALL, inconvenient_times=((0, 24 * 60),))),
    Case("fl-two-zones-0830-eastern-is-0730-central", S_FL, SMS, L("2026-11-30T08:30", NY), False,
         ("quiet_hours",), L("2026-11-30T08:00", CHI), rule_set="us+us-fl", zones=(NY, CHI),
         blocked_rules=("us.hours", "us-fl.hours")),
    Case("fl-email-excluded-from-state-rule-not-federal", S_FL, EMAIL, L("2026-11-30T08:30", NY), False,
         ("quiet_hours",), L("2026-11-30T08:00", CHI), blocked_rules=("us.hours",)),
    Case("fl-0900-eastern-allowed", S_FL, VOICE, L("2026-11-30T09:00", NY), True),
    # --- us.call_frequency (7 in 7 days, per loan) -----------------------------------------
    Case("seven-calls-block-an-eighth", S_NY, VOICE, L("2026-11-30T15:00", NY), False, ("frequency_cap",),
         L("2026-12-01T10:00", NY), history=daily(VOICE, "2026-11-24T10:00", 7, NY),
         blocked_rules=("us.call_frequency",)),
    Case("seven-calls-do-not-block-an-sms", S_NY, SMS, L("2026-11-30T15:00", NY), True,
         history=daily(VOICE, "2026-11-24T10:00", 7, NY)),
    Case("six-calls-allow-a-seventh", S_NY, VOICE, L("2026-11-30T15:00", NY), True,
         history=daily(VOICE, "2026-11-25T10:00", 6, NY)),
    Case("a-call-older-than-7x24h-has-aged-out", S_NY, VOICE, L("2026-11-30T15:00", NY), True,
         history=daily(VOICE, "2026-11-23T14:59", 7, NY)),
    Case("calls-about-another-loan-do-not-count", S_NY, VOICE, L("2026-11-30T15:00", NY), True,
         history=daily(VOICE, "2026-11-24T10:00", 7, NY, loan="L2")),
    Case("calls-about-no-loan-count-for-every-loan", S_NY, VOICE, L("2026-11-30T15:00", NY), False,
         ("frequency_cap",), L("2026-12-01T10:00", NY), history=daily(VOICE, "2026-11-24T10:00", 7, NY, loan=None)),
    Case("without-a-loan-every-call-counts", S_NY, VOICE, L("2026-11-30T15:00", NY), False,
         ("frequency_cap",), L("2026-12-01T10:00", NY), history=daily(VOICE, "2026-11-24T10:00", 7, NY, loan="L2"),
         loan_id=None),
    Case("cap-expiring-at-night-waits-for-morning", S_NY, VOICE, L("2026-11-30T15:00", NY), False,
         ("frequency_cap",), L("2026-12-01T08:00", NY), history=daily(VOICE, "2026-11-23T22:30", 7, NY)),
    Case("attempts-after-at-are-ignored", S_NY, VOICE, L("2026-11-29T15:00", NY), True,
         history=daily(VOICE, "2026-11-24T10:00", 7, NY)),
    # --- us.post_conversation (day 1 = conversation day; allowed on day 8) ----------------
    Case("conversation-day-1-blocks-day-7", S_NY, VOICE, L("2026-11-16T12:00", NY), False,
         ("post_conversation_wait",), L("2026-11-17T08:00", NY),
         history=(H(VOICE, L("2026-11-10T10:00", NY), ContactOutcome.CONVERSATION),),
         blocked_rules=("us.post_conversation",)),
    Case("conversation-day-1-allows-day-8", S_NY, VOICE, L("2026-11-17T08:00", NY), True,
         history=(H(VOICE, L("2026-11-10T10:00", NY), ContactOutcome.CONVERSATION),)),
    Case("conversation-does-not-block-sms", S_NY, SMS, L("2026-11-12T12:00", NY), True,
         history=(H(VOICE, L("2026-11-10T10:00", NY), ContactOutcome.CONVERSATION),)),
    Case("conversation-about-another-loan", S_NY, VOICE, L("2026-11-12T12:00", NY), True,
         history=(H(VOICE, L("2026-11-10T10:00", NY), ContactOutcome.CONVERSATION, "L2"),)),
    Case("connected-is-not-a-conversation", S_NY, VOICE, L("2026-11-12T12:00", NY), True,
         history=(H(VOICE, L("2026-11-10T10:00", NY), ContactOutcome.CONNECTED),)),
    # --- us-ma.telephone_frequency (2 calls+texts per 7 days per loan) ---------------------
    Case("ma-two-texts-no-third", S_MA, SMS, L("2026-11-30T12:00", NY), False, ("frequency_cap",),
         L("2026-12-03T10:00", NY), history=(H(SMS, L("2026-11-26T10:00", NY)), H(SMS, L("2026-11-28T10:00", NY))),
         rule_set="us+us-ma", blocked_rules=("us-ma.telephone_frequency",)),
    Case("ma-two-texts-block-a-call", S_MA, VOICE, L("2026-11-30T12:00", NY), False, ("frequency_cap",),
         L("2026-12-03T10:00", NY), history=(H(SMS, L("2026-11-26T10:00", NY)), H(SMS, L("2026-11-28T10:00", NY)))),
    Case("ma-two-texts-allow-email", S_MA, EMAIL, L("2026-11-30T12:00", NY), True,
         history=(H(SMS, L("2026-11-26T10:00", NY)), H(SMS, L("2026-11-28T10:00", NY)))),
    Case("ma-one-text-allows-a-second", S_MA, SMS, L("2026-11-30T12:00", NY), True,
         history=(H(SMS, L("2026-11-28T10:00", NY)),)),
    Case("ma-call-plus-text", S_MA, SMS, L("2026-11-30T12:00", NY), False, ("frequency_cap",),
         L("2026-12-04T10:00", NY), history=(H(VOICE, L("2026-11-27T10:00", NY)), H(SMS, L("2026-11-28T10:00", NY)))),
    # --- us-wa (3 communications a week, any channel) -----------------------------------------
    Case("wa-three-communications-a-week", S_WA, EMAIL, L("2026-11-30T12:00", LA), False, ("frequency_cap",),
         L("2026-12-04T10:00", LA), history=(H(EMAIL, L("2026-11-27T10:00", LA)), H(SMS, L("2026-11-28T10:00", LA)),
                                              H(EMAIL, L("2026-11-29T10:00", LA), loan="L2")),
         rule_set="us+us-wa", blocked_rules=("us-wa.weekly_communications",)),
    Case("wa-two-communications-allow-a-third", S_WA, VOICE, L("2026-11-30T12:00", LA), True,
         history=(H(EMAIL, L("2026-11-27T10:00", LA)), H(SMS, L("2026-11-28T10:00", LA)))),
    Case("wa-hours", S_WA, SMS, L("2026-11-30T21:15", LA), False, ("quiet_hours",), L("2026-12-01T08:00", LA),
         blocked_rules=("us.hours", "us-wa.hours")),
    # --- cn.hours, cn.holidays -------------------------------------------------------------
    Case("cn-2230-blocked", S_CN, SMS, L("2026-11-30T22:30", SH), False, ("quiet_hours",),
         L("2026-12-01T08:00", SH), rule_set="cn", zones=(SH,), blocked_rules=("cn.hours",)),
    Case("cn-2159-allowed", S_CN, VOICE, L("2026-11-30T21:59", SH), True),
    Case("cn-0759-blocked", S_CN, EMAIL, L("2026-11-30T07:59", SH), False, ("quiet_hours",),
         L("2026-11-30T08:00", SH)),
    Case("cn-national-day-2026-10-02", S_CN, SMS, L("2026-10-02T10:00", SH), False, ("holiday",),
         L("2026-10-08T08:00", SH), blocked_rules=("cn.holidays",)),
    Case("cn-sunday-inside-the-break-2026-10-04", S_CN, SMS, L("2026-10-04T10:00", SH), False, ("holiday",),
         L("2026-10-08T08:00", SH)),
    Case("cn-working-saturday-2026-10-10", S_CN, VOICE, L("2026-10-10T10:00", SH), True),
    Case("cn-after-the-break-2026-10-08", S_CN, SMS, L("2026-10-08T10:00", SH), True),
    Case("cn-ordinary-saturday", S_CN, SMS, L("2026-10-17T10:00", SH), True),
    Case("cn-working-sunday-2026-01-04", S_CN, SMS, L("2026-01-04T10:00", SH), True),
    Case("cn-spring-festival-starts-sunday-2026-02-15", S_CN, SMS, L("2026-02-15T10:00", SH), False,
         ("holiday",), L("2026-02-24T08:00", SH)),
    Case("cn-working-saturday-2026-02-14", S_CN, SMS, L("2026-02-14T10:00", SH), True),
    Case("cn-eve-of-holiday-at-night", S_CN, SMS, L("2026-09-30T22:30", SH), False, ("quiet_hours",),
         L("2026-10-08T08:00", SH)),
    Case("cn-xinjiang-two-clocks", S_XJ, SMS, L("2026-11-30T09:00", SH), False, ("quiet_hours",),
         L("2026-11-30T10:00", SH), zones=(SH, URQ)),
    Case("cn-xinjiang-2159-beijing", S_XJ, SMS, L("2026-11-30T21:59", SH), True),
    # --- cn.connected_calls, cn.attempts_per_channel ---------------------------------------
    Case("cn-three-connected-calls-today", S_CN, VOICE, L("2026-11-30T15:00", SH), False, ("frequency_cap",),
         L("2026-12-01T08:00", SH), history=(
             H(VOICE, L("2026-11-30T09:00", SH), ContactOutcome.CONNECTED, None),
             H(VOICE, L("2026-11-30T10:00", SH), ContactOutcome.CONVERSATION, None),
             H(VOICE, L("2026-11-30T11:00", SH), ContactOutcome.CONNECTED, "L7")),
         blocked_rules=("cn.connected_calls",)),
    Case("cn-connected-calls-do-not-block-sms", S_CN, SMS, L("2026-11-30T15:00", SH), True, history=(
        H(VOICE, L("2026-11-30T09:00", SH), ContactOutcome.CONNECTED),
        H(VOICE, L("2026-11-30T10:00", SH), ContactOutcome.CONNECTED),
        H(VOICE, L("2026-11-30T11:00", SH), ContactOutcome.CONNECTED))),
    Case("cn-two-connected-three-unanswered", S_CN, VOICE, L("2026-11-30T15:00", SH), True, history=(
        H(VOICE, L("2026-11-30T09:00", SH), ContactOutcome.CONNECTED),
        H(VOICE, L("2026-11-30T10:00", SH), ContactOutcome.CONNECTED),
        *daily(VOICE, "2026-11-30T11:00", 1, SH), H(VOICE, L("2026-11-30T12:00", SH)),
        H(VOICE, L("2026-11-30T13:00", SH), ContactOutcome.FAILED))),
    Case("cn-connected-yesterday-do-not-count", S_CN, VOICE, L("2026-11-30T08:30", SH), True,
         history=daily(VOICE, "2026-11-29T21:00", 1, SH, ContactOutcome.CONNECTED) * 3),
    Case("cn-six-sms-today", S_CN, SMS, L("2026-11-30T15:00", SH), False, ("frequency_cap",),
         L("2026-12-01T08:00", SH), history=tuple(H(SMS, L(f"2026-11-30T{h:02d}:00", SH)) for h in range(8, 14)),
         blocked_rules=("cn.attempts_per_channel",)),
    Case("cn-six-sms-do-not-block-voice", S_CN, VOICE, L("2026-11-30T15:00", SH), True,
         history=tuple(H(SMS, L(f"2026-11-30T{h:02d}:00", SH)) for h in range(8, 14))),
    Case("cn-day-is-beijing-day", S_CN, SMS, L("2026-11-30T15:00", SH), False, ("frequency_cap",),
         L("2026-12-01T08:00", SH), history=(
             # 00:30 Beijing on the 30th is still the 29th in UTC: it counts as today.
             H(SMS, L("2026-11-30T00:30", SH)), *(H(SMS, L(f"2026-11-30T{h:02d}:00", SH)) for h in range(8, 13)))),
    Case("cn-five-sms-today-one-yesterday", S_CN, SMS, L("2026-11-30T15:00", SH), True, history=(
        H(SMS, L("2026-11-29T23:30", SH)), *(H(SMS, L(f"2026-11-30T{h:02d}:00", SH)) for h in range(8, 13)))),
    # --- stop conditions ------------------------------------------------------------------
    Case("paid", S_NY, SMS, L("2026-11-30T12:00", NY), False, ("paid",), None,
         state=StopState(consent=ALL, paid=True), blocked_rules=("stop.paid",)),
    Case("hold", S_NY, SMS, L("2026-11-30T12:00", NY), False, ("hold",), None,
         state=StopState(consent=ALL, holds=("bankruptcy",))),
    Case("dispute-open", S_NY, EMAIL, L("2026-11-30T12:00", NY), False, ("dispute_open",), None,
         state=StopState(consent=ALL, dispute_open=True)),
    Case("cease-communication-blocks-email", S_NY, EMAIL, L("2026-11-30T12:00", NY), False,
         ("cease_communication",), None, state=StopState(consent=ALL, cease_communication=True)),
    Case("cease-communication-blocks-voice", S_NY, VOICE, L("2026-11-30T12:00", NY), False,
         ("cease_communication",), None, state=StopState(consent=ALL, cease_communication=True)),
    Case("wrong-number-blocks-voice", S_NY, VOICE, L("2026-11-30T12:00", NY), False, ("wrong_number",), None,
         state=StopState(consent=ALL, wrong_number=True)),
    Case("wrong-number-blocks-sms", S_NY, SMS, L("2026-11-30T12:00", NY), False, ("wrong_number",), None,
         state=StopState(consent=ALL, wrong_number=True)),
    Case("wrong-number-allows-email", S_NY, EMAIL, L("2026-11-30T12:00", NY), True,
         state=StopState(consent=ALL, wrong_number=True)),
    Case("opted-out-of-sms", S_NY, SMS, L("2026-11-30T12:00", NY), False, ("opted_out",), None,
         state=StopState(consent=ALL, opted_out=frozenset({SMS})), blocked_rules=("stop.opt_out",)),
    Case("sms-opt-out-does-not-block-voice", S_NY, VOICE, L("2026-11-30T12:00", NY), True,
         state=StopState(consent=ALL, opted_out=frozenset({SMS}))),
    Case("sms-opt-out-does-not-block-email", S_NY, EMAIL, L("2026-11-30T12:00", NY), True,
         state=StopState(consent=ALL, opted_out=frozenset({SMS}))),
    Case("no-consent-for-email", S_NY, EMAIL, L("2026-11-30T12:00", NY), False, ("no_consent",), None,
         state=StopState(consent=frozenset({SMS, VOICE}))),
    Case("no-email-address", Subject("B1", "US", "NY", None, "+12125551234", None), EMAIL,
         L("2026-11-30T12:00", NY), False, ("no_address",), None),
    Case("no-phone-number", Subject("B1", "US", "NY", None, None, "jane@example.com"), VOICE,
         L("2026-11-30T12:00", NY), False, ("no_address",), None),
    Case("landline-flag-blocks-sms", S_NY, SMS, L("2026-11-30T12:00", NY), False, ("no_address",), None,
         state=StopState(consent=ALL, no_address=frozenset({SMS}))),
    Case("stops-and-hours-in-stable-order", S_NY, SMS, L("2026-11-30T06:00", NY), False,
         ("cease_communication", "opted_out", "quiet_hours"), None,
         state=StopState(consent=ALL, opted_out=frozenset({SMS}), cease_communication=True)),
    Case("promise-pauses-until-day-after-in-hours", S_NY, SMS, L("2026-12-05T12:00", NY), False,
         ("promise_pending",), L("2026-12-06T08:00", NY), state=StopState(consent=ALL, promise_until=date(2026, 12, 5)),
         blocked_rules=("stop.promise",)),
    Case("promise-pauses-from-before-the-date", S_NY, VOICE, L("2026-12-01T12:00", NY), False,
         ("promise_pending",), L("2026-12-06T08:00", NY), state=StopState(consent=ALL, promise_until=date(2026, 12, 5))),
    Case("promise-over-at-midnight-then-hours", S_NY, SMS, L("2026-12-06T00:30", NY), False, ("quiet_hours",),
         L("2026-12-06T08:00", NY), state=StopState(consent=ALL, promise_until=date(2026, 12, 5))),
    Case("promise-over", S_NY, SMS, L("2026-12-06T09:00", NY), True,
         state=StopState(consent=ALL, promise_until=date(2026, 12, 5))),
    Case("inconvenient-at-work", S_NY, VOICE, L("2026-11-30T10:00", NY), False, ("inconvenient_time",),
         L("2026-11-30T17:00", NY), state=StopState(consent=ALL, inconvenient_times=((9 * 60, 17 * 60),))),
    Case("inconvenient-ends-at-17", S_NY, VOICE, L("2026-11-30T17:00", NY), True,
         state=StopState(consent=ALL, inconvenient_times=((9 * 60, 17 * 60),))),
    Case("inconvenient-range-across-midnight-morning", S_NY, SMS, L("2026-11-30T08:30", NY), False,
         ("inconvenient_time",), L("2026-11-30T09:00", NY),
         state=StopState(consent=ALL, inconvenient_times=((20 * 60, 9 * 60),))),
    Case("inconvenient-range-across-midnight-evening", S_NY, SMS, L("2026-11-30T20:30", NY), False,
         ("inconvenient_time",), L("2026-12-01T09:00", NY),
         state=StopState(consent=ALL, inconvenient_times=((20 * 60, 9 * 60),))),
    # --- EU / UK / default ----------------------------------------------------------------
    Case("de-sunday", S_DE, SMS, L("2026-11-29T10:00", BER), False, ("sunday",), L("2026-11-30T08:00", BER),
         rule_set="eu", zones=(BER,), blocked_rules=("eu.sunday",)),
    Case("de-saturday-night-skips-sunday", S_DE, SMS, L("2026-11-28T22:00", BER), False, ("quiet_hours",),
         L("2026-11-30T08:00", BER)),
    Case("de-monday-2059", S_DE, VOICE, L("2026-11-30T20:59", BER), True),
    Case("de-monday-2100", S_DE, VOICE, L("2026-11-30T21:00", BER), False, ("quiet_hours",),
         L("2026-12-01T08:00", BER)),
    Case("gb-sunday", S_GB, EMAIL, L("2026-11-29T12:00", LON), False, ("sunday",), L("2026-11-30T08:00", LON),
         rule_set="gb", zones=(LON,)),
    Case("gb-saturday-0800", S_GB, EMAIL, L("2026-11-28T08:00", LON), True),
    Case("default-ends-at-2000", S_JP, EMAIL, L("2026-11-30T20:00", TYO), False, ("quiet_hours",),
         L("2026-12-01T08:00", TYO), rule_set="default", zones=(TYO,)),
    Case("default-1959-allowed", S_JP, EMAIL, L("2026-11-28T19:59", TYO), True),
    Case("default-sunday-kr", S_KR, SMS, L("2026-11-29T12:00", SEOUL), False, ("sunday",),
         L("2026-11-30T08:00", SEOUL), rule_set="default", zones=(SEOUL,)),
    # --- DST in US zones --------------------------------------------------------------------
    Case("dst-fall-2026-11-01-0759-est", S_NY, VOICE, L("2026-11-01T07:59", NY), False, ("quiet_hours",),
         datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    Case("dst-fall-2026-11-01-0800-est", S_NY, VOICE, datetime(2026, 11, 1, 13, 0, tzinfo=UTC), True),
    Case("dst-fall-2026-11-02-0759", S_NY, SMS, L("2026-11-02T07:59", NY), False, ("quiet_hours",),
         datetime(2026, 11, 2, 13, 0, tzinfo=UTC)),
    Case("dst-fall-2026-11-02-0800", S_NY, SMS, datetime(2026, 11, 2, 13, 0, tzinfo=UTC), True),
    Case("dst-fall-next-across-the-change", S_NY, SMS, L("2026-10-31T21:30", NY), False, ("quiet_hours",),
         datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    Case("dst-fall-chicago", S_CHI, SMS, datetime(2026, 11, 1, 13, 59, tzinfo=UTC), False, ("quiet_hours",),
         datetime(2026, 11, 1, 14, 0, tzinfo=UTC), zones=(CHI,)),
    Case("dst-spring-2027-03-14-0759-edt", S_NY, VOICE, L("2027-03-14T07:59", NY), False, ("quiet_hours",),
         datetime(2027, 3, 14, 12, 0, tzinfo=UTC)),
    Case("dst-spring-2027-03-14-0800-edt", S_NY, VOICE, datetime(2027, 3, 14, 12, 0, tzinfo=UTC), True),
    Case("dst-spring-2027-03-15-0759", S_NY, EMAIL, L("2027-03-15T07:59", NY), False, ("quiet_hours",),
         datetime(2027, 3, 15, 12, 0, tzinfo=UTC)),
    Case("dst-spring-2027-03-15-0800", S_NY, EMAIL, datetime(2027, 3, 15, 12, 0, tzinfo=UTC), True),
    Case("dst-spring-next-across-the-change", S_NY, SMS, L("2027-03-13T22:00", NY), False, ("quiet_hours",),
         datetime(2027, 3, 14, 12, 0, tzinfo=UTC)),
    Case("dst-spring-two-zones", S_CA_NY_PHONE, SMS, L("2027-03-14T10:30", NY), False, ("quiet_hours",),
         datetime(2027, 3, 14, 15, 0, tzinfo=UTC)),
    Case("dst-conversation-wait-across-fall-back", S_NY, VOICE, L("2026-11-03T12:00", NY), False,
         ("post_conversation_wait",), L("2026-11-04T08:00", NY),
         history=(H(VOICE, L("2026-10-28T15:00", NY), ContactOutcome.CONVERSATION),)),
    Case("dst-rolling-cap-is-7x24-hours", S_NY, VOICE, L("2026-11-04T12:00", NY), False, ("frequency_cap",),
         L("2026-11-05T09:00", NY), history=daily(VOICE, "2026-10-29T10:00", 7, NY)),
]


def _decide(case: Case):
    return check(case.subject, case.channel, case.at, case.history, case.state, loan_id=case.loan_id,
                 config=case.config)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case) -> None:
    decision = _decide(case)
    assert decision.allowed is case.allowed
    assert decision.reasons == case.reasons
    expected_next = case.at if case.next is _SAME else case.next
    assert decision.next_allowed_at == expected_next
    if case.rule_set is not None:
        assert decision.rule_set == case.rule_set
    if case.zones is not None:
        assert decision.zones == case.zones
    if case.blocked_rules is not None:
        assert tuple(r.rule for r in decision.results if not r.allowed) == case.blocked_rules
    # Every verdict is recorded, and the decision agrees with them.
    assert decision.allowed == all(r.allowed for r in decision.results)
    assert len({r.rule for r in decision.results}) == len(decision.results)
    # The explaining path (every rule judged one by one) decides the same as the fast path.
    explained = check(case.subject, case.channel, case.at, case.history, case.state, loan_id=case.loan_id,
                      config=case.config, explain=True)
    assert (explained.allowed, explained.reasons, explained.next_allowed_at) == (
        decision.allowed, decision.reasons, decision.next_allowed_at)
    assert [(r.rule, r.allowed, r.reason) for r in explained.results] == [
        (r.rule, r.allowed, r.reason) for r in decision.results]


def test_case_table_covers_every_reason_code() -> None:
    seen = {reason for case in CASES for reason in case.reasons}
    assert seen == set(ALL_REASONS)


def test_next_allowed_at_really_is_allowed_and_the_minute_before_is_not() -> None:
    for case in CASES:
        decision = _decide(case)
        nxt = decision.next_allowed_at
        if decision.allowed or nxt is None:
            continue
        later = check(case.subject, case.channel, nxt, case.history, case.state, loan_id=case.loan_id)
        assert later.allowed, case.id
        before = nxt - timedelta(minutes=1)
        if before >= case.at:
            earlier = check(case.subject, case.channel, before, case.history, case.state, loan_id=case.loan_id)
            assert not earlier.allowed, case.id


def test_results_name_every_rule_of_us_and_ma_in_order() -> None:
    decision = check(S_MA, VOICE, L("2026-11-30T12:00", NY), (), OK, loan_id="L1")
    assert [r.rule for r in decision.results] == [
        "stop.paid", "stop.hold", "stop.cease_communication", "stop.dispute", "stop.wrong_number", "stop.opt_out",
        "stop.consent", "stop.address", "stop.promise", "stop.inconvenient_times",
        "us.hours", "us.call_frequency", "us.post_conversation", "us-ma.telephone_frequency",
    ]


def test_blocked_rule_records_reason_next_and_detail() -> None:
    decision = check(S_FL, EMAIL, L("2026-11-30T08:30", NY), (), OK)
    by_rule = {r.rule: r for r in decision.results}
    assert by_rule["us.hours"].reason == Reason.QUIET_HOURS
    assert by_rule["us.hours"].next_allowed_at == L("2026-11-30T08:00", CHI)
    assert "07:30 in America/Chicago" in by_rule["us.hours"].detail
    assert by_rule["us-fl.hours"].allowed and by_rule["us-fl.hours"].detail == "does not apply to email"


def test_explain_fills_in_allowed_details() -> None:
    history = daily(VOICE, "2026-11-27T10:00", 2, NY)
    decision = check(S_NY, VOICE, L("2026-11-30T12:00", NY), history, OK, loan_id="L1", explain=True)
    by_rule = {r.rule: r.detail for r in decision.results}
    assert by_rule["us.call_frequency"] == "2 of 7 calls in 7 days"
    assert by_rule["us.hours"] == "12:00 America/New_York: inside 08:00–21:00"
    assert by_rule["stop.consent"] == "voice consent on file"
    plain = check(S_NY, VOICE, L("2026-11-30T12:00", NY), history, OK, loan_id="L1")
    assert {r.rule: r.detail for r in plain.results}["us.call_frequency"] == ""


def test_to_json_shape() -> None:
    decision = check(S_NY, VOICE, L("2026-11-30T07:30", NY), (), OK)
    assert decision.to_json() == {
        "allowed": False,
        "reasons": ["quiet_hours"],
        "next_allowed_at": "2026-11-30T13:00:00+00:00",
        "rule_set": "us",
        "zones": ["America/New_York"],
    }


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(S_NY, SMS, datetime(2026, 11, 30, 12, 0), (), OK)


def test_channel_given_as_plain_string() -> None:
    assert check(S_NY, "sms", L("2026-11-30T12:00", NY), (), OK).allowed  # type: ignore[arg-type]


def test_search_horizon_bounds_next_allowed_at() -> None:
    short = ComplianceConfig(search_horizon_days=3)
    decision = check(S_CN, SMS, L("2026-10-01T10:00", SH), (), OK, config=short)
    assert not decision.allowed and decision.reasons == ("holiday",)
    assert decision.next_allowed_at is None
    assert check(S_CN, SMS, L("2026-10-01T10:00", SH), (), OK).next_allowed_at == L("2026-10-08T08:00", SH)


def test_disabled_rule_no_longer_applies() -> None:
    rules = dict(default_config().rules)
    rules["eu.sunday"] = RestDayParams(enabled=False)
    config = ComplianceConfig(rules=rules)
    decision = check(S_DE, SMS, L("2026-11-29T10:00", BER), (), OK, config=config)
    assert decision.allowed
    assert "eu.sunday" not in {r.rule for r in decision.results}


def test_holiday_overrides_in_config() -> None:
    rules = dict(default_config().rules)
    rules["cn.holidays"] = HolidayParams(calendar="CN", bridge_weekends=True,
                                         extra_holidays=frozenset({date(2026, 11, 30)}),
                                         extra_working_days=frozenset({date(2026, 10, 5)}))
    config = ComplianceConfig(rules=rules)
    extra = check(S_CN, SMS, L("2026-11-30T10:00", SH), (), OK, config=config)
    assert extra.reasons == ("holiday",) and extra.next_allowed_at == L("2026-12-01T08:00", SH)
    working = check(S_CN, SMS, L("2026-10-05T10:00", SH), (), OK, config=config)
    assert working.allowed


def test_default_timezone_when_nothing_is_known() -> None:
    nobody = Subject("R1", "RU", None, None, None, "ivan@example.ru")
    assert check(nobody, EMAIL, datetime(2026, 11, 30, 12, tzinfo=UTC), (), OK).zones == (NY,)
    moscow = default_config().with_default_timezone("Europe/Moscow")
    decision = check(nobody, EMAIL, datetime(2026, 11, 30, 19, 30, tzinfo=UTC), (), OK, config=moscow)
    assert decision.zones == ("Europe/Moscow",)
    assert decision.reasons == ("quiet_hours",)  # 22:30 in Moscow, default set ends at 20:00


# --- zones and calendars -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "zones"),
    [
        ("+12125551234", (NY,)),
        ("+14155551234", (LA,)),
        ("+18005550100", ()),  # toll-free: phonenumbers gives the whole NANP
        ("+19995550000", ()),  # invalid: Etc/Unknown
        ("+8613812341234", (SH,)),
        ("+447911123456", ()),  # UK mobile: a country-wide list
        ("+442071234567", (LON,)),
        ("not a number", ()),
        (None, ()),
    ],
)
def test_phone_zones(phone: str | None, zones: tuple[str, ...]) -> None:
    assert phone_zone_names(phone) == zones


@pytest.mark.parametrize(
    ("country", "region", "zones"),
    [
        ("US", "FL", (NY, CHI)),
        ("US", "TX", (CHI, "America/Denver")),
        ("US", "TN", (CHI, NY)),
        ("US", "KY", ("America/Kentucky/Louisville", CHI)),
        ("US", "IN", ("America/Indiana/Indianapolis", CHI)),
        ("US", "MI", ("America/Detroit", "America/Menominee")),
        ("US", "ND", (CHI, "America/Denver")),
        ("US", "SD", (CHI, "America/Denver")),
        ("US", "NE", (CHI, "America/Denver")),
        ("US", "KS", (CHI, "America/Denver")),
        ("US", "OR", (LA, "America/Boise")),
        ("US", "ID", ("America/Boise", LA)),
        ("US", "AK", ("America/Anchorage", "America/Adak")),
        ("US", "us-ma", (NY,)),
        ("CN", "GD", (SH,)),
        ("CN", "XJ", (SH, URQ)),
        ("KR", None, (SEOUL,)),
        ("GB", None, (LON,)),
        ("FR", None, ("Europe/Paris",)),
    ],
)
def test_region_zones(country: str, region: str | None, zones: tuple[str, ...]) -> None:
    assert resolve_zones(country, region, None, None, NY).names == zones


def test_invalid_explicit_zone_is_ignored() -> None:
    assert resolve_zones("US", "NY", "Mars/Olympus", None, NY).names == (NY,)


def test_china_2026_blocked_days_match_the_state_council_schedule() -> None:
    """What the holidays package (with bridged weekends) gives for 2026.

    The State Council's 2026 schedule: 1-3 Jan, 15-23 Feb, 4-6 Apr, 1-5 May, 19-21 Jun,
    25-27 Sep, 1-7 Oct; working weekend days 4 Jan, 14 and 28 Feb, 9 May, 20 Sep, 10 Oct.
    """
    def span(first: str, last: str) -> set[date]:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
        return {a + timedelta(days=i) for i in range((b - a).days + 1)}

    expected = (span("2026-01-01", "2026-01-03") | span("2026-02-15", "2026-02-23")
                | span("2026-04-04", "2026-04-06") | span("2026-05-01", "2026-05-05")
                | span("2026-06-19", "2026-06-21") | span("2026-09-25", "2026-09-27")
                | span("2026-10-01", "2026-10-07"))
    assert blocked_days(("CN", True, frozenset(), frozenset()), 2026) == expected


def test_holidays_package_itself_on_the_2026_dates() -> None:
    import holidays

    cn = holidays.country_holidays("CN", years=2026)
    assert cn.get(date(2026, 10, 2)) == "National Day"
    assert date(2026, 10, 10) not in cn
    assert cn.is_working_day(date(2026, 10, 10))  # Saturday, a 调休 working day
    assert date(2026, 10, 10) in cn.weekend_workdays

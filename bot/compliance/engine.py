"""The compliance engine: may this borrower be contacted on this channel at this instant?

:func:`check` is a pure function of its arguments (no database, no clock): the
dispatcher calls it at the moment of sending, the planner for up to a million
installments, ``bot check`` and ``bot why`` to explain a decision.

How a decision is made:

1. The candidate zones of the subject are resolved (bot.compliance.zones).
2. The rule sets are selected: the country's set (or the fallback set) plus the
   region's set, e.g. ``us+us-ma``; every rule of every set applies, after the
   stop conditions every set shares (paid, cease, dispute, wrong number,
   opt-out, consent, address, promise, inconvenient times).
3. Every rule judges the contact at ``at``; the contact is allowed when all do.
4. When it is not, ``next_allowed_at`` is searched for: each blocking rule
   proposes the earliest instant it would allow; the latest proposal is the
   next candidate; all rules judge again there; repeat until all allow, a rule
   says time will not help (None), or the search passes the horizon (60 days).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.compliance.config import ComplianceConfig, default_config
from bot.compliance.rules import Context, FlagRule, Rule, compile_rule, flags_clear, stop_rules
from bot.compliance.types import Decision, HistoryEntry, RuleResult, StopState, Subject
from bot.compliance.zones import ZoneSet, normalise_region, resolve_zones
from bot.domain import Channel

__all__ = ["Engine", "check", "engine_for"]

_MAX_STEPS = 400


class Selection:
    """The rules for one (country, region): the stop conditions, then the rule sets'.

    ``flags`` (stop conditions that only read the StopState and the subject's
    addresses) are split from ``timed`` (everything that depends on the instant),
    so the common case checks all flags in one expression and reuses a constant
    tuple of verdicts.
    """

    __slots__ = ("clear", "flags", "label", "timed")

    def __init__(self, label: str, stop: tuple[Rule, ...], chosen: tuple[Rule, ...]) -> None:
        self.label = label
        self.flags = tuple(r for r in stop if isinstance(r, FlagRule))
        self.timed = tuple(r for r in stop if not isinstance(r, FlagRule)) + chosen
        self.clear = {
            ch: tuple(r.ok if ch in r.channels else r.skipped[ch] for r in self.flags) for ch in Channel
        }


class Engine:
    """A configuration compiled into rule objects, with the rule-set choice cached."""

    def __init__(self, config: ComplianceConfig) -> None:
        self.config = config
        self.stop = tuple(stop_rules())
        self.rules: dict[str, Rule] = {
            name: compile_rule(name, params) for name, params in config.rules.items()
            if params.enabled
        }
        self.horizon = timedelta(days=config.search_horizon_days)
        self._selection: dict[tuple[str, str | None], Selection] = {}

    def rule_sets_for(self, country: str, region: str | None) -> tuple[str, ...]:
        """The names of the rule sets that apply, country set first."""
        cfg = self.config
        country = (country or "").strip().upper()
        names = [cfg.country_rule_sets.get(country, cfg.fallback_rule_set)]
        code = normalise_region(country, region)
        if code:
            extra = cfg.region_rule_sets.get(f"{country}-{code}")
            if extra and extra not in names:
                names.append(extra)
        return tuple(names)

    def select(self, country: str, region: str | None) -> Selection:
        """The rules that apply to a country/region (cached)."""
        key = (country, region)
        found = self._selection.get(key)
        if found is None:
            sets = self.rule_sets_for(country, region)
            chosen: list[Rule] = []
            for set_name in sets:
                for rule_name in self.config.rule_sets[set_name]:
                    rule = self.rules.get(rule_name)  # None: disabled
                    if rule is not None and rule not in chosen:
                        chosen.append(rule)
            found = self._selection[key] = Selection("+".join(sets), self.stop, tuple(chosen))
        return found

    def zones_for(self, subject: Subject) -> ZoneSet:
        return resolve_zones(subject.country, subject.region, subject.timezone, subject.phone_e164,
                             self.config.default_timezone)

    def check(
        self,
        subject: Subject,
        channel: Channel,
        at: datetime,
        history: Sequence[HistoryEntry],
        state: StopState,
        *,
        loan_id: str | None = None,
        explain: bool = False,
    ) -> Decision:
        if at.tzinfo is None:
            raise ValueError("check(at=...) needs a timezone-aware instant")
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        if type(channel) is not Channel:
            channel = Channel(channel)
        zoneset = self.zones_for(subject)
        selection = self.select(subject.country, subject.region)
        ctx = Context(subject, channel, at, history, state, loan_id, zoneset.zones, zoneset.names,
                      explain)
        if not explain and flags_clear(ctx):
            head = selection.clear[channel]
        else:
            head = _evaluate(selection.flags, ctx, at, ())
        results = head + _evaluate(selection.timed, ctx, at, tuple([at.astimezone(z) for z in ctx.zones]))
        blocked = [r for r in results if not r.allowed]
        if not blocked:
            return Decision(allowed=True, reasons=(), next_allowed_at=at, rule_set=selection.label,
                            zones=zoneset.names, results=results)
        reasons: list[str] = []
        for r in blocked:
            if r.reason is not None and r.reason not in reasons:
                reasons.append(str(r.reason))
        return Decision(
            allowed=False,
            reasons=tuple(reasons),
            next_allowed_at=self._search(selection.timed, ctx, blocked),
            rule_set=selection.label,
            zones=zoneset.names,
            results=results,
        )

    def _search(self, rules: tuple[Rule, ...], ctx: Context, blocked: list[RuleResult]) -> datetime | None:
        """The earliest instant >= ctx.at at which every rule allows the contact.

        Only time-dependent rules are judged again: a blocking flag (paid, opt-out
        ...) proposes None, which ends the search at once.
        """
        horizon = ctx.at + self.horizon
        t = ctx.at
        ctx.explain = False  # explanations are for the verdicts at ``at`` only
        for _ in range(_MAX_STEPS):
            proposal = t
            for r in blocked:
                if r.next_allowed_at is None:
                    return None
                if r.next_allowed_at > proposal:
                    proposal = r.next_allowed_at
            if proposal <= t:  # a rule blocked without moving on: step forward
                proposal = t + timedelta(minutes=1)
            if proposal > horizon:
                return None
            t = proposal
            local = tuple([t.astimezone(z) for z in ctx.zones])
            blocked = [r for r in _evaluate(rules, ctx, t, local) if not r.allowed]
            if not blocked:
                return t
        return None


def _evaluate(
    rules: tuple[Rule, ...], ctx: Context, t: datetime, local: tuple[datetime, ...]
) -> tuple[RuleResult, ...]:
    channel = ctx.channel
    return tuple([
        rule.evaluate(ctx, t, local) if channel in rule.channels else rule.skipped[channel]
        for rule in rules
    ])


def engine_for(config: ComplianceConfig | None = None) -> Engine:
    """The compiled engine of a configuration (compiled once, kept on the config)."""
    config = config or default_config()
    engine = config._compiled
    if engine is None:
        engine = Engine(config)
        object.__setattr__(config, "_compiled", engine)
    return engine


def check(
    subject: Subject,
    channel: Channel,
    at: datetime,
    history: Sequence[HistoryEntry],
    state: StopState,
    *,
    loan_id: str | None = None,
    config: ComplianceConfig | None = None,
    explain: bool = False,
) -> Decision:
    """Decide whether ``subject`` may be contacted on ``channel`` at ``at``.

    ``history`` holds past attempts (any order); entries after ``at`` are ignored.
    ``loan_id`` names the debt for per-debt rules: entries about another loan do
    not count, entries without a loan count for every loan, and without a
    ``loan_id`` every entry counts.  ``explain`` fills in a detail for allowed
    verdicts too (slower; for ``bot check`` and the console).
    """
    return engine_for(config).check(subject, channel, at, history, state, loan_id=loan_id,
                                    explain=explain)

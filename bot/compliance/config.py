"""The compliance configuration: named rules, their parameters, and rule sets.

Every rule the engine enforces is a named entry of :attr:`ComplianceConfig.rules`
(``"us.hours"``, ``"cn.holidays"`` ...) whose parameters are a small frozen
dataclass.  The defaults below come from docs/compliance-rules.md (the legal
sources are in each rule's ``source``); a lender overrides them with a YAML or
TOML file read by :func:`load_compliance_config`, which validates every value
and names the file and key of anything wrong.  docs/compliance.md documents
the file.

Rule sets group rules; the country picks one (``country_rule_sets``), the
region may add one (``region_rule_sets``, keys like ``"US-MA"``), and every rule
of every selected set applies (the strictest wins).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError

from bot.compliance.calendars import supported_calendars
from bot.compliance.zones import zone
from bot.domain import Channel, ContactOutcome
from bot.errors import ConfigError

__all__ = [
    "ComplianceConfig",
    "DailyCapParams",
    "HolidayOverrides",
    "HolidayParams",
    "PostConversationParams",
    "RestDayParams",
    "RollingCapParams",
    "RuleParams",
    "WindowParams",
    "cached_compliance_config",
    "default_config",
    "load_compliance_config",
    "load_holiday_overrides",
]

ALL_CHANNELS: frozenset[Channel] = frozenset(Channel)
PHONE: frozenset[Channel] = frozenset({Channel.VOICE, Channel.SMS})
VOICE: frozenset[Channel] = frozenset({Channel.VOICE})


def _time_of_day(value: Any) -> Any:
    """``"08:00"`` or ``"08:00:00"``; a bare YAML 21:00 (read as the number 1260) is refused."""
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise ValueError('write a time of day as a quoted "HH:MM" string, e.g. "21:00"')
    try:
        parsed = time.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f'{value!r} is not a time of day "HH:MM"') from None
    if parsed.tzinfo is not None:
        raise ValueError("a time of day has no UTC offset: rules are judged in local time")
    return parsed


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


@dataclass(frozen=True)
class RuleParams:
    """What every rule has.  ``channels``: the channels the rule applies to."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    kind: ClassVar[str] = ""

    enabled: bool = True
    channels: frozenset[Channel] = ALL_CHANNELS
    source: str = ""  # the legal source or the reason for a house rule
    verified: bool = True  # False: the value comes from a secondary source


@dataclass(frozen=True)
class WindowParams(RuleParams):
    """Contact only between ``start`` (inclusive) and ``end`` (exclusive) local time."""

    kind: ClassVar[str] = "window"
    start: TimeOfDay = time(8, 0)
    end: TimeOfDay = time(21, 0)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError("start must be before end (windows do not span midnight)")


@dataclass(frozen=True)
class RestDayParams(RuleParams):
    """No contact on these ISO weekdays (1 Monday ... 7 Sunday) in local time."""

    kind: ClassVar[str] = "rest_days"
    days: frozenset[int] = frozenset({7})

    def __post_init__(self) -> None:
        if not self.days or any(d < 1 or d > 7 for d in self.days):
            raise ValueError("days must be ISO weekdays 1 (Monday) to 7 (Sunday)")


@dataclass(frozen=True)
class HolidayParams(RuleParams):
    """No contact on the holidays of ``calendar`` (a ``holidays`` package country)."""

    kind: ClassVar[str] = "holidays"
    calendar: str = "CN"
    bridge_weekends: bool = False  # block weekend days joined to a holiday (a holiday break)
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    overrides_file: str | None = None  # read by load_compliance_config, merged into the two sets

    def __post_init__(self) -> None:
        if self.calendar not in supported_calendars():
            raise ValueError(f"calendar {self.calendar!r} is not a country the holidays package knows")
        both = self.extra_holidays & self.extra_working_days
        if both:
            raise ValueError(f"{min(both)} is both an extra holiday and an extra working day")


@dataclass(frozen=True)
class _CapParams(RuleParams):
    max_count: int = 1  # contact is blocked once this many counted attempts exist
    counted_channels: frozenset[Channel] = ALL_CHANNELS  # which history entries count
    outcomes: frozenset[ContactOutcome] | None = None  # None: any outcome (an attempt)
    per_loan: bool = False  # count only entries about the same loan (or about no loan)
    per_channel: bool = False  # count only entries on the channel being checked

    def __post_init__(self) -> None:
        if self.max_count < 1:
            raise ValueError("max_count must be at least 1 (disable the rule with enabled = false)")


@dataclass(frozen=True)
class RollingCapParams(_CapParams):
    """At most ``max_count`` counted attempts in any ``window_days`` x 24 hours."""

    kind: ClassVar[str] = "rolling_cap"
    window_days: int = 7

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.window_days <= 366:
            raise ValueError("window_days must be between 1 and 366")


@dataclass(frozen=True)
class DailyCapParams(_CapParams):
    """At most ``max_count`` counted attempts per local calendar day."""

    kind: ClassVar[str] = "daily_cap"


@dataclass(frozen=True)
class PostConversationParams(RuleParams):
    """After a conversation (its day is day 1), no contact through day ``days``."""

    kind: ClassVar[str] = "post_conversation"
    days: int = 7
    counted_channels: frozenset[Channel] = VOICE
    outcomes: frozenset[ContactOutcome] = frozenset({ContactOutcome.CONVERSATION})
    per_loan: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 366:
            raise ValueError("days must be between 1 and 366")
        if not self.outcomes:
            raise ValueError("outcomes must name at least one outcome")


PARAM_KINDS: dict[str, type[RuleParams]] = {
    cls.kind: cls
    for cls in (WindowParams, RestDayParams, HolidayParams, RollingCapParams, DailyCapParams,
                PostConversationParams)
}

_REG_F = "12 CFR 1006 (Regulation F)"
_CN_STD = "互联网金融 个人网络消费信贷 贷后催收风控指引 (2025); NIFA 2024 指引; CBA 指引"


def default_rules() -> dict[str, RuleParams]:
    """The built-in rules and their parameters (docs/compliance-rules.md)."""
    return {
        "us.hours": WindowParams(start=time(8), end=time(21), source=f"{_REG_F} 1006.6(b)(1)(i)"),
        "us.call_frequency": RollingCapParams(
            max_count=7, window_days=7, channels=VOICE, counted_channels=VOICE, per_loan=True,
            source=f"{_REG_F} 1006.14(b)(2)(i)",
        ),
        "us.post_conversation": PostConversationParams(
            days=7, channels=VOICE, counted_channels=VOICE, per_loan=True,
            source=f"{_REG_F} 1006.14(b)(2)(ii)",
        ),
        "us-ma.telephone_frequency": RollingCapParams(
            max_count=2, window_days=7, channels=PHONE, counted_channels=PHONE, per_loan=True,
            source="940 CMR 7.04(1)(f) (2 per 7 days to a personal number; 2 per 30 days to others)",
        ),
        "us-wa.hours": WindowParams(start=time(8), end=time(21), source="RCW 19.16.250", verified=False),
        "us-wa.weekly_communications": RollingCapParams(
            max_count=3, window_days=7, channels=ALL_CHANNELS, counted_channels=ALL_CHANNELS,
            per_loan=False, source="RCW 19.16.250", verified=False,
        ),
        "us-fl.hours": WindowParams(
            start=time(8), end=time(21), channels=PHONE,
            source="Fla. Stat. 559.72(17) (email excluded since 2025)",
        ),
        "cn.hours": WindowParams(start=time(8), end=time(22), source=_CN_STD),
        "cn.holidays": HolidayParams(
            calendar="CN", bridge_weekends=True,
            source="法定节假日 per the State Council schedule (holidays package) + override file",
        ),
        "cn.connected_calls": DailyCapParams(
            max_count=3, channels=VOICE, counted_channels=VOICE,
            outcomes=frozenset({ContactOutcome.CONNECTED, ContactOutcome.CONVERSATION}),
            source=_CN_STD,
        ),
        "cn.attempts_per_channel": DailyCapParams(
            max_count=6, channels=ALL_CHANNELS, counted_channels=ALL_CHANNELS, per_channel=True,
            source="CBA 指引 (year unverified)", verified=False,
        ),
        "eu.hours": WindowParams(start=time(8), end=time(21), source="GDPR Art. 5(1)(c), 25; house default"),
        "eu.sunday": RestDayParams(source="house default (no numeric rule in EU law)"),
        "gb.hours": WindowParams(start=time(8), end=time(21), source="FCA CONC 7.9.4R; house default"),
        "gb.sunday": RestDayParams(source="FCA CONC 7.9.4R; house default"),
        "default.hours": WindowParams(start=time(8), end=time(20), source="house default"),
        "default.sunday": RestDayParams(source="house default"),
    }


def default_rule_sets() -> dict[str, tuple[str, ...]]:
    return {
        "us": ("us.hours", "us.call_frequency", "us.post_conversation"),
        "us-ma": ("us-ma.telephone_frequency",),
        "us-wa": ("us-wa.hours", "us-wa.weekly_communications"),
        "us-fl": ("us-fl.hours",),
        "cn": ("cn.hours", "cn.holidays", "cn.connected_calls", "cn.attempts_per_channel"),
        "eu": ("eu.hours", "eu.sunday"),
        "gb": ("gb.hours", "gb.sunday"),
        "default": ("default.hours", "default.sunday"),
    }


_EU_EEA = (
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO CH"
).split()


def default_country_rule_sets() -> dict[str, str]:
    table = {c: "eu" for c in _EU_EEA}
    table.update({c: "gb" for c in ("GB", "GG", "JE", "IM")})
    table.update({c: "us" for c in ("US", "PR", "GU", "VI", "AS", "MP")})
    table["CN"] = "cn"
    return table


def default_region_rule_sets() -> dict[str, str]:
    return {"US-MA": "us-ma", "US-WA": "us-wa", "US-FL": "us-fl"}


@dataclass(frozen=True, eq=False)
class ComplianceConfig:
    """Everything the engine is configured with.  Treat it as immutable.

    Compared and hashed by identity (``eq=False``): its engine is compiled once
    per object, and callers may key caches on it.
    """

    rules: Mapping[str, RuleParams] = field(default_factory=default_rules)
    rule_sets: Mapping[str, tuple[str, ...]] = field(default_factory=default_rule_sets)
    country_rule_sets: Mapping[str, str] = field(default_factory=default_country_rule_sets)
    region_rule_sets: Mapping[str, str] = field(default_factory=default_region_rule_sets)
    fallback_rule_set: str = "default"  # countries without a rule set of their own
    default_timezone: str = "America/New_York"  # when neither file, region, phone nor country says
    search_horizon_days: int = 60  # next_allowed_at looks this far ahead at most
    source: str | None = None  # the file it was read from, for messages
    # The compiled engine, built on first use (bot.compliance.engine).
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, params in self.rules.items():
            if not isinstance(params, RuleParams):
                raise ValueError(f"rules.{name}: not a rule parameter object")
        for set_name, members in self.rule_sets.items():
            for member in members:
                if member not in self.rules:
                    raise ValueError(f"rule_sets.{set_name}: unknown rule {member!r}")
        for key, set_name in [*self.country_rule_sets.items(), *self.region_rule_sets.items()]:
            if set_name not in self.rule_sets:
                raise ValueError(f"{key}: unknown rule set {set_name!r}")
        for key in self.region_rule_sets:
            if "-" not in key:
                raise ValueError(f"region_rule_sets: key {key!r} must look like US-MA")
        if self.fallback_rule_set not in self.rule_sets:
            raise ValueError(f"fallback_rule_set: unknown rule set {self.fallback_rule_set!r}")
        if zone(self.default_timezone) is None:
            raise ValueError(f"default_timezone: unknown IANA time zone {self.default_timezone!r}")
        if not 1 <= self.search_horizon_days <= 366:
            raise ValueError("search_horizon_days must be between 1 and 366")

    def with_default_timezone(self, name: str) -> ComplianceConfig:
        """The same configuration with another fallback zone (settings.default_timezone)."""
        return replace(self, default_timezone=name)


_DEFAULT: ComplianceConfig | None = None


def default_config() -> ComplianceConfig:
    """The built-in configuration (one shared instance, so its engine is compiled once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ComplianceConfig()
    return _DEFAULT


# --- files -------------------------------------------------------------------------


@dataclass(frozen=True)
class HolidayOverrides:
    holidays: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()


_TOP_KEYS = {
    "rules", "rule_sets", "country_rule_sets", "region_rule_sets", "fallback_rule_set",
    "default_timezone", "search_horizon_days",
}


def _read_mapping(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with path.open("rb") as fh:
                data: Any = tomllib.load(fh)
        elif suffix in {".yaml", ".yml"}:
            with path.open(encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        else:
            raise ConfigError(f"{path}: unknown file type {suffix!r} (use .yaml, .yml or .toml)")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except ValueError as exc:  # PyYAML builds dates itself and fails on 2027-13-01
        raise ConfigError(f"{path}: not a valid value: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def _problems(exc: ValidationError, prefix: str) -> str:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{prefix}.{loc}" if loc else prefix
        out.append(f"{key}: {err['msg']}")
    return "; ".join(out)


def _date_set(value: Any, path: Path, key: str) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {key}: expected a list of dates (YYYY-MM-DD)")
    out = set()
    for i, item in enumerate(value):
        if isinstance(item, date):
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(str(item).strip()))
        except ValueError:
            raise ConfigError(f"{path}: {key}[{i}]: {item!r} is not a date YYYY-MM-DD") from None
    return frozenset(out)


def load_holiday_overrides(path: str | Path) -> HolidayOverrides:
    """An override file: ``holidays: [dates]`` and ``working_days: [dates]`` (YAML or TOML).

    Use it when the State Council announces a year's schedule that the installed
    ``holidays`` package does not have yet, or for the lender's own closing days.
    """
    path = Path(path)
    data = _read_mapping(path)
    unknown = sorted(set(data) - {"holidays", "working_days"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (expected holidays, working_days)")
    overrides = HolidayOverrides(
        holidays=_date_set(data.get("holidays"), path, "holidays"),
        working_days=_date_set(data.get("working_days"), path, "working_days"),
    )
    both = overrides.holidays & overrides.working_days
    if both:
        raise ConfigError(f"{path}: {min(both)} is listed as a holiday and as a working day")
    return overrides


def _rule_from_file(
    name: str, raw: Any, current: RuleParams | None, path: Path
) -> RuleParams:
    key = f"rules.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {key}: expected a mapping of parameters")
    raw = dict(raw)
    kind = raw.pop("kind", None)
    if current is None:
        if kind is None:
            raise ConfigError(
                f"{path}: {key}: a new rule needs a kind ({', '.join(sorted(PARAM_KINDS))})"
            )
        if kind not in PARAM_KINDS:
            raise ConfigError(f"{path}: {key}.kind: unknown kind {kind!r} ({', '.join(sorted(PARAM_KINDS))})")
        cls: type[RuleParams] = PARAM_KINDS[kind]
        values: dict[str, Any] = {}
    else:
        cls = type(current)
        if kind is not None and kind != cls.kind:
            raise ConfigError(f"{path}: {key}.kind: {name} is a {cls.kind} rule, not {kind!r}")
        values = {f.name: getattr(current, f.name) for f in fields(cls)}
    values.update(raw)
    overrides_file = values.get("overrides_file")
    try:
        params = TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_problems(exc, key)}") from None
    if isinstance(params, HolidayParams) and overrides_file and "overrides_file" in raw:
        file = Path(str(overrides_file))
        if not file.is_absolute():
            file = path.parent / file
        try:
            extra = load_holiday_overrides(file)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {key}.overrides_file: {exc}") from None
        try:
            params = replace(
                params,
                extra_holidays=params.extra_holidays | extra.holidays,
                extra_working_days=params.extra_working_days | extra.working_days,
            )
        except ValueError as exc:
            raise ConfigError(f"{path}: {key}: {exc} (with {file})") from None
    return params


def load_compliance_config(
    path: str | Path | None, *, default_timezone: str | None = None
) -> ComplianceConfig:
    """The built-in configuration with the overrides of a YAML or TOML file.

    ``default_timezone`` (settings.default_timezone) is used unless the file sets
    its own.  Raises :class:`ConfigError` naming the file and the key.
    """
    base = default_config()
    if path is None:
        if default_timezone and default_timezone != base.default_timezone:
            try:
                return base.with_default_timezone(default_timezone)
            except ValueError as exc:
                raise ConfigError(f"compliance configuration: {exc}") from None
        return base
    path = Path(path)
    data = _read_mapping(path)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(_TOP_KEYS))})")

    rules = dict(base.rules)
    raw_rules = data.get("rules") or {}
    if not isinstance(raw_rules, dict):
        raise ConfigError(f"{path}: rules: expected a mapping of rule name -> parameters")
    for name, raw in raw_rules.items():
        rules[str(name)] = _rule_from_file(str(name), raw, rules.get(str(name)), path)

    rule_sets = dict(base.rule_sets)
    raw_sets = data.get("rule_sets") or {}
    if not isinstance(raw_sets, dict):
        raise ConfigError(f"{path}: rule_sets: expected a mapping of set name -> list of rules")
    for name, members in raw_sets.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{path}: rule_sets.{name}: expected a list of rule names")
        rule_sets[str(name)] = tuple(members)

    tables: dict[str, dict[str, str]] = {
        "country_rule_sets": dict(base.country_rule_sets),
        "region_rule_sets": dict(base.region_rule_sets),
    }
    for table_name, table in tables.items():
        raw_table = data.get(table_name) or {}
        if not isinstance(raw_table, dict):
            raise ConfigError(f"{path}: {table_name}: expected a mapping")
        for key, value in raw_table.items():
            if not isinstance(value, str):
                raise ConfigError(f"{path}: {table_name}.{key}: expected a rule set name")
            table[str(key).upper()] = value

    horizon = data.get("search_horizon_days", base.search_horizon_days)
    if not isinstance(horizon, int) or isinstance(horizon, bool):
        raise ConfigError(f"{path}: search_horizon_days: expected a whole number of days")
    for key in ("fallback_rule_set", "default_timezone"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key}: expected a string")
    try:
        return ComplianceConfig(
            rules=rules,
            rule_sets=rule_sets,
            country_rule_sets=tables["country_rule_sets"],
            region_rule_sets=tables["region_rule_sets"],
            fallback_rule_set=data.get("fallback_rule_set", base.fallback_rule_set),
            default_timezone=data.get("default_timezone", default_timezone or base.default_timezone),
            search_horizon_days=horizon,
            source=str(path),
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


@lru_cache(maxsize=16)
def cached_compliance_config(path: str | None, default_timezone: str) -> ComplianceConfig:
    """:func:`load_compliance_config`, read once per process for each (file, zone).

    Long-running services (planner, dispatcher) share one compiled engine; a
    changed file is read again on restart.
    """
    return load_compliance_config(path, default_timezone=default_timezone)

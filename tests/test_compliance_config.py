"""load_compliance_config: overrides from YAML/TOML, new rules, and errors naming file and key."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.compliance import StopState, Subject, check, load_compliance_config
from bot.compliance.config import (
    HolidayParams,
    RollingCapParams,
    WindowParams,
    default_config,
    load_holiday_overrides,
)
from bot.domain import Channel
from bot.errors import ConfigError

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")
OK = StopState(consent=frozenset(Channel))
S_NY = Subject("B1", "US", "NY", None, "+12125551234", "jane@example.com")
S_CN = Subject("C1", "CN", "BJ", None, "+8613812341234", "li@example.cn")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_is_the_shared_default() -> None:
    assert load_compliance_config(None) is default_config()
    assert load_compliance_config(None, default_timezone="America/New_York") is default_config()
    other = load_compliance_config(None, default_timezone="Asia/Tokyo")
    assert other.default_timezone == "Asia/Tokyo"
    assert default_config().default_timezone == "America/New_York"


def test_yaml_overrides_one_parameter_and_keeps_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.yaml", 'rules:\n  us.hours:\n    end: "20:00"\n')
    config = load_compliance_config(path)
    params = config.rules["us.hours"]
    assert isinstance(params, WindowParams)
    assert (params.start, params.end) == (time(8), time(20))
    assert params.source == default_config().rules["us.hours"].source
    assert config.source == str(path)
    at = datetime(2026, 11, 30, 20, 30, tzinfo=NY)
    assert check(S_NY, Channel.SMS, at, (), OK).allowed
    blocked = check(S_NY, Channel.SMS, at, (), OK, config=config)
    assert blocked.reasons == ("quiet_hours",)


def test_toml_file_works_the_same(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.toml", '[rules."us-ma.telephone_frequency"]\nwindow_days = 30\n'
                  'max_count = 2\n\n[rules."eu.sunday"]\nenabled = false\n')
    config = load_compliance_config(path)
    params = config.rules["us-ma.telephone_frequency"]
    assert isinstance(params, RollingCapParams) and params.window_days == 30
    assert config.rules["eu.sunday"].enabled is False


def test_a_new_rule_set_for_a_region(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.yaml", """
rules:
  us-ny.hours:
    kind: window
    start: "09:00"
    end: "20:00"
    channels: [voice]
    source: "house rule"
rule_sets:
  us-ny: [us-ny.hours]
region_rule_sets:
  us-ny: us-ny
""")
    config = load_compliance_config(path)
    at = datetime(2026, 11, 30, 8, 30, tzinfo=NY)
    call = check(S_NY, Channel.VOICE, at, (), OK, config=config)
    assert call.rule_set == "us+us-ny"
    assert call.reasons == ("quiet_hours",)
    assert call.next_allowed_at == datetime(2026, 11, 30, 9, 0, tzinfo=NY)
    assert check(S_NY, Channel.SMS, at, (), OK, config=config).allowed


def test_country_table_and_default_timezone(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules.yaml", "country_rule_sets:\n  jp: eu\ndefault_timezone: Asia/Tokyo\n")
    config = load_compliance_config(path, default_timezone="Europe/Paris")
    assert config.country_rule_sets["JP"] == "eu"
    assert config.default_timezone == "Asia/Tokyo"  # the file wins over the setting


def test_holiday_override_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "cn").mkdir()
    _write(tmp_path / "cn", "2027.yaml", "holidays: [2027-10-06, 2027-10-07]\nworking_days: [2027-09-26]\n")
    path = _write(tmp_path, "rules.yaml", "rules:\n  cn.holidays:\n    overrides_file: cn/2027.yaml\n")
    config = load_compliance_config(path)
    params = config.rules["cn.holidays"]
    assert isinstance(params, HolidayParams)
    assert params.extra_holidays == {date(2027, 10, 6), date(2027, 10, 7)}
    assert params.extra_working_days == {date(2027, 9, 26)}
    assert params.bridge_weekends is True
    at = datetime(2027, 10, 6, 10, 0, tzinfo=SH)
    assert check(S_CN, Channel.SMS, at, (), OK).allowed  # the package does not know 2027's schedule yet
    decision = check(S_CN, Channel.SMS, at, (), OK, config=config)
    assert decision.reasons == ("holiday",)
    assert decision.next_allowed_at == datetime(2027, 10, 8, 8, 0, tzinfo=SH)


def test_holiday_override_file_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "cn.toml", "holidays = [2027-10-06]\nworking_days = []\n")
    assert load_holiday_overrides(path).holidays == {date(2027, 10, 6)}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "rulez: {}\n", "unknown key 'rulez'"),
        ("a.yaml", 'rules:\n  us.hours:\n    start: "8 o\'clock"\n', "rules.us.hours.start"),
        ("a.yaml", "rules:\n  us.hours:\n    end: 21:00\n", 'quoted "HH:MM"'),
        ("a.yaml", 'rules:\n  us.hours:\n    start: "22:00"\n', "start must be before end"),
        ("a.yaml", "rules:\n  us.hours:\n    colour: red\n", "rules.us.hours.colour"),
        ("a.yaml", "rules:\n  us.hours:\n    channels: [fax]\n", "rules.us.hours.channels.0"),
        ("a.yaml", "rules:\n  us.hours:\n    kind: rolling_cap\n", "is a window rule"),
        ("a.yaml", "rules:\n  us-ny.hours:\n    start: \"09:00\"\n", "a new rule needs a kind"),
        ("a.yaml", "rules:\n  x.y:\n    kind: sundial\n", "rules.x.y.kind: unknown kind"),
        ("a.yaml", "rules:\n  us.call_frequency:\n    max_count: 0\n", "max_count must be at least 1"),
        ("a.yaml", "rules:\n  cn.holidays:\n    calendar: XX\n", "calendar 'XX'"),
        ("a.yaml", "rule_sets:\n  us: [us.hours, us.nope]\n", "rule_sets.us: unknown rule 'us.nope'"),
        ("a.yaml", "region_rule_sets:\n  US-NY: nope\n", "US-NY: unknown rule set 'nope'"),
        ("a.yaml", "default_timezone: Mars/Olympus\n", "default_timezone"),
        ("a.yaml", "search_horizon_days: lots\n", "search_horizon_days"),
        ("a.yaml", "rules: [1, 2]\n", "rules: expected a mapping"),
        ("a.yaml", "rules:\n  us.hours: [\n", "not valid YAML"),
        ("a.toml", "rules = \n", "not valid TOML"),
        ("a.json", "{}", "unknown file type"),
        ("a.yaml", "rules:\n  cn.holidays:\n    overrides_file: missing.yaml\n",
         "rules.cn.holidays.overrides_file: "),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        load_compliance_config(path)
    assert str(path.name) in str(err.value)
    assert message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_compliance_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("holidays: ['2027-13-01']\n", "holidays[0]"),
        ("holidays: [2027-13-01]\n", "not a valid value"),
        ("holidays: 2027-10-01\n", "expected a list of dates"),
        ("holidays: [2027-10-01]\nworking_days: [2027-10-01]\n", "holiday and as a working day"),
        ("days_off: []\n", "unknown key 'days_off'"),
    ],
)
def test_holiday_override_errors(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "cn.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_holiday_overrides(path)
    assert "cn.yaml" in str(err.value) and message in str(err.value)

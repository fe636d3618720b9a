"""The console in its users' languages: English, Simplified Chinese and Korean (docs/locales.md).

Pages speak the signed-in user's language (``users.locale``, else ``console_default_locale``)
with dates, times, amounts and rates written that language's way (Babel); the borrower's
own words stay as said, with the understood intent named in the user's language beside
them.  The catalogs are complete and their compiled ``.mo`` files match the ``.po``; the
language is set with ``bot user add/set --locale`` or by the user in the console's header
form; two users in two languages served at the same time each get their own.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from bot.config import Settings
from bot.console.i18n import (
    INTENT_LABELS,
    LOCALE_DIR,
    LOCALES,
    N_,
    IntentCode,
    Message,
    catalog_name,
    field_message,
    formats,
)
from bot.console.users import UserError, set_locale, validate_locale
from bot.db import Database
from bot.db.models import AuditEvent, CallSession, ContactAttempt, User
from bot.domain import Intent
from test_console_effectiveness import _add_outcomes
from test_console_support import (
    NOW,
    PASSWORD,
    World,
    console_server,  # noqa: F401 - fixture
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)
from test_console_users import _stdin

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ("zh_CN", "ko_KR")
_DD_RE = re.compile(r'data-metric="promised_minor" data-currency="USD">([^<]*)<')


def _set(world: World, name: str, locale: str | None) -> None:
    with world.db.session() as session:
        set_locale(session, name, locale, at=NOW, actor="test")


# --- formats --------------------------------------------------------------------------------------


def test_dates_amounts_and_rates_are_written_the_languages_way() -> None:
    at = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert formats("en").when(at) == "2026-11-27 15:00 +00:00"
    assert formats("zh-CN").when(at) == "2026年11月27日 15:00 +00:00"
    assert formats("ko-KR").when(at) == "2026. 11. 27. 오후 3:00 +00:00"
    assert [formats(t).day(date(2026, 12, 11)) for t in LOCALES] == ["2026-12-11", "2026年12月11日", "2026. 12. 11."]
    assert [formats(t).money(8_800, "CNY") for t in LOCALES] == ["CN¥88.00", "¥88.00", "CN¥88.00"]
    assert [formats(t).money(1_500_000, "KRW") for t in LOCALES] == ["₩1,500,000"] * 3
    assert formats("en").rate(0.8814) == "88.1%" and formats("ko-KR").rate(None) == "–"
    assert formats("zh-CN").intent_label("promise_to_pay") == "承诺还款"
    assert formats("ko-KR").intent_label("not_an_intent") == "not_an_intent"  # unknown codes as they are


def test_every_intent_has_a_label() -> None:
    assert set(INTENT_LABELS) == {i.value for i in Intent}


# --- the catalogs ---------------------------------------------------------------------------------


def _read(path: Path, locale: str | None = None):  # type: ignore[no-untyped-def]
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def test_the_template_holds_every_string_of_the_code_and_templates(tmp_path: Path) -> None:
    out = tmp_path / "fresh.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_",
                    "--no-location", "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    fresh = {m.id for m in _read(out) if m.id}
    stored = {m.id for m in _read(LOCALE_DIR / "messages.pot") if m.id}
    assert fresh - stored == set(), "run pybabel extract (docs/locales.md): strings are missing from messages.pot"
    assert stored - fresh == set(), "run pybabel extract (docs/locales.md): messages.pot has strings no longer used"
    assert len(stored) > 250


@pytest.mark.parametrize("catalog", CATALOGS)
def test_every_string_is_translated_and_none_is_fuzzy(catalog: str) -> None:
    ids = {m.id for m in _read(LOCALE_DIR / "messages.pot") if m.id}
    po = _read(LOCALE_DIR / catalog / "LC_MESSAGES" / "messages.po", catalog)
    translated = {m.id: m for m in po if m.id}
    assert ids - set(translated) == set(), f"run pybabel update: {catalog} lacks strings"
    assert [i for i, m in translated.items() if not m.string] == []
    assert [i for i, m in translated.items() if m.fuzzy] == [] and not po.fuzzy
    for msgid, message in translated.items():  # every placeholder kept, none invented
        assert sorted(re.findall(r"%\(\w+\)s", message.string)) == sorted(re.findall(r"%\(\w+\)s", msgid)), msgid


@pytest.mark.parametrize("catalog", CATALOGS)
def test_the_compiled_catalog_is_the_po_compiled(catalog: str) -> None:
    folder = LOCALE_DIR / catalog / "LC_MESSAGES"
    compiled = io.BytesIO()
    write_mo(compiled, _read(folder / "messages.po", catalog))
    assert (folder / "messages.mo").read_bytes() == compiled.getvalue(), (
        f"{catalog}: messages.mo is not messages.po compiled; run pybabel compile -d bot/console/locale")


# --- the setting and its checks -----------------------------------------------------------------------


def test_locale_values_are_checked() -> None:
    assert [validate_locale(t) for t in ("en", "zh-CN", "ko-KR", "", None)] == ["en", "zh-CN", "ko-KR", None, None]
    for bad in ("ko", "zh_CN", "fr-FR", "KO-KR"):
        with pytest.raises(UserError, match="locale: must be one of en, zh-CN, ko-KR"):
            validate_locale(bad)
    assert Settings(console_default_locale="ko-KR").console_default_locale == "ko-KR"
    with pytest.raises(ValueError, match="not a console language"):
        Settings(console_default_locale="fr-FR")


def test_bot_user_add_and_set_locale(db: Database, run_bot,  # type: ignore[no-untyped-def]
                                     monkeypatch: pytest.MonkeyPatch, fast_hashing: None) -> None:
    url = db.url
    _stdin(monkeypatch, PASSWORD + "\n")
    added = run_bot("user", "add", "mei", "--role", "supervisor", "--password-stdin", "--locale", "zh-CN", db_url=url)
    assert added.exit_code == 0, added.output
    _stdin(monkeypatch, PASSWORD + "\n")
    bad = run_bot("user", "add", "kim", "--role", "viewer", "--password-stdin", "--locale", "ko", db_url=url)
    assert bad.exit_code == 2 and "locale: must be one of en, zh-CN, ko-KR" in bad.stderr
    set_ = run_bot("user", "set", "mei", "--locale", "ko-KR", "--timezone", "Asia/Seoul", db_url=url)
    assert set_.exit_code == 0, set_.output
    with db.session() as session:
        mei = session.scalar(select(User).where(User.name == "mei"))
        assert mei is not None and (mei.locale, mei.timezone) == ("ko-KR", "Asia/Seoul")
        assert session.scalar(select(User).where(User.name == "kim")) is None  # nothing half-written
    assert run_bot("user", "set", "mei", "--locale", "", db_url=url).exit_code == 0
    with db.session() as session:
        assert session.scalar(select(User.locale).where(User.name == "mei")) is None
    nothing = run_bot("user", "set", "mei", db_url=url)
    assert nothing.exit_code == 2 and "give --timezone or --locale" in nothing.stderr
    unknown = run_bot("user", "set", "nobody", "--locale", "en", db_url=url)
    assert unknown.exit_code != 0 and "no console user named nobody" in unknown.stderr
    listed = run_bot("user", "list", "--json", db_url=url)
    assert [u["locale"] for u in json.loads(listed.stdout)] == [None]


# --- pages --------------------------------------------------------------------------------------------

#: Per language: <html lang>, the nav's "Calls", the dispute intent, the call's start, an amount.
EXPECTED = {
    "en": ("en", ">Calls</a>", "dispute", "2026-11-27 15:00 +00:00", "$150.00"),
    "zh-CN": ("zh-CN", ">通话</a>", "异议", "2026年11月27日 15:00 +00:00", "US$150.00"),
    "ko-KR": ("ko-KR", ">통화</a>", "이의 제기", "2026. 11. 27. 오후 3:00 +00:00", "US$150.00"),
}


@pytest.mark.parametrize("locale", LOCALES)
def test_pages_speak_the_users_language_and_keep_the_borrowers_words(world: World, locale: str) -> None:
    lang, nav, dispute, started, amount = EXPECTED[locale]
    _set(world, "vic", None if locale == "en" else locale)
    _add_outcomes(world)
    vic = world.as_("vic")
    call = vic.get(f"/console/calls/{world.seeded.call_dispute}").text
    assert f'<html lang="{lang}">' in call and nav in call
    assert f'<dd id="call-started">{started} (UTC)' in call
    # The borrower's words exactly as said, in their own language; the intent named in the user's.
    assert 'class="said" lang="zh-CN">这不是我的欠款</td>' in call
    assert f'data-intent="dispute" title="dispute">{dispute}</span>' in call
    assert 'lang="zh-CN">您好，这里是 Example Lending。</td>' in call
    assert _DD_RE.findall(vic.get("/console").text) == [amount]
    calls = vic.get("/console/calls").text
    assert f'<span data-intent="dispute">{dispute}</span>' in calls


#: Per language, what the server writes as codes, named for the reader: the call's status, its outcome,
#: a flag reason, who answered, a turn's source, a review reason, a compliance reason, a timeline
#: title, a channel (also a chart's series), a chart's day label, a refused filter value, a grouping.
CODES = {
    "en": {"status": "completed", "outcome": "promise", "flag": "low recognition confidence", "answered": "by a person",
           "source": "speech", "reason": "low recognition confidence", "compliance": "quiet hours",
           "timeline": "task opened: review", "channel": "SMS", "day": "11-28",
           "error": "from: is not a real calendar date", "grouping": "<th>channel</th><th>currency</th>",
           "meter": 'aria-label="Calls answered by a person: 1 of 1 (100%)"'},
    "zh-CN": {"status": "已完成", "outcome": "承诺", "flag": "识别置信度低", "answered": "由 真人", "source": "语音",
              "reason": "识别置信度低", "compliance": "免打扰时段", "timeline": "任务已创建：审核", "channel": "短信",
              "day": "11月28日", "error": "from: 不是有效的日历日期", "grouping": "<th>渠道</th><th>币种</th>",
              "meter": 'aria-label="本人接听的通话：1 / 1（100%）"'},
    "ko-KR": {"status": "완료됨", "outcome": "약속", "flag": "인식 신뢰도 낮음", "answered": "사람", "source": "음성",
              "reason": "인식 신뢰도 낮음", "compliance": "연락 금지 시간", "timeline": "작업 생성: 검토", "channel": "문자",
              "day": "11월 28일", "error": "from: 실제 달력 날짜가 아닙니다", "grouping": "<th>채널</th><th>통화</th>",
              "meter": 'aria-label="사람이 받은 통화: 1건 중 1건(100%)"'},
}


@pytest.mark.parametrize("locale", LOCALES)
def test_stored_codes_messages_and_charts_speak_the_users_language(world: World, locale: str) -> None:
    want = CODES[locale]
    _set(world, "vic", None if locale == "en" else locale)
    with world.db.session() as session:  # a call and a contact the rules held back in quiet hours
        for model in (CallSession, ContactAttempt):
            for row in session.scalars(select(model)):
                row.decision = {**(row.decision or {}), "reasons": ["quiet_hours"]}
    vic = world.as_("vic")
    call = vic.get(f"/console/calls/{world.seeded.call_promise}").text
    assert f"<small>{want['status']} · {want['outcome']}</small>" in call
    assert '<span class="badge warn">' in call and f"</span> {want['flag']}</dd>" in call
    assert want["answered"] in call and f"· {want['source']}</small>" in call
    assert f'data-reason="low_confidence">{want["reason"]}</span>' in call
    assert f"{want['compliance']}</p>" in call  # the compliance decision's reasons
    borrower = vic.get("/console/borrowers/B1").text
    timeline = borrower[borrower.index('id="timeline"'):]
    assert want["timeline"] in timeline and f"<td>{want['compliance']}</td>" in timeline
    assert f"<td>{want['channel']}</td>" in timeline
    dashboard = vic.get("/console").text
    charts = dashboard[dashboard.index('<section class="charts">'):]
    assert re.search(rf'<text class="legend" x="\d+" y="\d+">{want["channel"]}</text>', charts)
    assert f'text-anchor="middle">{want["day"]}</text>' in charts
    assert want["meter"] in dashboard
    refused = vic.get("/console/calls", params={"from": "2026-02-30"})
    assert refused.status_code == 400 and f'<p class="error" role="alert">{want["error"]}</p>' in refused.text
    assert vic.get("/console/api/calls", params={"from": "2026-02-30"}).json() == {
        "detail": "from: is not a real calendar date"}  # the JSON API stays English
    grouped = vic.get("/console/effectiveness", params={"by": "channel"}).text
    assert want["grouping"] in grouped
    # The codes themselves stay in the data the page carries and in the JSON API.
    assert 'data-reason="low_confidence"' in call
    item = next(i for i in vic.get("/console/api/calls").json()["items"] if i["id"] == world.seeded.call_promise)
    assert (item["status"], item["outcome"], item["review_reasons"]) == ("completed", "promise", ["low_confidence"])


def test_every_code_label_and_server_message_is_in_the_catalogs() -> None:
    from bot.console.i18n import CODE_LABELS
    from bot.console.review import REASONS

    for tag in ("zh-CN", "ko-KR"):
        fmt = formats(tag)
        for code, label in CODE_LABELS.items():
            assert fmt.code(code) != label or label in ("API",), (tag, code)
        for reason in REASONS:
            assert fmt.message(Message(reason.label)) != reason.label, (tag, reason.code)
    assert formats("en").code("quiet_hours") == "quiet hours" and formats("en").code("not_a_code") == "not_a_code"
    refused = field_message("to", Message(N_("the window is at most %(n)s days"), n=366))
    assert refused == "to: the window is at most 366 days"  # English wherever it is a plain string
    assert formats("zh-CN").message(refused) == "to: 区间最多 366 天"
    assert formats("ko-KR").message(Message(N_("reply: %(intent)s for %(day)s"), intent=IntentCode("promise_to_pay"),
                                            day=date(2026, 12, 4))) == "답장: 상환 약속, 2026. 12. 4."
    assert formats("ko-KR").message("this needs the supervisor role") == "this needs the supervisor role"


def test_the_default_language_is_a_setting(world: World) -> None:
    world.server.use(world.settings.model_copy(update={"console_default_locale": "zh-CN"}), world.db, world.clock)
    page = world.as_("vic").get("/console/calls").text
    assert '<html lang="zh-CN">' in page and "<h1>通话</h1>" in page
    _set(world, "vic", "en")  # the user's own choice wins
    assert "<h1>Calls</h1>" in world.as_("vic").get("/console/calls").text
    login = world.server.browser().get("/console/login").text  # before signing in: the default
    assert '<html lang="zh-CN">' in login and "<h1>登录</h1>" in login


def test_a_user_changes_their_own_language(world: World) -> None:
    vic = world.as_("vic")
    form = {"locale": "ko-KR", "next": "/console/calls"}
    assert vic.post("/console/account/locale", form, csrf=False).status_code == 403
    assert vic.post("/console/account/locale", form, csrf="x" * 43).status_code == 403
    bad = vic.post("/console/account/locale", {"locale": "fr-FR", "next": "/console/calls"})
    assert bad.status_code == 400 and "locale: must be one of en, zh-CN, ko-KR" in bad.text
    moved = vic.post("/console/account/locale", {"locale": "ko-KR", "next": "/console/calls?flagged=yes"})
    assert moved.status_code == 303 and moved.headers["location"] == "/console/calls?flagged=yes"
    page = vic.get("/console/calls").text
    assert '<html lang="ko-KR">' in page and "<h1>통화</h1>" in page
    assert '<option value="ko-KR" lang="ko-KR" selected>한국어</option>' in page
    offsite = vic.post("/console/account/locale", {"locale": "en", "next": "https://evil.example/"})
    assert offsite.headers["location"] == "/console"
    with world.db.session() as session:
        assert session.scalar(select(User.locale).where(User.name == "vic")) == "en"
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.locale")).all()
        assert [(e.actor, e.subject_id, e.detail) for e in events] == [
            ("vic", "vic", {"locale": "ko-KR"}), ("vic", "vic", {"locale": "en"})]


def test_two_users_in_two_languages_at_the_same_time(world: World) -> None:
    _set(world, "vic", "ko-KR")
    _set(world, "sam", "zh-CN")
    browsers = {"vic": world.as_("vic"), "sam": world.as_("sam"), "ada": world.as_("ada")}
    want = {"vic": ("<h1>통화</h1>", 'lang="ko-KR"'), "sam": ("<h1>通话</h1>", 'lang="zh-CN"'),
            "ada": ("<h1>Calls</h1>", 'lang="en"')}

    def fetch(name: str) -> tuple[str, str]:
        return name, browsers[name].get("/console/calls").text

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(fetch, ["vic", "sam", "ada"] * 8))
    for name, page in results:
        heading, lang = want[name]
        assert heading in page and f"<html {lang}>" in page, name
        others = [h for n, (h, _) in want.items() if n != name]
        assert not any(h in page for h in others), name

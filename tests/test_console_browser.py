"""The console in a real browser: headless Chromium (Debian's, never a download) via Playwright.

The bot's app runs on a uvicorn server in a thread over a seeded SQLite
database.  A supervisor signs in, filters the call list, opens a call, plays
a recording, reads the masked transcript, corrects what a turn was understood
as (and the borrower's promise changes), reveals a phone number (audited) and
signs out; a viewer is refused the same reveal; an admin reads the audit log; a viewer
opens the Effectiveness page, groups it by arm and downloads its CSV.
Screenshots of the main pages go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from bot.app import create_app
from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import AuditEvent, CallTurn, Consent, Promise, User
from bot.effectiveness.output import to_csv
from bot.sandbox.server import ThreadedServer
from test_console_review import add_keypad_turns
from test_console_support import (
    B1_PHONE,
    NOW,
    PASSWORD,
    RAW_VALUES,
    Seeded,
    add_users,
    console_settings,
    count,
    fast_hashing,  # noqa: F401 - fixture
    seed,
)

pytestmark = pytest.mark.slow  # a real browser (Chromium through Playwright): `pytest -m "not slow"` leaves it out

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.fixture
def site(tmp_path: Path, _sqlite_template: Path, fast_hashing: None) -> Iterator[tuple[str, Database, Seeded]]:
    path = tmp_path / "bot.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    seeded = seed(db, tmp_path / "media")
    add_users(db)
    server = ThreadedServer(create_app(console_settings(tmp_path / "media"), db, FixedClock(NOW))).start()
    try:
        yield server.base_url, db, seeded
    finally:
        server.stop()
        db.dispose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


def _page(chromium: Browser, base_url: str, problems: list[str], width: int = 1280) -> Page:
    context = chromium.new_context(base_url=base_url, viewport={"width": width, "height": 900})
    page = context.new_page()
    # Any Content-Security-Policy violation or script error is a failure of the page.
    page.on("console", lambda m: problems.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def _sign_in(page: Page, name: str) -> None:
    page.goto("/console")
    assert page.url.endswith("/console/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#signed-in-as")).to_contain_text(name)


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _masked(page: Page) -> None:
    html = page.content()
    for raw in RAW_VALUES:
        assert raw not in html, raw


def test_a_supervisor_reviews_a_call_and_a_viewer_cannot_reveal(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, db, seeded = site
    problems: list[str] = []
    page = _page(chromium, base_url, problems)

    # Sign in.
    page.goto("/console")
    assert page.url.endswith("/console/login")
    _shot(page, "01-sign-in")
    _sign_in(page, "sam")
    expect(page.locator("h1")).to_contain_text("Today, 2026-11-28")
    expect(page.locator("#card-calls")).to_contain_text("flagged, not reviewed")
    assert page.locator("svg.chart").count() == 3
    _masked(page)
    _shot(page, "02-dashboard")

    # Filter the call list: flagged, low confidence.
    page.click("nav >> text=Calls")
    expect(page.locator("#calls tbody tr")).to_have_count(3)
    page.select_option("#f-flagged", "yes")
    page.check("#f-low")
    page.click("#apply-filters")
    expect(page.locator("#calls tbody tr")).to_have_count(1)
    assert "flagged=yes" in page.url and "low=1" in page.url
    _masked(page)
    _shot(page, "03-calls-filtered")

    # Open the call; the transcript is masked; the recording plays.
    page.click("#calls a.open-call")
    expect(page.locator("h1")).to_contain_text(f"Call {seeded.call_promise}")
    said = page.locator(f'tr[data-turn="{seeded.promise_turn}"] td.said')
    expect(said).to_have_text("I can pay next friday, call me on ******1234")
    expect(page.locator("#script-path li")).to_have_count(6)
    _masked(page)
    state = page.evaluate("""async (id) => {
        const audio = document.getElementById(id);
        const playing = new Promise((resolve) => audio.addEventListener("playing", () => resolve(true), {once: true}));
        await audio.play();
        await playing;
        await new Promise((resolve) => { const f = () => audio.currentTime > 0 ? resolve() : requestAnimationFrame(f); f(); });
        audio.pause();
        return {readyState: audio.readyState, currentTime: audio.currentTime, duration: audio.duration,
                error: audio.error ? audio.error.code : null};
    }""", f"audio-{seeded.promise_turn}")
    assert state["error"] is None and state["readyState"] >= 2 and state["currentTime"] > 0
    assert state["duration"] == pytest.approx(1.0, abs=0.01)
    assert count(db, AuditEvent, AuditEvent.action == "call.recording_played", AuditEvent.actor == "sam") == 1
    _shot(page, "04-call")

    # Correct what the borrower's turn was understood as: a later promise date.
    form = page.locator(f'tr[data-turn="{seeded.promise_turn}"] form.correct')
    form.locator("select").select_option("dispute")
    assert form.locator('input[name="promise_date"]').is_disabled()  # console.js runs under the CSP
    form.locator("select").select_option("promise_to_pay")
    form.locator('input[name="promise_date"]').fill("2026-12-11")
    form.locator("button").click()
    expect(page.locator("p.done")).to_have_text("Correction saved.")
    expect(page.locator("#pending-promise")).to_have_text("2026-12-11 (console)")
    with db.session() as session:
        promises = [(p.promised_date, p.status) for p in session.scalars(select(Promise).order_by(Promise.id))]
    assert promises == [(date(2026, 12, 4), "cancelled"), (date(2026, 12, 11), "pending")]

    # The borrower: timeline and why; reveal the phone number with a reason.
    page.click("#borrower-link")
    expect(page.locator("#b-phone")).to_have_text("+1 ***-***-1234")
    expect(page.locator("#timeline")).to_contain_text("promise to pay on 2026-12-11")
    _masked(page)
    _shot(page, "05-borrower")
    page.select_option("#reveal-field", "phone")
    page.fill("#reveal-reason", "borrower asked us to confirm the number on file")
    page.click("#reveal-button")
    expect(page.locator("#revealed-value")).to_have_text(B1_PHONE)
    with db.session() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "reveal"))
    assert event is not None and (event.actor, event.subject_id, event.detail["fields"]) == ("sam", "B1", ["phone"])
    page.goto("/console/borrowers/B1")
    _masked(page)  # shown once only

    page.goto("/console/tasks")
    expect(page.locator("#tasks tbody tr")).to_have_count(2)
    _shot(page, "06-tasks")

    # Sign out.
    page.click("#sign-out")
    assert page.url.endswith("/console/login")
    page.goto("/console/calls")
    assert page.url.endswith("/console/login?next=/console/calls")
    page.context.close()

    # A viewer sees no reveal form, and a forged reveal is refused.
    viewer = _page(chromium, base_url, problems)
    _sign_in(viewer, "vic")
    viewer.goto("/console/borrowers/B1")
    assert viewer.locator("#reveal-form").count() == 0
    csrf = viewer.locator('input[name="csrf"]').first.get_attribute("value")
    refused = viewer.request.post("/console/borrowers/B1/reveal",
                                  form={"csrf": csrf or "", "field": "phone", "reason": "just curious, really"})
    assert refused.status == 403 and B1_PHONE not in refused.text()
    assert count(db, AuditEvent, AuditEvent.action == "reveal") == 1
    viewer.context.close()

    # The admin reads the audit log.
    admin = _page(chromium, base_url, problems)
    _sign_in(admin, "ada")
    admin.click("nav >> text=Audit")
    expect(admin.locator("#audit")).to_contain_text("borrower asked us to confirm the number on file")
    assert B1_PHONE not in admin.content()
    _shot(admin, "07-audit")
    admin.context.close()

    assert problems == []
    print(f"\nconsole screenshots: {SCREENSHOTS}")


def _no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url}: {widths[0]} px wide in a {widths[1]} px viewport"


def test_on_a_phone_corrections_are_fail_safe_and_the_pages_accessible(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, db, seeded = site
    keypad, silent = add_keypad_turns(db, seeded.call_promise)
    problems: list[str] = []
    page = _page(chromium, base_url, problems, width=390)
    _sign_in(page, "sam")

    # The calls page at phone width: no sideways scroll; Chinese names carry their language.
    page.goto("/console/calls")
    expect(page.locator("#calls tbody tr")).to_have_count(3)
    _no_sideways_scroll(page)
    expect(page.locator(f'tr[data-call="{seeded.call_dispute}"] span.masked')).to_have_attribute("lang", "zh-CN")
    expect(page.locator("footer")).to_contain_text("Times are in UTC")
    _shot(page, "08-calls-phone")

    # The call page: no sideways scroll, every player labelled, the correction boxes start empty.
    page.goto(f"/console/calls/{seeded.call_promise}")
    _no_sideways_scroll(page)
    players = page.locator("audio")
    assert players.count() == 4
    for i in range(players.count()):
        assert (players.nth(i).get_attribute("aria-label") or "").startswith("Recording of turn")
    for turn in (keypad, silent, seeded.promise_turn):
        assert page.locator(f"#correct-intent-{turn}").input_value() == ""
    # Save pressed on an untouched keypad turn: nothing happens (nobody is opted out).
    page.locator(f"#correct-{keypad} button").click()
    assert page.url.endswith(f"/console/calls/{seeded.call_promise}")
    assert page.locator(f"#correct-intent-{keypad}").evaluate("s => s.validity.valueMissing") is True
    with db.session() as session:
        assert session.scalars(select(Consent.id).where(Consent.opted_out_at.is_not(None))).all() == []
        assert session.scalars(select(CallTurn.id).where(CallTurn.corrected_intent.is_not(None))).all() == []
    _shot(page, "09-call-phone")

    # A promise date out of range: the page stays, the message sits beside the field, nothing saved.
    form = page.locator(f"#correct-{seeded.promise_turn}")
    form.locator("select").select_option("promise_to_pay")
    form.locator('input[name="promise_date"]').fill("2027-12-01")
    form.locator("button").click()
    error = page.locator(f"#correct-error-{seeded.promise_turn}")
    expect(error).to_contain_text("promise_date: must lie between the call's day and 180 days after it")
    expect(page.locator("h1")).to_contain_text(f"Call {seeded.call_promise}")
    date_field = page.locator(f"#correct-date-{seeded.promise_turn}")
    expect(date_field).to_have_value("2027-12-01")
    expect(date_field).to_have_attribute("aria-describedby", f"correct-error-{seeded.promise_turn}")
    with db.session() as session:
        assert [(p.promised_date, p.status) for p in session.scalars(select(Promise))] == [
            (date(2026, 12, 4), "pending")]
    _no_sideways_scroll(page)
    _shot(page, "10-call-phone-error")

    # The Chinese transcript is marked as such.
    page.goto(f"/console/calls/{seeded.call_dispute}")
    expect(page.locator("td.said").first).to_have_attribute("lang", "zh-CN")
    _no_sideways_scroll(page)

    # A reveal is Post/Redirect/Get: reloading its result neither shows the value nor reveals again.
    page.goto("/console/borrowers/B1")
    page.select_option("#reveal-field", "phone")
    page.fill("#reveal-reason", "borrower asked us to confirm the number on file")
    page.click("#reveal-button")
    expect(page.locator("#revealed-value")).to_have_text(B1_PHONE)
    assert "?revealed=" in page.url
    page.reload()
    expect(page.locator("#revealed-gone")).to_be_visible()
    _masked(page)
    assert count(db, AuditEvent, AuditEvent.action == "reveal") == 1
    page.context.close()
    # The refused correction answers 400 (the browser logs it); nothing else may go wrong.
    assert [p for p in problems if "/correct: Failed to load resource: the server responded with a status of 400"
            not in p] == []


def test_the_effectiveness_page_groups_and_exports_the_report(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, _db, _seeded = site
    problems: list[str] = []
    page = _page(chromium, base_url, problems)
    _sign_in(page, "vic")
    page.click("nav >> text=Effectiveness")
    expect(page.locator("h1")).to_contain_text("borrower-local days 2026-11-22 to 2026-11-29 (excluded)")
    expect(page.locator("#f-by")).to_have_value("channel")
    expect(page.locator('#funnel tr[data-stage="contacts"] td[data-metric="contacts"]')).to_have_text("4")
    expect(page.locator('#funnel tr[data-stage="promises"] td[data-metric="promises"]')).to_have_text("1")
    expect(page.locator('tr[data-group="channel=voice currency=USD"] td[data-metric="promised_minor"]')
           ).to_have_text("$100.00")
    expect(page.locator("svg.funnel")).to_be_visible()
    _shot(page, "11-effectiveness")

    # Group by arm: the form sends it, the page keeps it, the table follows.
    page.select_option("#f-by", "arm")
    page.click("#apply-filters")
    expect(page.locator("#f-by")).to_have_value("arm")
    assert "by=arm" in page.url
    expect(page.locator("#groups tbody tr")).to_have_count(3)  # none USD, none CNY, unattributed CNY (dispute)
    expect(page.locator('tr[data-group="arm=none currency=USD"] td[data-metric="contacts"]')).to_have_text("3")

    # The CSV export is the report of what the page shows, as a download.
    with page.expect_download() as caught:
        page.click("#csv-export")
    download = caught.value
    assert download.suggested_filename == "effectiveness_2026-11-22_2026-11-29_arm.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    report = page.request.get("/console/api/effectiveness?from=2026-11-22&to=2026-11-29&by=arm").json()
    assert text == to_csv(report) and text.startswith("arm,currency,contacts,")

    # A window that ends before it starts: the page with the message, nothing computed.
    page.goto("/console/effectiveness?from=2026-11-28&to=2026-11-01&by=arm")
    expect(page.locator("#effectiveness-error")).to_contain_text("to: must be after from")
    expect(page.locator("#f-by")).to_have_value("arm")
    assert page.locator("#groups").count() == 0

    # At phone width: no sideways scroll.
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto("/console/effectiveness")
    _no_sideways_scroll(page)
    _shot(page, "12-effectiveness-phone")
    page.context.close()
    assert [p for p in problems if "status of 400" not in p] == []


def test_a_viewer_switches_the_console_to_korean(chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, db, seeded = site
    problems: list[str] = []
    page = _page(chromium, base_url, problems)
    _sign_in(page, "vic")
    page.click("nav >> text=Calls")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.select_option("#language", "ko-KR")
    page.click("#change-language")
    page.wait_for_url("**/console/calls")  # back on the page the form was sent from
    expect(page.locator("html")).to_have_attribute("lang", "ko-KR")
    nav = page.locator("header nav")
    for label in ("대시보드", "통화", "성과", "작업"):
        expect(nav).to_contain_text(label)
    expect(page.locator("h1")).to_have_text("통화")
    expect(page.locator("#sign-out")).to_have_text("로그아웃")
    # The borrower's words stay as said, in their language; the intent is named in Korean beside them.
    page.goto(f"/console/calls/{seeded.call_dispute}")
    said = page.locator("#transcript td.said[lang='zh-CN']", has_text="这不是我的欠款")
    expect(said).to_have_count(1)
    expect(page.locator("#transcript .understood .intent[data-intent='dispute']")).to_have_text("이의 제기")
    expect(page.locator("#call-started")).to_contain_text("2026. 11. 27. 오후 3:00 +00:00")
    _shot(page, "11-call-in-korean")
    with db.session() as session:
        assert session.scalar(select(User.locale).where(User.name == "vic")) == "ko-KR"
    assert problems == []

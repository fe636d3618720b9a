"""The review queue and the call recording in a real browser (headless Chromium through Playwright).

* a supervisor opens the queue, presses "Next" and lands on the most urgent call, assigned
  to them; unassigns and takes it again; marks it reviewed and it leaves the queue;
* the whole call's recording plays with the transcript in sync: pressing a turn's time
  seeks the recording there (``audio.currentTime``) and highlights the turn.
"""

from __future__ import annotations

import io
import math
import re
import wave
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from test_console_browser import _page, _shot, _sign_in, chromium, site  # noqa: F401 - fixtures
from test_console_support import NOW, Seeded, count, fast_hashing  # noqa: F401 - fixture

from bot.db import Database
from bot.db.models import AuditEvent, CallSession, CallTurn

pytestmark = pytest.mark.slow  # a real browser (Chromium through Playwright): `pytest -m "not slow"` leaves it out

CURRENT = re.compile(r"\bcurrent\b")
#: where each of the seeded promise call's five turns starts in its recording (seconds)
OFFSETS = [0.0, 4.5, 8.0, 12.5, 17.0]


def stereo_wav(seconds: float, rate: int = 8000) -> bytes:
    """A two-channel 16-bit WAV: a tone on the left (the bot), another on the right (the borrower)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        for freq in (440.0, 660.0):
            frames += int(5000 * math.sin(2 * math.pi * freq * i / rate)).to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def _record_call(db: Database, seeded: Seeded) -> None:
    ref = f"recordings/{seeded.call_promise}/call-RE{'0' * 32}.wav"
    path = Path(seeded.media_dir) / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stereo_wav(20.0))
    with db.session() as session:
        call = session.get(CallSession, seeded.call_promise)
        call.recording_ref, call.recording_channels = ref, 2
        call.recording_started_at = call.answered_at
        turns = session.query(CallTurn).filter(CallTurn.session_id == call.id).order_by(CallTurn.seq).all()
        for turn, offset in zip(turns, OFFSETS, strict=True):
            turn.offset_s = offset


def _opt_out_call(db: Database) -> int:
    started = NOW - timedelta(hours=2)
    with db.session() as session:
        call = CallSession(borrower_id="B1", loan_id="B1-L1", locale="en-US", script="first_stage", speech=True,
                           status="completed", answered_by="human", answered_at=started, outcome="opt_out",
                           flagged=False, min_confidence=0.97, started_at=started, created_at=started,
                           updated_at=started)
        session.add(call)
        session.flush()
        return call.id


def test_a_supervisor_works_the_queue_with_next_and_assignment(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, db, seeded = site
    opt_out = _opt_out_call(db)
    problems: list[str] = []
    page = _page(chromium, base_url, problems)
    _sign_in(page, "sam")
    page.goto("/console/calls")
    page.click("#review-queue")
    expect(page.locator("h1")).to_contain_text("Review queue")
    rows = page.locator("#calls tbody tr")
    expect(rows).to_have_count(2)  # the voicemail and the reviewed dispute are not in it
    expect(rows.nth(0)).to_have_attribute("data-call", str(opt_out))  # an opt-out before low confidence
    expect(rows.nth(0).locator(".reason")).to_have_text(["asked to stop calls"])
    expect(rows.nth(1).locator(".reason")).to_have_text(["low recognition confidence"])
    _shot(page, "07-review-queue")

    page.click("#next-call")
    expect(page.locator("h1")).to_contain_text(f"Call {opt_out}")
    expect(page.locator("#assigned")).to_contain_text("sam since")
    page.click("#unassign")
    expect(page.locator("p.done")).to_have_text("The call is assigned to nobody.")
    expect(page.locator("#assigned")).to_contain_text("nobody")
    page.click("#assign-me")
    expect(page.locator("#assigned")).to_contain_text("sam since")
    assert count(db, AuditEvent, AuditEvent.action == "call.assigned", AuditEvent.actor == "sam") == 3

    page.click("#review-form button")
    expect(page.locator("#review-state")).to_contain_text("reviewed by sam")
    page.goto("/console/calls?queue=1")
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-call", str(seeded.call_promise))
    rows.nth(0).locator("button.take").click()
    expect(page.locator("p.done")).to_have_text("The call is assigned to you.")
    expect(rows.nth(0).locator("td.assigned")).to_contain_text("sam")
    assert problems == []


def test_the_call_recording_plays_in_sync_with_the_transcript(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    base_url, db, seeded = site
    _record_call(db, seeded)
    problems: list[str] = []
    page = _page(chromium, base_url, problems)
    _sign_in(page, "sam")
    page.goto(f"/console/calls/{seeded.call_promise}")
    audio = page.locator("#call-audio")
    expect(audio).to_have_attribute("preload", "none")  # opening the page plays nothing, audits nothing
    assert count(db, AuditEvent, AuditEvent.action == "call.recording_played") == 0

    turn = page.locator(f'tr[data-turn="{seeded.promise_turn}"]')
    turn.locator("button.seek").click()  # the fourth turn: 0:12
    # Playing from 0:12, and the recording's length known (a loaded machine may report the position
    # a moment before the metadata).
    page.wait_for_function("() => { const a = document.getElementById('call-audio');"
                           " return a.currentTime >= 12.5 && isFinite(a.duration); }")
    state = page.evaluate("""() => { const a = document.getElementById('call-audio'); a.pause();
        return {time: a.currentTime, duration: a.duration, error: a.error && a.error.code}; }""")
    assert state["error"] is None and 12.5 <= state["time"] < 17.0 and abs(state["duration"] - 20.0) < 0.05
    expect(turn).to_have_class(CURRENT)
    expect(page.locator("#transcript tr.current")).to_have_count(1)
    # Seeking to the first turn moves the highlight there.
    first = page.locator("#transcript tbody tr").first
    first.locator("button.seek").click()
    page.wait_for_function("() => document.getElementById('call-audio').currentTime < 4.5")
    page.evaluate("() => document.getElementById('call-audio').pause()")
    expect(first).to_have_class(CURRENT)
    expect(turn).not_to_have_class(CURRENT)
    assert count(db, AuditEvent, AuditEvent.action == "call.recording_played", AuditEvent.actor == "sam") >= 1
    _shot(page, "08-call-recording")

    # A viewer is told the call is recorded but gets no player, and the file is refused.
    viewer = _page(chromium, base_url, problems)
    _sign_in(viewer, "vic")
    viewer.goto(f"/console/calls/{seeded.call_promise}")
    assert viewer.locator("#call-audio").count() == 0 and viewer.locator("button.seek").count() == 0
    assert viewer.request.get(f"/console/media/calls/{seeded.call_promise}").status == 403
    assert problems == []


def test_the_queue_names_a_low_margin_answer_and_speaks_chinese(
        chromium: Browser, site: tuple[str, Database, Seeded]) -> None:
    """A borrower's answer accepted with a margin barely above the acceptance margin brings its call
    to the queue as "low margin"; in Chinese the reasons, the call's status and outcome, the
    turn's margin and the dashboard chart's series and days are Chinese too."""
    base_url, db, seeded = site
    with db.session() as session:  # accepted at 2.8: within the band above the acceptance margin (2.39 + 0.6)
        session.get(CallTurn, seeded.promise_turn).margin = 2.8
    problems: list[str] = []
    page = _page(chromium, base_url, problems)
    _sign_in(page, "sam")
    page.goto("/console/calls?queue=1")
    row = page.locator(f'#calls tbody tr[data-call="{seeded.call_promise}"]')
    expect(row.locator(".reason")).to_have_text(["barely recognised (low margin)", "low recognition confidence"])
    expect(row.locator('.reason[data-reason="low_margin"]')).to_have_count(1)

    page.select_option("#language", "zh-CN")
    page.click("#change-language")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.goto("/console/calls?queue=1")
    expect(row.locator(".reason")).to_have_text(["勉强识别（余量低）", "识别置信度低"])
    expect(row.locator('td[data-label="状态"]')).to_have_text("已完成 · 真人")
    _shot(page, "13-review-queue-in-chinese")
    page.goto(f"/console/calls/{seeded.call_promise}")
    expect(page.locator("h1 small")).to_have_text("已完成 · 承诺")
    turn = page.locator(f'tr[data-turn="{seeded.promise_turn}"]')
    expect(turn.locator("small.margin.low")).to_have_text("余量 2.8")
    page.goto("/console")
    legend = page.locator("section.charts svg").first.locator("text.legend")
    expect(legend).to_have_text(["短信", "电子邮件", "语音电话"])
    expect(page.locator("section.charts svg").first.locator("text.label").last).to_have_text("11月28日")
    assert problems == []

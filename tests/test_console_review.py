"""What a supervisor reads and does on a call is fail-safe, over real HTTP, on SQLite and PostgreSQL.

* the correction of a keypad or silent turn starts on no intent, and a
  correction without one, or with a promise date out of range, keeps the call
  page with the message beside the field and changes nothing;
* "answered" counts people, answering machines apart (dashboard, calls page);
* only calls that need a person are "to review" (not voicemail, busy,
  unanswered or failed ones);
* times are in one stated zone (UTC) with the borrower's local time beside;
* the console's key colour pairs have a contrast of at least 4.5:1 (WCAG AA).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_console_support import (
    NOW,
    World,
    console_server,  # noqa: F401 - fixture
    count,
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)

from bot.db import Database
from bot.db.models import AuditEvent, CallSession, CallTurn, Consent, Promise

CSS = Path(__file__).resolve().parent.parent / "templates" / "web" / "static" / "console.css"


def add_keypad_turns(db: Database, call_id: int) -> tuple[int, int]:
    """A keypad answer that meant nothing the script knew, and a silence, on a call."""
    with db.session() as session:
        ids = []
        for seq, source, text in ((6, "dtmf", "9"), (7, "silence", None)):
            turn = CallTurn(session_id=call_id, seq=seq, speaker="borrower", node="promise_date",
                            at=NOW - timedelta(minutes=50), source=source, text_redacted=text, flagged=False)
            session.add(turn)
            session.flush()
            ids.append(turn.id)
    return ids[0], ids[1]


def _call(world: World, **values: object) -> int:
    started = values.pop("started_at", NOW - timedelta(minutes=30))
    with world.db.session() as session:
        call = CallSession(borrower_id="B1", loan_id="B1-L1", locale="en-US", script="first_stage", speech=True,
                           started_at=started, created_at=started, updated_at=started,
                           **{"status": "completed", "flagged": False, **values})
        session.add(call)
        session.flush()
        return call.id


def _nothing_corrected(world: World) -> None:
    with world.db.session() as session:
        assert session.scalars(select(CallTurn.corrected_intent).where(
            CallTurn.corrected_intent.is_not(None))).all() == []
        assert session.scalars(select(Consent.id).where(Consent.opted_out_at.is_not(None))).all() == []
    assert count(world.db, AuditEvent, AuditEvent.action == "call.turn_corrected") == 0


def test_a_correction_starts_on_no_intent_and_is_refused_without_one(world: World) -> None:
    keypad, silent = add_keypad_turns(world.db, world.seeded.call_promise)
    s = world.seeded
    sam = world.as_("sam")
    page = sam.get(f"/console/calls/{s.call_promise}").text
    for turn in (keypad, silent, s.promise_turn):
        select_html = re.search(rf'<select[^>]*id="correct-intent-{turn}"[^>]*>.*?</select>', page, re.DOTALL)
        assert select_html, turn
        options = re.findall(r'<option value="([^"]*)"( selected)?>', select_html.group(0))
        assert options[0] == ("", " selected") and all(not sel for _, sel in options[1:]), (turn, options)
        assert "choose…" in select_html.group(0) and " required" in select_html.group(0)
    # Saved unchanged (no intent): refused with the message beside the field, nothing done.
    for form in ({}, {"intent": ""}, {"intent": "", "promise_date": "2026-12-11"}):
        response = sam.post(f"/console/calls/{s.call_promise}/turns/{keypad}/correct", form)
        assert response.status_code == 400, form
        assert f'<h1>Call {s.call_promise}' in response.text  # the call page, not an error page
        error = re.search(rf'<p class="field-error" role="alert" id="correct-error-{keypad}">([^<]*)</p>',
                          response.text)
        assert error and error.group(1).startswith("intent: choose what the borrower meant"), response.text[-2000:]
        select_tag = re.search(rf'<select[^>]*id="correct-intent-{keypad}"[^>]*>', response.text)
        assert select_tag and 'aria-invalid="true"' in select_tag.group(0)
    _nothing_corrected(world)


@pytest.mark.parametrize("promise_date", ["2027-12-01", "2026-02-30", "2026-11-01", "11/12/2026"])
def test_a_bad_promise_date_keeps_the_page_with_the_message_beside_the_field(world: World,
                                                                              promise_date: str) -> None:
    s = world.seeded
    sam = world.as_("sam")
    response = sam.post(f"/console/calls/{s.call_promise}/turns/{s.promise_turn}/correct",
                        {"intent": "promise_to_pay", "promise_date": promise_date})
    assert response.status_code == 400
    html = response.text
    assert f"<h1>Call {s.call_promise}" in html and 'id="transcript"' in html
    error = re.search(rf'id="correct-error-{s.promise_turn}">([^<]*)</p>', html)
    assert error and error.group(1).startswith("promise_date: "), html[-3000:]
    form = html[html.index(f'id="correct-{s.promise_turn}"'):]
    form = form[:form.index("</form>")]
    # What was typed is kept in the form, the date field is marked invalid and described by the message.
    assert '<option value="promise_to_pay" selected>' in form
    assert f'value="{promise_date}" aria-invalid="true" aria-describedby="correct-error-{s.promise_turn}"' in form
    with world.db.session() as session:
        promises = [(p.promised_date, p.status) for p in session.scalars(select(Promise).order_by(Promise.id))]
    assert promises == [(date(2026, 12, 4), "pending")]
    _nothing_corrected(world)


def test_answered_counts_people_and_machines_apart(world: World) -> None:
    answered = NOW - timedelta(minutes=29)
    _call(world, answered_by="machine_end_beep", answered_at=answered, outcome="voicemail")
    _call(world, answered_by="fax", answered_at=answered, outcome="failed")
    unknown_talked = _call(world, answered_by="unknown", answered_at=answered, outcome="partial")
    _call(world, answered_by=None, answered_at=answered, outcome="partial")  # nobody said anything
    _call(world, answered_by=None, answered_at=None, status="no-answer", outcome="no_answer")
    with world.db.session() as session:
        session.add(CallTurn(session_id=unknown_talked, seq=1, speaker="borrower", node="greeting", at=answered,
                             source="speech", text_redacted="hello", confidence=0.9, intent="other", flagged=False))
    vic = world.as_("vic")
    calls = vic.get("/console/api/dashboard").json()["calls"]
    # Today: the seeded call (a person), the person AMD could not tell, two machines, two nobody.
    assert (calls["started"], calls["answered"], calls["machine"]) == (6, 2, 2)
    html = vic.get("/console").text
    assert "Calls answered by a person 33%" in html and "Answering machines: 2" in html
    today = {"from": NOW.date().isoformat(), "to": NOW.date().isoformat()}
    assert vic.get("/console/api/calls", params=today).json()["answered"] == {"person": 2, "machine": 2, "other": 2}
    page = vic.get("/console/calls", params=today).text
    assert re.search(r"6 calls: <strong>2</strong> answered by a person,\s*<strong>2</strong> by an answering "
                     r"machine, 2 not answered", page)


def test_only_calls_that_need_a_person_are_to_review(world: World) -> None:
    s = world.seeded
    quiet = {outcome: _call(world, status=status, outcome=outcome)
             for status, outcome in (("busy", "busy"), ("no-answer", "no_answer"), ("failed", "failed"))}
    needs = {
        "wrong_party": _call(world, answered_by="human", outcome="wrong_party"),
        "opt_out": _call(world, answered_by="human", outcome="opt_out"),
        "unconfirmed_promise": _call(world, answered_by="human", outcome="partial", state={"facts": {
            "right_party_confirmed": True, "disclosed": True, "promise_date": "2026-12-01",
            "promise_confirmed": False}}),
        "disclosure_not_completed": _call(world, answered_by="human", outcome="partial", state={"facts": {
            "right_party_confirmed": True, "disclosed": False}}),
        "paid_during_call": _call(world, answered_by="human", outcome="completed", flagged=True,
                                  flags={"reasons": ["paid_during_call"]}),
    }
    items = {i["id"]: i for i in world.as_("vic").get("/console/api/calls").json()["items"]}
    for call_id in (s.call_voicemail, *quiet.values()):
        assert not items[call_id]["to_review"] and items[call_id]["review_reasons"] == [], items[call_id]
    assert items[s.call_promise]["to_review"] and items[s.call_promise]["review_reasons"] == ["low_confidence"]
    for reason, call_id in needs.items():
        assert items[call_id]["to_review"] and reason in items[call_id]["review_reasons"], (reason, items[call_id])
    assert not items[s.call_dispute]["to_review"]  # reviewed already
    page = world.as_("vic").get("/console/calls").text
    rows = dict(re.findall(r'data-call="(\d+)">.*?<td data-label="Reviewed" class="review">(.*?)</td>', page, re.DOTALL))
    badge = '<span class="badge warn">to review</span>'
    for call_id in (s.call_voicemail, *quiet.values()):
        assert badge not in rows[str(call_id)] and "nothing to review" in rows[str(call_id)]
    assert all(badge in rows[str(i)] for i in (s.call_promise, *needs.values()))
    assert badge in world.as_("vic").get(f"/console/calls/{needs['opt_out']}").text
    assert "nothing to review" in world.as_("vic").get(f"/console/calls/{quiet['busy']}").text


def test_times_are_in_one_stated_zone_with_the_borrowers_local_time_beside(world: World) -> None:
    s = world.seeded
    vic = world.as_("vic")
    page = vic.get("/console/calls").text
    assert "Times are in UTC" in page and "Started (UTC)" in page
    # The New York call of 14:00 UTC: 09:00 there; the Shanghai call of 15:00 UTC yesterday: 23:00 there.
    assert re.search(r"2026-11-28 14:00 \+00:00<br><small[^>]*>2026-11-28 09:00 -05:00 America/New_York", page)
    assert re.search(r"2026-11-27 15:00 \+00:00<br><small[^>]*>2026-11-27 23:00 \+08:00 Asia/Shanghai", page)
    call = vic.get(f"/console/calls/{s.call_dispute}").text
    assert re.search(r"2026-11-27 15:00 \+00:00 \(UTC\) · <span class=\"local\">2026-11-27 23:00 \+08:00 "
                     r"borrower's time, Asia/Shanghai", call)
    borrower = vic.get("/console/borrowers/B2").text
    assert "When (UTC) · borrower's time (Asia/Shanghai)" in borrower and "2026-11-27 23:00 +08:00" in borrower
    assert vic.get("/console/api/calls").json()["zone"] == "UTC"


# --- contrast ---------------------------------------------------------------------------------------


def _css_rules(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"@media[^{]*\{(.*?\})\s*\}", "", text, flags=re.DOTALL)  # the base rules are the ones checked
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        props = {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in body.split(";")) if v.strip()}
        for selector in selectors.split(","):
            rules.setdefault(" ".join(selector.split()), {}).update(props)
    variables = {k: v for k, v in rules.get(":root", {}).items() if k.startswith("--")}
    return variables, rules


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_wcag() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the well-known AA grey


def test_text_colours_of_the_console_have_at_least_4_5_to_1_contrast() -> None:
    variables, rules = _css_rules(CSS.read_text(encoding="utf-8"))

    def colour(selector: str, prop: str) -> str:
        value = rules[selector][prop].split()[-1] if prop == "background" else rules[selector][prop]
        found = re.fullmatch(r"var\((--[\w-]+)\)", value)
        value = variables[found.group(1)] if found else value
        assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", value), (selector, prop, value)
        return value

    white, page = "#fff", colour("body", "background")
    pairs = {
        "text on the page": (colour("body", "color"), page),
        "muted on the page": (colour(".muted", "color"), page),
        "muted on white (tables, cards)": (colour(".muted", "color"), white),
        "muted in a flagged row": (colour(".muted", "color"), colour("tr.flagged", "background")),
        "links": (colour("a", "color"), white),
        "links on the page": (colour("a", "color"), page),
        "buttons": (colour("button", "color"), colour("button", "background")),
        "header button": (colour("header.top button", "color"), colour("header.top button", "background")),
        "badge": (colour(".badge", "color"), colour(".badge", "background")),
        "badge warn": (colour(".badge.warn", "color"), colour(".badge.warn", "background")),
        "badge ok": (colour(".badge.ok", "color"), colour(".badge.ok", "background")),
        "low confidence in a flagged row": (colour(".low", "color"), colour("tr.flagged", "background")),
        "error": (colour(".error", "color"), colour(".error", "background")),
        "field error": (colour(".field-error", "color"), colour(".field-error", "background")),
        "done": (colour(".done", "color"), colour(".done", "background")),
        "chart labels": (colour("svg.chart text", "fill"), white),
    }
    low = {name: round(contrast(*pair), 2) for name, pair in pairs.items() if contrast(*pair) < 4.5}
    assert low == {}


def test_a_user_with_a_zone_reads_times_in_it(world: World) -> None:
    from bot.console.users import UserError, ensure_user, validate_timezone

    ensure_user(world.db, "pia", "viewer", "correct horse battery staple", clock=world.clock,
                timezone="Europe/Paris")
    pia = world.as_("pia")
    page = pia.get("/console/calls").text
    assert "Times are in Europe/Paris" in page and "Started (Europe/Paris)" in page
    assert re.search(r"2026-11-28 15:00 \+01:00<br><small[^>]*>2026-11-28 09:00 -05:00 America/New_York", page)
    assert pia.get("/console/api/calls").json()["zone"] == "Europe/Paris"
    assert "When (Europe/Paris)" in pia.get("/console/borrowers/B1").text
    assert "Times are in UTC" in world.as_("vic").get("/console/calls").text  # others keep theirs
    for bad in ("Mars/Olympus", "../etc/passwd", "x" * 80):
        with pytest.raises(UserError, match="timezone: not a known IANA time zone"):
            validate_timezone(bad)

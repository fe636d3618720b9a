"""The review queue, over real HTTP on SQLite and PostgreSQL (docs/console.md, "Review queue").

* each call that needs a person carries its reasons (code and label), computed in SQL
  for a whole page at once;
* the queue is sorted by urgency: opt-out, dispute, paid claim first, then a wrong party,
  then the quality of the conversation;
* voicemail, busy, unanswered, failed calls and answering machines are never in it,
  whatever their flags;
* "Next" takes the most urgent call that is nobody's (or mine) and assigns it to me;
  assigning and unassigning are audited and shown on the row; a reviewed call leaves it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select
from test_console_support import (
    NOW,
    World,
    console_server,  # noqa: F401 - fixture
    count,
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)

from bot.console import queries, review
from bot.console.filters import CallFilters
from bot.db.models import AuditEvent, CallSession, CallTurn

#: The queue's order, most urgent first (the seeded promise call is low confidence).
ORDER = ["opt_out", "dispute", "paid_claim", "wrong_party", "disclosure_not_completed", "unconfirmed_promise",
         "readback_refused", "low_margin", "low_confidence", "silences"]


def _call(world: World, minutes_ago: int, turns: list[dict[str, Any]] = (), **values: Any) -> int:  # type: ignore[assignment]
    started = NOW - timedelta(minutes=minutes_ago)
    with world.db.session() as session:
        call = CallSession(borrower_id="B1", loan_id="B1-L1", locale="en-US", script="first_stage", speech=True,
                           started_at=started, created_at=started, updated_at=started,
                           **{"status": "completed", "flagged": False, "answered_by": "human",
                              "answered_at": started, "min_confidence": 0.95, **values})
        session.add(call)
        session.flush()
        for seq, spec in enumerate(turns, start=1):
            session.add(CallTurn(session_id=call.id, seq=seq, speaker="borrower", at=started, flagged=False,
                                 **{"source": "speech", "confidence": 0.95, **spec}))
        return call.id


def _queue_world(world: World) -> dict[str, int]:
    """One call per reason (started in an order unlike the urgency), and calls nobody took part in."""
    facts = {"right_party_confirmed": True, "disclosed": True}
    calls = {
        "silences": _call(world, 200, [{"source": "silence", "confidence": None}] * 2, outcome="partial"),
        # accepted, but its margin (2.7 a second) is within the band above the acceptance margin (2.39 + 0.6)
        "low_margin": _call(world, 195, [{"intent": "affirm", "margin": 2.7}], outcome="completed"),
        "readback_refused": _call(world, 190, [{"node": "confirm_opt_out", "intent": "deny"}], outcome="completed"),
        "unconfirmed_promise": _call(world, 180, outcome="partial", state={"facts": {
            **facts, "promise_date": "2026-12-01", "promise_confirmed": False}}),
        "disclosure_not_completed": _call(world, 170, outcome="partial", state={"facts": {
            "right_party_confirmed": True, "disclosed": False}}),
        "wrong_party": _call(world, 160, outcome="wrong_party"),
        "paid_claim": _call(world, 150, [{"intent": "paid"}], outcome="paid_claim"),
        # a dispute understood only in a supervisor's correction still counts
        "dispute": _call(world, 140, [{"intent": "other", "corrected_intent": "dispute"}], outcome="partial"),
        "opt_out": _call(world, 130, outcome="opt_out"),
        "fine": _call(world, 120, [{"intent": "promise_to_pay", "margin": 12.0}], outcome="promise",
                      state={"facts": {**facts, "promise_date": "2026-12-01", "promise_confirmed": True}}),
    }
    # Nobody took part: flags, outcomes and low confidence do not bring them in.
    flagged = {"flagged": True, "flags": {"reasons": ["dispute", "low_confidence"]}, "min_confidence": 0.1}
    nobody = {
        "voicemail": _call(world, 110, outcome="voicemail", answered_by="machine_end_beep", **flagged),
        "busy": _call(world, 100, status="busy", outcome="busy", answered_by=None, answered_at=None, **flagged),
        "no_answer": _call(world, 90, status="no-answer", outcome="no_answer", answered_by=None, answered_at=None),
        "failed": _call(world, 80, status="failed", outcome="failed", answered_by=None, **flagged),
        "machine": _call(world, 70, outcome="opt_out", answered_by="machine_end_other",
                         **{**flagged, "flags": {"reasons": ["opt_out"]}}),
        "fax": _call(world, 60, outcome="partial", answered_by="fax", **flagged),
    }
    return {**calls, **{f"nobody:{k}": v for k, v in nobody.items()}}


def test_the_queue_holds_each_call_with_its_reasons_most_urgent_first(world: World) -> None:
    calls = _queue_world(world)
    vic = world.as_("vic")
    body = vic.get("/console/api/calls", params={"queue": "1"}).json()
    got = [item["id"] for item in body["items"]]
    expected = [calls[code] for code in ORDER if code != "low_confidence"]
    expected.insert(ORDER.index("low_confidence"), world.seeded.call_promise)
    assert got == expected, [(i["id"], i["review_reasons"]) for i in body["items"]]
    assert body["total"] == len(expected)
    items = {item["id"]: item for item in body["items"]}
    for code in ORDER:
        call_id = world.seeded.call_promise if code == "low_confidence" else calls[code]
        assert items[call_id]["review_reasons"][0] == code, (code, items[call_id])
        assert items[call_id]["to_review"]
    assert items[calls["opt_out"]]["review_labels"] == ["asked to stop calls"]
    assert items[calls["readback_refused"]]["review_labels"] == ["said no to a read-back"]
    # Every call, in the plain list: nobody's calls carry no reason at all, the fine one none either.
    everything = {i["id"]: i for i in vic.get("/console/api/calls").json()["items"]}
    for key, call_id in calls.items():
        if key.startswith("nobody:") or key == "fine":
            assert everything[call_id]["review_reasons"] == [] and not everything[call_id]["to_review"], key
    # The queue page: its title, each row with its reasons as labels.
    page = vic.get("/console/calls", params={"queue": "1"}).text
    assert "<h1>Review queue" in page
    assert page.index(f'data-call="{calls["opt_out"]}"') < page.index(f'data-call="{calls["silences"]}"')
    assert '<span class="reason" data-reason="disclosure_not_completed">disclosure not completed</span>' in page
    for key, call_id in calls.items():
        if key.startswith("nobody:") or key == "fine":
            assert f'data-call="{call_id}"' not in page, key


def test_low_margin_is_a_spoken_turn_below_the_acceptance_margin_plus_the_band(world: World) -> None:
    settings = world.settings
    threshold = settings.speech_accept_margin + settings.console_low_margin_band
    assert threshold == 2.39 + 0.6  # the defaults (per second of audio): accepted at 2.39, reviewed up to 2.99
    calls = {
        # no outcome recorded (yet): the call has its reasons all the same
        "below": _call(world, 50, [{"intent": "affirm", "margin": 2.9}]),
        "rejected": _call(world, 49, [{"intent": "other", "margin": 1.0}], outcome="partial"),
        "at": _call(world, 48, [{"intent": "affirm", "margin": threshold}]),
        "above": _call(world, 47, [{"intent": "affirm", "margin": 5.0}]),
        "none": _call(world, 46, [{"intent": "affirm", "margin": None}]),
        "keys": _call(world, 45, [{"source": "dtmf", "intent": "affirm", "margin": 0.5}]),
        "machine": _call(world, 44, [{"intent": "affirm", "margin": 0.5}], answered_by="machine_end_beep",
                         outcome="voicemail"),
    }
    rules = queries.review_rules(settings.console_low_confidence, low_margin=threshold)
    with world.db.session() as session:
        found = review.reasons_for(session, list(calls.values()), rules)
        assert review.reasons_for(session, [calls["below"]], queries.review_rules(0.6)) == {calls["below"]: []}
    assert {key: found[call_id] for key, call_id in calls.items()} == {
        "below": ["low_margin"], "rejected": ["low_margin"], "at": [], "above": [], "none": [], "keys": [],
        "machine": []}
    # The running console uses the settings' threshold; the call page shows each turn's margin.
    sam = world.as_("sam")
    queued = {i["id"]: i for i in sam.get("/console/api/calls", params={"queue": "1"}).json()["items"]}
    assert queued[calls["below"]]["review_reasons"] == ["low_margin"]
    assert queued[calls["below"]]["review_labels"] == ["barely recognised (low margin)"]
    assert calls["at"] not in queued and calls["above"] not in queued
    page = sam.get(f"/console/calls/{calls['below']}").text
    assert f'<small class="margin low" data-margin="2.9">margin 2.9</small>' in page
    page = sam.get(f"/console/calls/{calls['above']}").text
    assert '<small class="margin" data-margin="5.0">margin 5.0</small>' in page


def test_reasons_are_computed_for_a_page_in_a_constant_number_of_queries(world: World) -> None:
    _queue_world(world)
    rules = queries.review_rules(world.settings.console_low_confidence)
    assert "confirm_opt_out" in rules.readback_nodes  # read from the scripts themselves
    statements: list[str] = []

    def counted(*args: Any) -> None:
        statements.append(str(args[2]))

    def run(page_size: int) -> int:
        statements.clear()
        event.listen(world.db.engine, "before_cursor_execute", counted)
        try:
            with world.db.session() as session:
                page = queries.list_calls(session, CallFilters(queue=True), zone_name="UTC", low_confidence=0.6,
                                          page_size=page_size, rules=rules)
        finally:
            event.remove(world.db.engine, "before_cursor_execute", counted)
        assert len(page.items) == min(page_size, page.total)
        return len(statements)

    assert run(2) == run(50)  # one query for the reasons of the whole page, not one per call


def test_next_assigns_the_most_urgent_free_call_and_assignment_is_audited(world: World) -> None:
    calls = _queue_world(world)
    sam, ada = world.as_("sam"), world.as_("ada")
    first = sam.post("/console/calls/next")
    assert first.status_code == 303 and first.headers["location"] == f"/console/calls/{calls['opt_out']}"
    # Another supervisor's Next skips the call sam holds; sam's Next brings him back to his own.
    second = ada.post("/console/calls/next")
    assert second.headers["location"] == f"/console/calls/{calls['dispute']}"
    assert sam.post("/console/calls/next").headers["location"] == f"/console/calls/{calls['opt_out']}"
    with world.db.session() as session:
        held = dict(session.execute(select(CallSession.id, CallSession.assigned_to)
                                    .where(CallSession.assigned_to.is_not(None))).all())
    assert held == {calls["opt_out"]: "sam", calls["dispute"]: "ada"}
    assert count(world.db, AuditEvent, AuditEvent.action == "call.assigned") == 2
    # The queue shows who holds each call; the call page too.
    page = sam.get("/console/calls", params={"queue": "1"}).text
    row = page[page.index(f'data-call="{calls["opt_out"]}"'):]
    assert '<td data-label="Assigned" class="assigned">sam' in row[:row.index("</tr>")]
    assert "sam since" in sam.get(f"/console/calls/{calls['opt_out']}").text
    # Unassign (audited), then mark reviewed: out of the queue, and Next goes on to the next one.
    response = sam.post(f"/console/calls/{calls['opt_out']}/assign", {"assignee": "none"})
    assert response.status_code == 303
    with world.db.session() as session:
        assert session.get(CallSession, calls["opt_out"]).assigned_to is None
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "call.assigned")
                                .order_by(AuditEvent.id.desc())).first()
        assert audit.actor == "sam" and audit.detail["from"] == "sam" and audit.detail["to"] is None
    assert sam.post(f"/console/calls/{calls['opt_out']}/review").status_code == 303
    queued = [i["id"] for i in sam.get("/console/api/calls", params={"queue": "1"}).json()["items"]]
    assert calls["opt_out"] not in queued and calls["dispute"] in queued
    assert sam.post("/console/calls/next").headers["location"] == f"/console/calls/{calls['paid_claim']}"
    assert sam.post(f"/console/calls/{calls['paid_claim']}/assign", {"assignee": "me"}).status_code == 303


def test_next_on_an_empty_queue_and_refusals(world: World) -> None:
    sam = world.as_("sam")
    with world.db.session() as session:  # the only call to review is someone else's
        session.get(CallSession, world.seeded.call_promise).assigned_to = "ada"
    response = sam.post("/console/calls/next")
    assert response.status_code == 303 and response.headers["location"] == "/console/calls?queue=1&done=empty"
    assert "Nothing left to review" in sam.get(response.headers["location"]).text
    vic = world.as_("vic")
    assert vic.post("/console/calls/next").status_code == 403
    assert vic.post(f"/console/calls/{world.seeded.call_promise}/assign", {"assignee": "me"}).status_code == 403
    assert sam.post(f"/console/calls/{world.seeded.call_promise}/assign", {"assignee": "vic"}).status_code == 400
    assert sam.post("/console/calls/999999/assign", {"assignee": "me"}).status_code == 404
    assert count(world.db, AuditEvent, AuditEvent.action == "call.assigned") == 0


def test_every_reason_has_a_distinct_label_and_rank() -> None:
    codes = [r.code for r in review.REASONS]
    labels = [r.label for r in review.REASONS]
    ranks = [r.rank for r in review.REASONS]
    assert len(set(codes)) == len(set(labels)) == len(codes) and all(labels)
    assert ranks == sorted(set(ranks))  # the tuple is in urgency order, no two reasons equally urgent
    assert review.labels(["wrong_party", "unknown_code"]) == ["wrong person", "unknown_code"]

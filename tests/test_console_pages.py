"""The console's pages and actions do what they say, over real HTTP, on SQLite and PostgreSQL.

Call filters and paging, the call page (transcript, decision, path, audio),
review actions and what a corrected intent or promise date does to the
borrower (through the same effects as a reply), the borrower timeline with
"why not contacted today", the task queue, the dashboard figures and the
admin's audit page.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from bot.db.models import AuditEvent, CallSession, CallTurn, Consent, Note, Promise, Survey, Task
from test_console_support import (
    NOW,
    World,
    console_server,  # noqa: F401 - fixture
    count,
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)


def _ids(world: World, **params: str) -> list[int]:
    response = world.as_("vic").get("/console/api/calls", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_call_filters_select_the_right_calls(world: World) -> None:
    s = world.seeded
    vic = world.as_("vic")

    def ids(**params: str) -> list[int]:
        return [item["id"] for item in vic.get("/console/api/calls", params=params).json()["items"]]

    assert ids() == [s.call_promise, s.call_dispute, s.call_voicemail]  # newest first
    assert ids(outcome="promise") == [s.call_promise]
    assert ids(intent="dispute") == [s.call_dispute]
    assert ids(intent="promise_to_pay") == [s.call_promise]
    assert ids(flagged="yes") == [s.call_promise] and ids(flagged="no") == [s.call_dispute, s.call_voicemail]
    assert ids(low="1") == [s.call_promise]
    assert ids(reviewed="yes") == [s.call_dispute] and ids(reviewed="no") == [s.call_promise, s.call_voicemail]
    assert ids(locale="zh-CN") == [s.call_dispute]
    today = NOW.date().isoformat()  # 2026-11-28 in New York too (10:00)
    assert ids(**{"from": today}) == [s.call_promise]
    assert ids(**{"to": (NOW.date() - timedelta(days=1)).isoformat()}) == [s.call_dispute, s.call_voicemail]
    assert ids(**{"from": "2026-11-26", "to": "2026-11-26"}) == [s.call_voicemail]
    assert ids(outcome="promise", reviewed="yes") == []
    page = vic.get("/console/calls", params={"flagged": "yes", "low": "1"}).text
    assert f'data-call="{s.call_promise}"' in page and f'data-call="{s.call_dispute}"' not in page
    assert 'value="yes" selected' in page and 'id="f-low" checked' in page  # the form shows the filters


def test_calls_are_paged(world: World) -> None:
    with world.db.session() as session:
        for n in range(12):
            session.add(CallSession(borrower_id="B2", locale="zh-CN", script="first_stage", status="no-answer",
                                    outcome="no_answer", speech=True, flagged=False,
                                    started_at=NOW - timedelta(days=3, minutes=n),
                                    created_at=NOW, updated_at=NOW))
    world.server.use(world.settings.model_copy(update={"console_page_size": 5}), world.db, world.clock)
    vic = world.as_("vic")
    first = vic.get("/console/api/calls").json()
    assert (first["total"], first["pages"], len(first["items"])) == (15, 3, 5)
    seen = [item["id"] for p in (1, 2, 3) for item in vic.get("/console/api/calls", params={"page": str(p)}).json()["items"]]
    assert len(seen) == len(set(seen)) == 15
    assert len(vic.get("/console/api/calls", params={"page": "99"}).json()["items"]) == 5  # past the end: last page
    html = vic.get("/console/calls", params={"outcome": "no_answer", "page": "2"}).text
    assert "page 2 of 3" in html and 'href="/console/calls?outcome=no_answer&amp;page=3"' in html
    assert 'href="/console/calls?outcome=no_answer"' in html  # page 1 needs no page parameter


def test_the_call_page_shows_the_masked_transcript_decision_path_and_audio(world: World) -> None:
    s = world.seeded
    page = world.as_("vic").get(f"/console/calls/{s.call_promise}").text
    assert "I can pay next friday, call me on ******1234" in page
    assert page.index("Hello, this is Example Lending") < page.index("yes speaking") < page.index("next friday")
    assert "0.42" in page and "promise_to_pay" in page and "2026-12-04" in page
    assert "us+us-ny" in page and "America/New_York" in page and "allowed" in page
    for node in ("greeting", "right_party", "disclosure", "ask_payment", "promise_date", "goodbye"):
        assert f"<li>{node}</li>" in page
    assert f'src="/console/media/turns/{s.bot_turn}"' in page and f'src="/console/media/turns/{s.promise_turn}"' in page
    assert "low_confidence" in page and "+1 ***-***-1234" in page
    assert 'action="/console/calls/' not in page  # a viewer gets no forms (besides sign-out)
    assert "Confirm or correct" in world.as_("sam").get(f"/console/calls/{s.call_promise}").text
    assert world.as_("vic").get("/console/calls/999999").status_code == 404


def test_review_note_and_escalate(world: World) -> None:
    s = world.seeded
    sam = world.as_("sam")
    response = sam.post(f"/console/calls/{s.call_promise}/review")
    assert response.status_code == 303 and response.headers["location"] == f"/console/calls/{s.call_promise}?done=reviewed"
    assert "Marked as reviewed." in sam.get(response.headers["location"]).text
    assert sam.post(f"/console/calls/{s.call_promise}/notes", {"text": "Borrower sounded unsure; email j.d@example.com"}
                    ).status_code == 303
    assert sam.post(f"/console/calls/{s.call_promise}/escalate", {"kind": "hardship"}).status_code == 303
    assert sam.post(f"/console/calls/{s.call_promise}/escalate", {"kind": "hardship"}).status_code == 303  # one task
    assert sam.post(f"/console/calls/{s.call_promise}/escalate", {"kind": "delete_all"}).status_code == 400
    with world.db.session() as session:
        call = session.get(CallSession, s.call_promise)
        assert call is not None and (call.reviewed_at, call.reviewed_by) == (NOW, "sam")
        note = session.scalar(select(Note))
        assert note is not None and note.text_redacted == "Borrower sounded unsure; email j***@example.com"
        tasks = session.scalars(select(Task).where(Task.kind == "hardship")).all()
        assert [(t.borrower_id, t.status, t.source, t.note) for t in tasks] == [
            ("B1", "open", "console", f"escalated from call {s.call_promise}")]
        actions = session.execute(select(AuditEvent.actor, AuditEvent.action).where(AuditEvent.actor != "anonymous")
                                  .order_by(AuditEvent.id)).all()
    # Every row a person's act writes carries their name, the shared task helper's too (the task's source
    # stays "console").
    assert [tuple(a) for a in actions if not a[1].startswith("console.")] == [
        ("sam", "call.reviewed"), ("sam", "note.added"), ("sam", "task.opened"), ("sam", "call.escalated"),
        ("sam", "task.linked"), ("sam", "call.escalated")]
    assert world.as_("vic").get("/console/api/calls", params={"reviewed": "yes"}).json()["total"] == 2


def _promises(world: World) -> list[tuple[date, str, str]]:
    with world.db.session() as session:
        return [(p.promised_date, p.status, p.source) for p in
                session.scalars(select(Promise).where(Promise.borrower_id == "B1").order_by(Promise.id))]


def test_correcting_the_promise_date_replaces_the_promise(world: World) -> None:
    s = world.seeded
    sam = world.as_("sam")
    url = f"/console/calls/{s.call_promise}/turns/{s.promise_turn}/correct"
    assert _promises(world) == [(date(2026, 12, 4), "pending", "voice")]
    response = sam.post(url, {"intent": "promise_to_pay", "promise_date": "2026-12-11"})
    assert response.status_code == 303
    assert _promises(world) == [(date(2026, 12, 4), "cancelled", "voice"), (date(2026, 12, 11), "pending", "console")]
    page = sam.get(f"/console/calls/{s.call_promise}").text
    assert "corrected: promise to pay · 2026-12-11" in page and "2026-12-11 (console)" in page
    with world.db.session() as session:
        turn = session.get(CallTurn, s.promise_turn)
        assert turn is not None
        # The correction sits beside what the bot understood, never over it.
        assert (turn.intent, turn.promise_date) == ("promise_to_pay", date(2026, 12, 4))
        assert (turn.corrected_intent, turn.corrected_promise_date, turn.corrected_by, turn.corrected_at) == (
            "promise_to_pay", date(2026, 12, 11), "sam", NOW)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "call.turn_corrected"))
        assert event is not None and event.detail["previous_promise_date"] == "2026-12-04"  # type: ignore[index]
        assert event.detail["promise_date"] == "2026-12-11"  # type: ignore[index]
    # The borrower's timeline shows the new promise.
    assert "promise to pay on 2026-12-11" in sam.get("/console/borrowers/B1").text
    # A promise needs a date, and a plausible one; other intents take none.
    for form in ({"intent": "promise_to_pay"}, {"intent": "promise_to_pay", "promise_date": "2027-12-01"},
                 {"intent": "promise_to_pay", "promise_date": "2026-02-30"}, {"intent": "dispute",
                 "promise_date": "2026-12-11"}, {"intent": "shout"}, {}):
        assert sam.post(url, form).status_code == 400, form
    assert sam.post(f"/console/calls/{s.call_promise}/turns/{s.bot_turn}/correct",
                    {"intent": "affirm"}).status_code == 400  # the bot's own words are not corrected
    assert sam.post(f"/console/calls/{s.call_dispute}/turns/{s.promise_turn}/correct",
                    {"intent": "affirm"}).status_code == 404  # a turn of another call
    assert len(_promises(world)) == 2


def test_corrections_to_opt_out_dispute_and_wrong_number_change_the_borrower(world: World) -> None:
    s = world.seeded
    sam = world.as_("sam")
    url = f"/console/calls/{s.call_promise}/turns/{s.promise_turn}/correct"
    assert sam.post(url, {"intent": "opt_out"}).status_code == 303
    with world.db.session() as session:
        voice = session.scalar(select(Consent).where(Consent.borrower_id == "B1", Consent.channel == "voice"))
        sms = session.scalar(select(Consent).where(Consent.borrower_id == "B1", Consent.channel == "sms"))
        assert voice is not None and (voice.opted_out_at, voice.opt_out_source) == (NOW, "console")
        assert sms is not None and sms.opted_out_at is None  # a call's opt-out stops calls
    assert sam.post(url, {"intent": "dispute"}).status_code == 303
    assert count(world.db, Task, Task.borrower_id == "B1", Task.kind == "dispute", Task.status == "open") == 1
    assert sam.post(url, {"intent": "wrong_number"}).status_code == 303
    with world.db.session() as session:
        flags = dict(session.execute(select(Consent.channel, Consent.address_flag)
                                     .where(Consent.borrower_id == "B1")).all())
        voice = session.scalar(select(Consent).where(Consent.borrower_id == "B1", Consent.channel == "voice"))
    assert flags == {"sms": "wrong_number", "voice": "wrong_number", "email": None}
    assert voice is not None and voice.opted_out_at == NOW  # nothing is undone by a later correction
    assert count(world.db, Task, Task.kind == "wrong_number") == 1
    assert sam.post(url, {"intent": "paid"}).status_code == 303  # nothing paid: a review task
    assert count(world.db, Task, Task.borrower_id == "B1", Task.note == "call review: paid claim") == 1
    timeline = sam.get("/console/borrowers/B1").text
    assert "opted out of voice" in timeline and "task opened: dispute" in timeline
    with world.db.session() as session:  # each effect is audited in the name of the person who corrected
        effects = session.execute(select(AuditEvent.actor, AuditEvent.action).where(
            AuditEvent.action.in_(["consent.opt_out", "consent.flag", "task.opened"]), AuditEvent.at == NOW)).all()
    assert sorted(tuple(e) for e in effects) == [
        ("sam", "consent.flag"), ("sam", "consent.flag"), ("sam", "consent.opt_out"), ("sam", "task.opened"),
        ("sam", "task.opened"), ("sam", "task.opened")]


def test_the_borrower_timeline_and_why_not_contacted_today(world: World) -> None:
    page = world.as_("vic").get("/console/borrowers/B1")
    assert page.status_code == 200
    html = page.text
    for text in ("sent, delivered", "reply: promise to pay for 2026-12-04", "promise to pay on 2026-12-04",
                 "task opened: review", "call: promise", "call: voicemail", "decision allowed", "B1-L1",
                 "$100.00", "America/New_York"):
        assert text in html, text
    assert html.index("call: promise") < html.index("call: voicemail")  # most recent first
    why = html[html.index('id="why"'):html.index("<h2>Timeline")]
    assert "B1-L1-I1" in why and ("explanation is not available" not in why), why
    assert world.as_("vic").get("/console/borrowers/NOPE").status_code == 404


def test_the_task_queue(world: World) -> None:
    sam = world.as_("sam")
    page = sam.get("/console/tasks").text
    assert "dispute" in page and "sms reply to review" in page
    with world.db.session() as session:
        dispute = session.scalar(select(Task.id).where(Task.kind == "dispute"))
        review = session.scalar(select(Task.id).where(Task.kind == "review"))
    assert sam.post(f"/console/tasks/{dispute}/assign", {"assignee": "me", "return": "/console/tasks?kind=dispute"}
                    ).headers["location"] == "/console/tasks?kind=dispute&done=assigned"
    assert sam.post(f"/console/tasks/{review}/assign", {"assignee": "ada"}).status_code == 303
    assert sam.post(f"/console/tasks/{review}/assign", {"assignee": "vic"}).status_code == 400  # viewers take none
    assert sam.post(f"/console/tasks/{review}/assign", {"assignee": "https://evil", "return": "https://evil"}
                    ).status_code == 400
    mine = sam.get("/console/tasks", params={"assigned": "me"}).text
    assert f'data-task="{dispute}"' in mine and f'data-task="{review}"' not in mine
    assert f'data-task="{review}"' in sam.get("/console/tasks", params={"assigned": "ada"}).text
    assert f'data-task="{review}"' not in sam.get("/console/tasks", params={"kind": "dispute"}).text
    assert sam.post(f"/console/tasks/{dispute}/close", {"note": ""}).status_code == 400
    assert sam.post(f"/console/tasks/{dispute}/close", {"note": "Spoke to the borrower; statement sent"}
                    ).status_code == 303
    assert sam.post(f"/console/tasks/{dispute}/close", {"note": "again"}).status_code == 409
    assert f'data-task="{dispute}"' not in sam.get("/console/tasks").text
    closed = sam.get("/console/tasks", params={"status": "closed"}).text
    assert f'data-task="{dispute}"' in closed and "sam: Spoke to the borrower; statement sent" in closed
    with world.db.session() as session:
        task = session.get(Task, dispute)
        assert task is not None and (task.status, task.closed_at, task.assigned_to) == ("closed", NOW, "sam")
    assert sam.post("/console/tasks/999999/close", {"note": "x"}).status_code == 404


def test_the_dashboard_counts_today(world: World) -> None:
    vic = world.as_("vic")
    data = vic.get("/console/api/dashboard").json()
    assert data["today"] == "2026-11-28" and data["zone"] == "America/New_York"
    assert data["sends"] == {"email": {"sent": 1, "delivered": 0, "failed": 0},
                             "sms": {"sent": 2, "delivered": 1, "failed": 1},
                             "voice": {"sent": 1, "delivered": 0, "failed": 0}}
    assert data["delivery"] == {"delivered": 1, "final": 2, "sent": 2}
    assert data["calls"] == {"started": 1, "answered": 1, "machine": 0, "flagged": 1, "low_confidence": 1,
                             "flagged_unreviewed": 1}
    assert data["promises"] == {"made": 1, "kept": 0, "broken": 0, "pending": 1}
    assert data["replies"] == 1 and data["open_tasks"] == 2 and data["opt_outs_total"] == 0
    assert data["plan"] == {"email": {"sent": 1}, "sms": {"sent": 2}, "voice": {"sent": 1}}
    week = data["week"]
    assert week["labels"][-1] == "2026-11-28" and len(week["labels"]) == 7
    assert week["sent"]["sms"][-1] == 2 and week["calls"][-3:] == [1, 1, 1] and week["promises_made"][-1] == 1
    html = vic.get("/console").text
    assert html.count("<svg") >= 5 and "SMS delivery 50%" in html and "Calls answered by a person 100%" in html
    # Opt-outs today show up.
    world.as_("sam").post(f"/console/calls/{world.seeded.call_promise}/turns/{world.seeded.promise_turn}/correct",
                          {"intent": "opt_out"})
    assert vic.get("/console/api/dashboard").json()["opt_outs"] == {"voice": 1}


def test_the_dashboard_shows_the_last_weeks_satisfaction(world: World) -> None:
    vic = world.as_("vic")
    assert vic.get("/console/api/dashboard").json()["csat"] == {
        "mean": None, "n": 0, "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}}
    assert "No survey answers in the last 7 days." in vic.get("/console").text
    with world.db.session() as session:
        for answered, score in ((NOW, 5), (NOW - timedelta(days=3), 4), (NOW - timedelta(days=3), 4),
                                (NOW - timedelta(days=10), 1), (None, None)):  # too old; unanswered
            asked = answered or NOW
            session.add(Survey(borrower_id="B1", channel="sms", trigger="promise", asked_at=asked,
                               expires_at=asked + timedelta(hours=48), answered_at=answered, score=score))
    data = vic.get("/console/api/dashboard").json()
    assert data["csat"] == {"mean": 4.33, "n": 3, "distribution": {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}}
    card = vic.get("/console").text.split('id="card-csat"')[1].split("</article>")[0]
    assert "4.33" in card and "3 answers" in card


def test_the_audit_page_is_for_admins_and_filters(world: World) -> None:
    world.as_("sam").post("/console/borrowers/B1/reveal", {"field": "email", "reason": "statement by email"})
    ada = world.as_("ada")
    page = ada.get("/console/audit").text
    assert "console.login" in page and "reveal" in page and "statement by email" in page
    only = ada.get("/console/audit", params={"action": "reveal"}).text
    assert "console.login" not in only and "statement by email" in only
    assert "console.login" in ada.get("/console/audit", params={"actor": "sam", "action": "console."}).text
    assert "reveal" not in ada.get("/console/audit", params={"subject": "B2"}).text.split("<tbody>")[1]
    with world.db.session() as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "reveal")) is not None

"""The REST API at /api/v1 over real HTTP (uvicorn), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from api_support import BORROWER, Api, new_key, seed
from bot.api.keys import SCOPES, revoke_key
from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import ApiKey, AuditEvent, Borrower, Consent, ContactAttempt, Hold, IdempotencyKey, Payment, Promise, Task
from bot.importer import import_files
from test_web_support import (  # noqa: F401 - fixtures
    WebHarness,
    harness,
    web,
)


@pytest.fixture
def api(web: WebHarness, db: Database, clock: FixedClock) -> Api:
    """A key with every scope but pii:read (so personal data is masked)."""
    return Api(web, new_key(db, clock, *(s for s in SCOPES if s != "pii:read"))[1])


def _error(response, status: int, code: str, field: str | None = None) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["field"] == field
    assert "Traceback" not in response.text
    return body["error"]


# --- keys and scopes ---------------------------------------------------------------------------


def test_apikey_commands_create_list_and_revoke(web: WebHarness, db: Database, db_url: str, run_bot) -> None:  # noqa: ANN001
    created = run_bot("apikey", "create", "crm", "--scope", "read", "--scope", "pii:read", "--json", db_url=db_url)
    assert created.exit_code == 0, created.output
    data = json.loads(created.stdout)
    assert set(data) == {"id", "name", "key", "scopes"} and data["scopes"] == ["read", "pii:read"]
    with db.session() as s:
        stored = s.scalars(select(AuditEvent).where(AuditEvent.action == "apikey.create")).one()
        assert stored.subject_id == data["id"]
        from bot.db.models import ApiKey

        row = s.get(ApiKey, data["id"])
        assert row is not None and data["key"] not in row.key_hash and len(row.key_hash) == 64
    listed = run_bot("apikey", "list", "--json", db_url=db_url)
    assert [k["id"] for k in json.loads(listed.stdout)] == [data["id"]] and data["key"] not in listed.stdout

    web.use(web.settings, db, FixedClock(datetime(2026, 11, 28, 15, 0, tzinfo=UTC)))
    api = Api(web, data["key"])
    assert api("GET", "/attempts").status_code == 200
    assert run_bot("apikey", "revoke", data["id"], db_url=db_url).exit_code == 0
    _error(api("GET", "/attempts"), 401, "unauthorized")
    assert run_bot("apikey", "revoke", "nope", db_url=db_url).exit_code == 2
    assert run_bot("apikey", "create", "x", "--scope", "everything", db_url=db_url).exit_code == 2


def test_missing_or_unknown_keys_are_401_and_missing_scopes_403(api: Api, db: Database, clock: FixedClock) -> None:
    assert api.client.get("/api/v1/attempts").status_code == 401
    response = api("GET", "/attempts", key="bk_000000000000_" + "x" * 43)
    _error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    _, reader = new_key(db, clock, "read")
    _error(api("PUT", "/borrowers/B1", key=reader, json=BORROWER), 403, "forbidden")
    _, writer = new_key(db, clock, "portfolio:write")
    _error(api("GET", "/attempts", key=writer), 403, "forbidden")
    _error(api("POST", "/payments", key=writer, json={"payment_id": "P", "loan_id": "L", "paid_at": "x",
                                                     "amount": "1"}), 403, "forbidden")


def test_a_payment_checks_its_key_in_its_own_transaction_with_the_same_answers(api: Api, db: Database,
                                                                             clock: FixedClock) -> None:
    """POST /payments looks its key up on the payment's own connection: a bad key is still 401 and a
    missing scope 403 before a bad body's 422, a revoke counts at once, and the last use is written
    even when the payment is refused."""
    seed(api)
    good = {"payment_id": "P1", "loan_id": "B1-L1", "paid_at": "2026-11-27T10:00:00Z", "amount": "100.00"}
    unknown = "bk_000000000000_" + "x" * 43
    for body in (good, {"payment_id": "P1"}, {**good, "extra": 1}):
        _error(api("POST", "/payments", key=unknown, json=body), 401, "unauthorized")
        assert api.client.post("/api/v1/payments", json=body).status_code == 401
    _, reader = new_key(db, clock, "read")
    _error(api("POST", "/payments", key=reader, json={"payment_id": "P1"}), 403, "forbidden")
    _error(api("POST", "/payments", key=reader, json=good, headers={"Idempotency-Key": "a b"}), 403, "forbidden")
    payer_id, payer = new_key(db, clock, "payments:write")
    _error(api("POST", "/payments", key=payer, json={"payment_id": "P1"}), 422, "invalid", "loan_id")
    clock.advance(timedelta(minutes=5))
    _error(api("POST", "/payments", key=payer, json={**good, "loan_id": "NOPE"}), 422, "invalid", "loan_id")
    with db.session() as s:
        row = s.get(ApiKey, payer_id)
        assert row is not None and row.last_used_at == clock.now()
        revoke_key(s, payer_id, clock.now())
    _error(api("POST", "/payments", key=payer, json=good), 401, "unauthorized")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0
    assert api("POST", "/payments", json=good).status_code == 201


# --- writes: the importer's path ---------------------------------------------------------------


def test_put_creates_updates_and_audits_in_the_keys_name(api: Api, db: Database) -> None:
    assert api("PUT", "/borrowers/B1", json=BORROWER).json() == {"kind": "borrower", "id": "B1", "result": "created"}
    again = api("PUT", "/borrowers/B1", json=BORROWER)
    assert again.status_code == 200 and again.json()["result"] == "unchanged"
    changed = api("PUT", "/borrowers/B1", json={**BORROWER, "full_name": "Jane Roe"})
    assert changed.status_code == 200 and changed.json()["result"] == "updated"
    with db.session() as s:
        borrower = s.get(Borrower, "B1")
        assert borrower is not None and borrower.full_name == "Jane Roe" and borrower.phone_e164 == "+12125551234"
        assert {c.channel for c in s.scalars(select(Consent))} == {"sms", "voice", "email"}
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "api.borrower.put")
                           .order_by(AuditEvent.id)).all()
        assert [e.detail["result"] for e in events] == ["created", "unchanged", "updated"]
        assert {e.actor for e in events} == {f"api:{api.key.split('_')[1]}"}
    seed(api, "B2")


def test_a_rejected_row_gets_the_importers_column_and_reason(api: Api, db: Database, clock: FixedClock,
                                                              tmp_path: Path) -> None:
    bad = {**BORROWER, "country": "XX"}
    error = _error(api("PUT", "/borrowers/B9", json=bad), 422, "invalid", "country")
    csv = tmp_path / "borrowers.csv"
    csv.write_text("borrower_id,full_name,phone,email,country,consent_sms,consent_voice,consent_email\n"
                   "B9,Jane Doe,+12125551234,jane.doe@example.com,XX,true,true,true\n")
    [report] = import_files(db, [csv], clock=clock)
    [rejection] = report.rejected
    assert (rejection.column, rejection.reason) == ("country", error["message"])

    _error(api("PUT", "/loans/L1", json={"borrower_id": "NOPE", "principal": "1", "currency": "USD",
                                          "opened_on": "2026-01-01"}), 422, "invalid", "borrower_id")
    _error(api("PUT", "/borrowers/" + "x" * 65, json=BORROWER), 422, "invalid", "borrower_id")
    _error(api("PUT", "/borrowers/B9", json={**BORROWER, "shoe_size": 9}), 422, "invalid", "shoe_size")
    _error(api("PUT", "/borrowers/B9", json={k: v for k, v in BORROWER.items() if k != "consent_sms"}),
           422, "invalid", "consent_sms")
    _error(api("PUT", "/borrowers/B9", content=b"{not json", headers={"content-type": "application/json"}),
           422, "invalid")
    seed(api)
    _error(api("PUT", "/installments/I2", json={"loan_id": "B1-L1", "due_date": "2026-12-01",
                                                "amount_due": "1.001"}), 422, "invalid", "amount_due")
    with db.session() as s:
        assert s.get(Borrower, "B9") is None


def test_payments_are_idempotent_by_payment_id(api: Api, db: Database) -> None:
    seed(api)
    body = {"payment_id": "P1", "loan_id": "B1-L1", "paid_at": "2026-11-25T10:00:00-05:00", "amount": "40.00"}
    first = api("POST", "/payments", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["payment"] == {"payment_id": "P1", "loan_id": "B1-L1", "paid_at": "2026-11-25T15:00:00Z",
                                       "amount": {"minor": 4000, "currency": "USD", "text": "$40.00"}}
    settlement = first.json()["settlement"]
    assert settlement["installments"] == [{"installment_id": "B1-I1", "due_date": "2026-11-20",
                                           "amount_due_minor": 10000, "covered_minor": 4000,
                                           "outstanding_minor": 6000, "paid": False}]
    assert settlement["newly_paid"] == [] and settlement["cancelled_attempts"] == []
    same = api("POST", "/payments", json=body)
    assert same.status_code == 200 and same.json() == first.json()
    _error(api("POST", "/payments", json={**body, "amount": "41.00"}), 409, "conflict", "payment_id")
    _error(api("POST", "/payments", json={**body, "payment_id": "P2", "loan_id": "NOPE"}), 422, "invalid", "loan_id")
    _error(api("POST", "/payments", json={**body, "payment_id": "P3", "amount": "-1"}), 422, "invalid", "amount")
    with db.session() as s:
        assert [(p.id, p.amount_minor) for p in s.scalars(select(Payment))] == [("P1", 4000)]
        assert s.scalar(select(func.count()).where(AuditEvent.action == "api.payment.post")) == 1


def test_a_payment_settles_its_loan_and_cancels_what_is_now_paid(api: Api, db: Database, clock: FixedClock) -> None:
    seed(api)
    with db.session() as s:
        waiting = ContactAttempt(dedupe_key="plan:B1-I1:sms", borrower_id="B1", loan_id="B1-L1",
                                 installment_id="B1-I1", channel="sms", source="planner", status="planned",
                                 next_attempt_at=clock.now(), created_at=clock.now(), updated_at=clock.now())
        s.add(waiting)
        s.flush()
        waiting_id = waiting.id
    body = {"payment_id": "P1", "loan_id": "B1-L1", "paid_at": "2026-11-28T09:00:00Z", "amount": "120.00"}
    first = api("POST", "/payments", json=body)
    assert first.status_code == 201, first.text
    settlement = first.json()["settlement"]
    assert settlement["newly_paid"] == ["B1-I1"] and settlement["cancelled_attempts"] == [waiting_id]
    assert settlement["credit_minor"] == 2000 and settlement["total_paid_minor"] == 12000
    with db.session() as s:
        row = s.get(ContactAttempt, waiting_id)
        assert row is not None and row.status == "cancelled"
    again = api("POST", "/payments", json=body)
    assert again.status_code == 200 and again.json() == first.json()  # the same result, cancellations and all
    standing = api("GET", "/borrowers/B1").json()
    assert standing["outstanding"] == [{"minor": 0, "currency": "USD", "text": "$0.00"}]
    assert all("paid" in d["reasons"] for d in standing["contact"].values())


def test_a_payment_post_runs_a_bounded_number_of_statements(api: Api, db: Database, clock: FixedClock) -> None:
    """The hot path stays lean: a regression that adds a look-up or a write per payment fails here."""
    seed(api)
    with db.session() as s:
        s.add(ContactAttempt(dedupe_key="plan:B1-I1:sms", borrower_id="B1", loan_id="B1-L1", installment_id="B1-I1",
                             channel="sms", source="planner", status="planned", next_attempt_at=clock.now(),
                             created_at=clock.now(), updated_at=clock.now()))
    statements: list[str] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:  # noqa: ANN001
        if statement.split()[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        paid = api("POST", "/payments", json={"payment_id": "P1", "loan_id": "B1-L1",
                                              "paid_at": "2026-11-27T10:00:00Z", "amount": "100.00"})
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert paid.status_code == 201, paid.text
    settlement = paid.json()["settlement"]
    assert settlement["newly_paid"] == ["B1-I1"] and len(settlement["cancelled_attempts"]) == 1
    # key, loan, insert, lock, installments, payments, cover, loan, cancellations, subscriptions, audit
    assert len(statements) <= 11, "\n".join(s.split("\n")[0][:120] for s in statements)


# --- idempotency keys --------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_response_for_24_hours(api: Api, db: Database,
                                                                     clock: FixedClock) -> None:
    seed(api)
    key = {"Idempotency-Key": "hold-1"}
    first = api("POST", "/borrowers/B1/holds", json={"kind": "legal"}, headers=key)
    assert first.status_code == 201
    again = api("POST", "/borrowers/B1/holds", json={"kind": "legal"}, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    _error(api("POST", "/borrowers/B1/holds", json={"kind": "deceased"}, headers=key),
           422, "idempotency_key_reused", "Idempotency-Key")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Hold)) == 1
    clock.advance(timedelta(hours=24, seconds=1))
    later = api("POST", "/borrowers/B1/holds", json={"kind": "deceased"}, headers=key)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    # keys are per API key: another key's "hold-1" is its own
    other = Api(api_web(api), new_key(db, clock, "portfolio:write")[1])
    assert other("POST", "/borrowers/B1/holds", json={"kind": "legal"}, headers=key).json()["kind"] == "legal"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Hold)) == 3
        assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 2


def api_web(api: Api):  # noqa: ANN201
    class _Web:
        client = api.client
    return _Web()


# --- reads -------------------------------------------------------------------------------------


def test_the_borrower_standing_is_masked_without_pii_read(api: Api, db: Database, clock: FixedClock) -> None:
    seed(api)  # due 2026-11-20, now 2026-11-28: 8 days past due
    with db.session() as s:
        s.add(Promise(borrower_id="B1", loan_id="B1-L1", promised_date=date(2026, 12, 3), amount_minor=5000,
                      status="pending", source="sms", created_at=clock.now()))
        s.add(Task(borrower_id="B1", kind="callback", status="open", source="sms", created_at=clock.now()))
    _, reader = new_key(db, clock, "read")
    masked = api("GET", "/borrowers/B1", key=reader).json()
    assert masked["masked"] is True and masked["phone"] != "+12125551234" and "Jane Doe" not in json.dumps(masked)
    assert "+12125551234" not in json.dumps(masked) and "jane.doe@example.com" not in json.dumps(masked)
    assert masked["outstanding"] == [{"minor": 10000, "currency": "USD", "text": "$100.00"}]
    assert masked["overdue"] == masked["outstanding"] and masked["days_past_due"] == 8
    assert masked["pending_promise"]["promised_date"] == "2026-12-03"
    assert [t["kind"] for t in masked["open_tasks"]] == ["callback"]
    assert set(masked["contact"]) == {"sms", "voice", "email"}
    assert masked["contact"]["sms"] == {"allowed": False, "reasons": ["promise_pending"],
                                        "next_allowed_at": "2026-12-04T13:00:00Z"}  # 08:00 in New York
    _, pii = new_key(db, clock, "pii:read")
    plain = api("GET", "/borrowers/B1", key=pii).json()
    assert plain["masked"] is False and plain["name"] == "Jane Doe" and plain["phone"] == "+12125551234"
    _error(api("GET", "/borrowers/NOPE"), 404, "not_found", "borrower_id")


def test_a_hold_stops_contact_until_lifted(api: Api, db: Database) -> None:
    seed(api)
    before = api("GET", "/borrowers/B1").json()["contact"]
    assert before["sms"]["allowed"] is True, before
    hold = api("POST", "/borrowers/B1/holds", json={"kind": "bankruptcy"}).json()
    assert hold["active"] is True and hold["created_by"].startswith("api:")
    held = api("GET", "/borrowers/B1").json()
    assert all(d["allowed"] is False and "hold" in d["reasons"] for d in held["contact"].values())
    assert [h["kind"] for h in held["holds"]] == ["bankruptcy"]
    _error(api("DELETE", "/borrowers/B2/holds/" + str(hold["id"])), 404, "not_found", "hold_id")
    lifted = api("DELETE", f"/borrowers/B1/holds/{hold['id']}")
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert api("DELETE", f"/borrowers/B1/holds/{hold['id']}").json() == lifted.json()
    assert api("GET", "/borrowers/B1").json()["contact"] == before
    _error(api("POST", "/borrowers/B1/holds", json={"kind": "vacation"}), 422, "invalid", "kind")
    with db.session() as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("api.hold.%"))).all()
        assert actions == ["api.hold.place", "api.hold.lift"]


def test_consents_opt_out_and_in_through_the_replies_code(api: Api, db: Database) -> None:
    seed(api)
    out = api("POST", "/borrowers/B1/consents", json={"channel": "sms", "action": "opt_out", "source": "crm"})
    assert out.status_code == 200 and out.json()["changed"] is True and out.json()["address"] != "+12125551234"
    assert api("GET", "/borrowers/B1").json()["contact"]["sms"]["reasons"] == ["opted_out"]
    with db.session() as s:
        row = s.scalars(select(Consent).where(Consent.channel == "sms")).one()
        assert row.opt_out_source == "crm" and row.opted_out_at is not None
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "consent.opt_out")).one()
        assert event.actor.startswith("api:")
    back = api("POST", "/borrowers/B1/consents", json={"channel": "sms", "action": "opt_in", "source": "crm"})
    assert back.json()["changed"] is True
    assert api("GET", "/borrowers/B1").json()["contact"]["sms"]["allowed"] is True
    _error(api("POST", "/borrowers/B1/consents", json={"channel": "fax", "action": "opt_in", "source": "crm"}),
           422, "invalid", "channel")


def _attempt(db: Database, n: int, at: datetime) -> None:
    with db.session() as s:
        s.add(ContactAttempt(dedupe_key=f"k{n}", borrower_id="B1", channel="sms", source="planner", status="sent",
                             address="+12125551234", occurred_at=at, sent_at=at, created_at=at, updated_at=at))


def test_timeline_and_attempts_page_with_cursors_in_a_stable_order(api: Api, db: Database,
                                                                   clock: FixedClock) -> None:
    seed(api)
    t0 = clock.now() - timedelta(days=3)
    for n in range(5):
        _attempt(db, n, t0 + timedelta(hours=n // 2))  # pairs share an instant
    with db.session() as s:
        s.add(Task(borrower_id="B1", kind="review", status="open", source="sms", created_at=t0))
        s.add(Hold(borrower_id="B1", kind="legal", created_at=t0, created_by="api:x"))
    seen: list[str] = []
    cursor = None
    while True:
        page = api("GET", "/borrowers/B1/timeline", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        data = page.json()
        assert len(data["items"]) <= 2
        seen += [i["id"] for i in data["items"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == ["attempt:1", "attempt:2", "hold:1", "task:1", "attempt:3", "attempt:4", "attempt:5"]
    whole = api("GET", "/borrowers/B1/timeline").json()
    assert [i["id"] for i in whole["items"]] == seen and whole["next_cursor"] is None
    assert "+12125551234" not in json.dumps(whole)

    ids: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, "since": (t0 + timedelta(hours=1)).isoformat()}
        data = api("GET", "/attempts", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        ids += [a["id"] for a in data["items"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert ids == [3, 4, 5]
    _error(api("GET", "/attempts", params={"cursor": "garbage"}), 422, "invalid", "cursor")
    _error(api("GET", "/attempts", params={"since": "2026-11-01T00:00:00"}), 422, "invalid", "since")


def test_errors_are_json_without_a_trace(api: Api) -> None:
    _error(api("GET", "/no/such/thing"), 404, "not_found")
    _error(api("PATCH", "/borrowers/B1", json={}), 405, "method_not_allowed")
    _error(api("GET", "/attempts", params={"limit": 0}), 422, "invalid", "limit")
    document = api.client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    docs = api.client.get("/api/v1/docs")
    assert docs.status_code == 200 and "PUT" in docs.text and "/payments" in docs.text and "<script" not in docs.text


# --- events out: what the API changes is reported (bot.events) -------------------------------


def test_payments_and_holds_written_through_the_api_emit_their_events(api: Api, db: Database,
                                                                      clock: FixedClock) -> None:
    from sqlalchemy import select

    from bot.db.models import OutboxEvent
    from bot.events import EVENT_TYPES
    from bot.events.subscriptions import add_subscription

    with db.session() as s:
        add_subscription(s, "http://127.0.0.1:9/hooks", EVENT_TYPES, pii=False, at=clock.now())
    seed(api)
    paid = api("POST", "/payments", json={"payment_id": "P1", "loan_id": "B1-L1",
                                          "paid_at": "2026-11-27T10:00:00Z", "amount": "100.00"})
    assert paid.status_code == 201, paid.text
    assert api("POST", "/payments", json={"payment_id": "P1", "loan_id": "B1-L1",
                                          "paid_at": "2026-11-27T10:00:00Z", "amount": "100.00"}).status_code == 200
    hold = api("POST", "/borrowers/B1/holds", json={"kind": "bankruptcy"})
    assert hold.status_code == 201, hold.text
    hold_id = hold.json()["id"]
    assert api("DELETE", f"/borrowers/B1/holds/{hold_id}").status_code == 200
    assert api("DELETE", f"/borrowers/B1/holds/{hold_id}").status_code == 200  # again: no second event
    with db.sessions() as s:
        events = [(t, b, d) for t, b, d in s.execute(
            select(OutboxEvent.type, OutboxEvent.borrower_id, OutboxEvent.data).order_by(OutboxEvent.id))]
    applied = [d for t, _, d in events if t == "payment.applied"]
    assert applied == [{"payment_id": "P1", "loan_id": "B1-L1", "amount_minor": 10_000, "currency": "USD",
                        "paid_at": "2026-11-27T10:00:00Z", "source": "api", "newly_paid": ["B1-I1"],
                        "cancelled_attempts": 0, "credit_minor": 0}]
    holds = [(d["active"], d["kind"]) for t, _, d in events if t == "hold.changed"]
    assert holds == [(True, "bankruptcy"), (False, "bankruptcy")]
    assert all(b == "B1" for t, b, _ in events if t in ("payment.applied", "hold.changed"))


def test_webhook_subscriptions_through_the_api(api: Api, db: Database, clock: FixedClock) -> None:
    reader = Api(api_web(api), new_key(db, clock, "read")[1])
    assert reader("GET", "/webhooks").status_code == 403
    created = api("POST", "/webhooks", json={"url": "https://crm.example.com/hooks?token=abc",
                                              "events": ["payment.applied", "hold.changed"]})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["secret"].startswith("whsec_") and sub["url"] == "https://crm.example.com/hooks"
    assert set(sub["events"]) == {"hold.changed", "payment.applied"}
    _error(api("POST", "/webhooks", json={"url": "https://x.example.com", "events": ["payment.applied"],
                                          "pii": True}), 403, "forbidden", "pii")
    _error(api("POST", "/webhooks", json={"url": "ftp://x.example.com/", "events": ["payment.applied"]}),
           422, "invalid", "url")
    listed = api("GET", "/webhooks").json()["subscriptions"]
    assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0] and "token" not in str(listed)
    seed(api)
    assert api("POST", "/payments", json={"payment_id": "P1", "loan_id": "B1-L1", "paid_at": "2026-11-27T10:00:00Z",
                                          "amount": "40.00"}).status_code == 201
    [delivery] = api("GET", "/webhooks/deliveries").json()["deliveries"]
    assert delivery["type"] == "payment.applied" and delivery["status"] == "pending"
    assert api("POST", f"/webhooks/deliveries/{delivery['id']}/replay").json() == {"queued": 1}
    _error(api("POST", "/webhooks/deliveries/999999/replay"), 404, "not_found", "delivery_id")
    assert api("DELETE", f"/webhooks/{sub['id']}").status_code == 204
    _error(api("DELETE", f"/webhooks/{sub['id']}"), 404, "not_found", "subscription_id")
    assert api("GET", "/webhooks/deliveries").json() == {"deliveries": []}


def test_portfolio_writes_take_turns_of_api_write_concurrency() -> None:
    """At most ``api_write_concurrency`` writes of one process run at once; the others wait their turn
    in arrival order, and every one runs."""
    import threading
    from types import SimpleNamespace

    import anyio
    import anyio.to_thread

    from bot.api.deps import in_write_turn

    running, peak, order = 0, 0, []
    lock = threading.Condition()
    gate = threading.Event()

    def write(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            order.append(n)
            lock.notify_all()
        gate.wait(5)  # hold the turn until every write has asked for one
        with lock:
            running -= 1
        return n

    async def main(tokens: int) -> list[int]:
        ctx = SimpleNamespace(settings=SimpleNamespace(api_write_concurrency=tokens))
        results: list[int] = []

        async def one(n: int) -> None:
            results.append(await in_write_turn(ctx, write, n))  # type: ignore[arg-type]

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(one, n)
                await anyio.sleep(0)  # arrival order: 0, 1, 2, ...
            # the first ones hold their turns (every other write has asked and waits)
            def turns_taken() -> bool:
                with lock:
                    return lock.wait_for(lambda: running >= tokens, 5)

            assert await anyio.to_thread.run_sync(turns_taken)
            with lock:
                assert running == tokens
            gate.set()
        return sorted(results)

    for tokens in (1, 3):
        running, peak, order = 0, 0, []
        gate.clear()
        assert anyio.run(main, tokens) == list(range(8))
        assert peak == tokens
        assert order[:tokens] == list(range(tokens))  # the first to arrive got the turns

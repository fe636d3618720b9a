"""Risk: the lender's score and segment (import, API), the early-warning score and its reasons,
policy conditions on segment and score band, ``bot risk`` and incremental re-planning.

Database tests run on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from api_support import BORROWER, Api, new_key
from builders import add_loan
from test_console_support import (  # noqa: F401 - fixtures
    NOW,
    World,
    console_server,
    fast_hashing,
    world,
)
from test_planner import AT, FakeCheck, add_borrower, attempts, due, run_plan
from test_web_support import (  # noqa: F401 - fixtures
    WebHarness,
    harness,
    web,
)

from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import Borrower, Consent, ContactAttempt, Loan, Promise
from bot.policy import PolicyError, load_policy
from bot.risk import EARLY_WARNING, LENDER, RiskFacts, early_warning, load_facts, score_for
from bot.scheduler.explain import explain

# --- the early-warning score: a pure function ------------------------------------------------


def test_every_reason_has_its_points_and_text() -> None:
    facts = RiskFacts(broken_promises=3, first_payment_missed=1, days_past_due=45, overdue_installments=2,
                      partial_payments=1, unreached_contacts=6, flagged_addresses=0, phone_numbers=2)
    score = early_warning(facts)
    assert [(r.points, r.code, r.text) for r in score.reasons] == [
        (300, "broken_promise", "3 broken promises to pay"),  # 150 each, at most 300
        (200, "first_payment_missed", "the first installment of a loan is overdue and unpaid"),
        (100, "days_past_due_30", "45 days past due (more than 30)"),
        (100, "arrears_rising", "2 installments overdue: the arrears are growing"),
        (50, "partial_payment", "1 overdue installment only partly paid"),
        (150, "unreached_contacts", "6 contacts in the last 30 days reached nobody"),  # 30 each, at most 150
        (50, "phone_changed", "the phone number changed 1 time"),
    ]
    assert (score.score, score.source) == (950, EARLY_WARNING)


def test_the_score_is_capped_and_nothing_scores_zero() -> None:
    worst = RiskFacts(broken_promises=5, first_payment_missed=2, days_past_due=90, overdue_installments=3,
                      partial_payments=3, unreached_contacts=9, flagged_addresses=2, phone_numbers=4)
    assert sum(r.points for r in early_warning(worst).reasons) == 1250
    assert early_warning(worst).score == 1000
    assert early_warning(RiskFacts(phone_numbers=1)).to_json() == {"score": 0, "source": EARLY_WARNING, "reasons": []}


def test_the_lenders_score_comes_first_and_a_loans_overrides_the_borrowers() -> None:
    facts = RiskFacts(broken_promises=1, risk_score=300, segment="prime",
                      loan_scores={"L1": 900, "L2": None}, loan_segments={"L1": "subprime", "L2": None})
    assert score_for(facts, "L1") is not None and score_for(facts, "L1").score == 900  # type: ignore[union-attr]
    assert score_for(facts, "L2").score == 300 and score_for(facts, "L2").source == LENDER  # type: ignore[union-attr]
    assert score_for(facts, "L2", EARLY_WARNING).score == 150  # type: ignore[union-attr]
    assert facts.lender_score() == 900  # the borrower as a whole: the riskiest loan
    assert (facts.lender_segment("L1"), facts.lender_segment("L2")) == ("subprime", "prime")
    none = RiskFacts(broken_promises=1)
    assert score_for(none, "L1", LENDER) is None
    assert score_for(none, "L1").source == EARLY_WARNING and score_for(none, "L1").score == 150  # type: ignore[union-attr]


# --- facts from the database ---------------------------------------------------------------------


def _risky_borrower(db: Database, borrower_id: str = "B1") -> None:
    """Two overdue installments (45 and 15 days, the second partly paid), two broken promises, two
    failed contacts this month and one older, a second phone number, one flagged address."""
    add_borrower(db, borrower_id)
    with db.session() as s:
        installments = [(f"{borrower_id}-I{n}", due(offset), 10_000, paid)
                        for n, (offset, paid) in enumerate(((45, 0), (15, 3000), (-10, 0)))]
        add_loan(s, borrower_id, f"{borrower_id}-L", installments, product="p")
        for n in range(2):
            s.add(Promise(borrower_id=borrower_id, promised_date=due(20 + n), status="broken", source="sms",
                          created_at=AT - timedelta(days=30), resolved_at=AT - timedelta(days=19)))
        s.add(Promise(borrower_id=borrower_id, promised_date=due(-2), status="pending", source="sms", created_at=AT))
        for n, days in enumerate((2, 10, 40)):
            s.add(ContactAttempt(dedupe_key=f"import:{borrower_id}:{n}", borrower_id=borrower_id, channel="voice",
                                 source="import", status="done", outcome="failed",
                                 occurred_at=AT - timedelta(days=days), created_at=AT, updated_at=AT))
        s.add(ContactAttempt(dedupe_key=f"import:{borrower_id}:ok", borrower_id=borrower_id, channel="sms",
                             source="import", status="done", outcome="delivered", occurred_at=AT - timedelta(days=1),
                             created_at=AT, updated_at=AT))
        s.add(Consent(borrower_id=borrower_id, channel="sms", address="+12125559999", granted=True,
                      address_flag="wrong_number", updated_at=AT))


def test_facts_are_loaded_from_the_borrowers_rows(db: Database) -> None:
    _risky_borrower(db)
    add_borrower(db, "CLEAN", phone="+12125550000", email="clean@example.com")
    add_loan(db, "CLEAN", "CLEAN-L", [("CLEAN-I", due(-3))])
    with db.session() as s:
        facts = load_facts(s, ["B1", "CLEAN"], AT, "America/New_York")
    f = facts["B1"]
    assert (f.broken_promises, f.first_payment_missed, f.days_past_due, f.overdue_installments,
            f.partial_payments, f.unreached_contacts, f.flagged_addresses, f.phone_numbers) == (2, 1, 45, 2, 1, 2, 1, 2)
    assert early_warning(f).score == 300 + 200 + 100 + 100 + 50 + 60 + 100 + 50
    assert early_warning(facts["CLEAN"]).score == 0


# --- the lender's values: import and API ----------------------------------------------------------

BORROWERS = ("borrower_id,full_name,phone,email,country,consent_sms,consent_voice,consent_email,risk_score,segment")


def test_the_importer_takes_and_checks_risk_score_and_segment(db: Database, db_url: str, run_bot,
                                                              tmp_path: Path) -> None:
    borrowers = tmp_path / "borrowers.csv"
    borrowers.write_text("\n".join((
        BORROWERS,
        "B1,Jane Doe,,,US,no,no,no,720,subprime",
        "B2,John Roe,,,US,no,no,no,,",
        "B3,Bad Score,,,US,no,no,no,1001,prime",
        "B4,Bad Score,,,US,no,no,no,-5,prime",
        "B5,Bad Score,,,US,no,no,no,7.5,prime",
        "B6,Bad Segment,,,US,no,no,no,10,sub prime!",
    )) + "\n", encoding="utf-8")
    loans = tmp_path / "loans.csv"
    loans.write_text("loan_id,borrower_id,principal,currency,opened_on,risk_score,segment\n"
                     "L1,B1,100,USD,2026-01-01,950,watch\nL2,B2,100,USD,2026-01-01,,\n"
                     "L3,B2,100,USD,2026-01-01,5000,\n", encoding="utf-8")
    result = run_bot("import", "--json", str(borrowers), str(loans), db_url=db_url)
    assert result.exit_code == 1
    summary = {f["kind"]: f for f in json.loads(result.stdout)["files"]}
    assert [(r["line"], r["column"], r["reason"]) for r in summary["borrowers"]["rejected"]] == [
        (4, "risk_score", "out of range: a risk score is from 0 to 1000"),
        (5, "risk_score", "not a whole number from 0 to 1000"),
        (6, "risk_score", "not a whole number from 0 to 1000"),
        (7, "segment", "not a segment name (letters, digits and _ . : -, at most 64, e.g. prime)"),
    ]
    assert [(r["line"], r["column"]) for r in summary["loans"]["rejected"]] == [(4, "risk_score")]
    assert f"{borrowers}:4: risk_score: out of range" in result.stderr
    with db.session() as s:
        assert [(b.id, b.risk_score, b.segment) for b in s.scalars(select(Borrower).order_by(Borrower.id))] == [
            ("B1", 720, "subprime"), ("B2", None, None)]
        assert [(loan.id, loan.risk_score, loan.segment) for loan in s.scalars(select(Loan).order_by(Loan.id))] == [
            ("L1", 950, "watch"), ("L2", None, None)]


def test_the_api_takes_them_with_the_importers_messages(db: Database, web: WebHarness, clock: FixedClock) -> None:
    api = Api(web, new_key(db, clock)[1])
    response = api("PUT", "/borrowers/B1", json={**BORROWER, "risk_score": 1500, "segment": "prime"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {"code": "invalid", "field": "risk_score",
                                        "message": "out of range: a risk score is from 0 to 1000"}
    for wrong in ("640", True, 6.5):  # a JSON number, whole: not text, a boolean or a fraction
        response = api("PUT", "/borrowers/B1", json={**BORROWER, "risk_score": wrong})
        assert response.status_code == 422 and response.json()["error"]["field"] == "risk_score", wrong
    assert api("PUT", "/borrowers/B1", json={**BORROWER, "risk_score": 640, "segment": "prime"}).status_code == 201
    loan = {"borrower_id": "B1", "principal": "10", "currency": "USD", "opened_on": "2026-01-01"}
    bad = api("PUT", "/loans/L1", json={**loan, "segment": "no spaces"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "segment"
    assert api("PUT", "/loans/L1", json={**loan, "risk_score": 900}).status_code == 201
    with db.session() as s:
        b, loan_row = s.get(Borrower, "B1"), s.get(Loan, "L1")
        assert b is not None and (b.risk_score, b.segment) == (640, "prime")
        assert loan_row is not None and (loan_row.risk_score, loan_row.segment) == (900, None)
    standing = api("GET", "/borrowers/B1")
    assert standing.status_code == 200, standing.text
    assert standing.json()["risk"] == {"score": 900, "source": "lender", "lender_score": 900, "segment": "prime",
                                       "early_warning": {"score": 0, "source": "early_warning", "reasons": []}}


# --- policy conditions --------------------------------------------------------------------------


def _policy(tmp_path: Path, body: str):  # noqa: ANN202
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nsteps:\n" + body, encoding="utf-8")
    return path


def test_bad_risk_conditions_stop_the_load_naming_file_line_and_key(tmp_path: Path) -> None:
    path = _policy(tmp_path, (
        "  - day: -7\n    channel: sms\n    template: reminder_upcoming\n"
        "    when: {min_risk_score: 800, max_risk_score: 700}\n"  # line 6
        "  - day: -3\n    channel: sms\n    template: reminder_upcoming\n"
        "    when: {min_risk_score: 1200, score: bureau}\n"  # line 10
        "  - day: 0\n    channel: email\n    template: reminder_due\n"
        "    when: {segmnts: [prime]}\n"  # line 14
        "  - day: 1\n    channel: sms\n    template: reminder_overdue\n"
        "    when: {segments: [], max_risk_score: true}\n"  # line 18
        "  - day: 2\n    channel: sms\n    template: reminder_overdue\n"
        "    when: {score: lender}\n"  # line 22
    ))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    name = str(path)
    problems = caught.value.problems
    assert f"{name}:10: steps[1].when.min_risk_score: Input should be less than or equal to 1000" in problems
    assert f"{name}:10: steps[1].when.score: Input should be 'lender' or 'early_warning'" in problems
    assert f"{name}:14: steps[2].when.segmnts: unknown key" in problems
    assert f"{name}:18: steps[3].when.segments: List should have at least 1 item after validation, not 0" in problems
    assert f"{name}:18: steps[3].when.max_risk_score: Input should be a valid integer" in problems
    assert len(problems) == 5  # the type errors stop the load before the meaning is checked
    path = _policy(tmp_path, (
        "  - day: -7\n    channel: sms\n    template: reminder_upcoming\n"
        "    when: {min_risk_score: 800, max_risk_score: 700}\n"
        "  - day: 2\n    channel: sms\n    template: reminder_overdue\n"
        "    when: {score: lender}\n"
    ))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [
        f"{path}:6: when.min_risk_score 800 is above when.max_risk_score 700",
        f"{path}:10: when.score needs when.min_risk_score or when.max_risk_score",
    ]


RISK_POLICY = (
    "  - day: -7\n    channel: sms\n    template: reminder_upcoming\n"
    "    when: {min_risk_score: 700}\n"
    "  - day: 1\n    channel: sms\n    template: reminder_overdue\n"
    "    when: {segments: [subprime], max_risk_score: 1000, score: early_warning}\n"
)


def test_the_planner_picks_steps_by_score_band_and_segment(db: Database, tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, RISK_POLICY))
    assert policy.uses_risk
    # D-5: the D-7 step is current; only a score of 700 or more is contacted.
    for n, (bid, score) in enumerate((("HIGH", 700), ("LOW", 699), ("NONE", None))):
        add_borrower(db, bid, phone=f"+121255500{n}1", email=f"{bid.lower()}@example.com")
        add_loan(db, bid, f"{bid}-L", [(f"{bid}-I", due(-5))])
        with db.session() as s:
            s.execute(update(Borrower).where(Borrower.id == bid).values(risk_score=score))
    # D+1: the loan's segment overrides the borrower's.
    for n, (bid, borrower_segment, loan_segment) in enumerate((("SUB", "prime", "subprime"),
                                                                ("PRIME", "subprime", "prime"))):
        add_borrower(db, bid, phone=f"+121255501{n}2", email=f"{bid.lower()}@example.com")
        add_loan(db, bid, f"{bid}-L", [(f"{bid}-I", due(1))])
        with db.session() as s:
            s.execute(update(Borrower).where(Borrower.id == bid).values(segment=borrower_segment))
            s.execute(update(Loan).where(Loan.id == f"{bid}-L").values(segment=loan_segment))
    report = run_plan(db, AT, policy, check=FakeCheck())
    planned = {r.borrower_id: r for r in attempts(db)}
    assert sorted(planned) == ["HIGH", "SUB"]
    assert planned["HIGH"].step == "main:D-7:sms"
    assert planned["HIGH"].decision["planner"]["risk"] == {
        "risk_score": 700, "score_source": "lender", "when": ["risk score (lender's, else early warning) 700-1000"]}
    assert planned["SUB"].decision["planner"]["risk"] == {
        "segment": "subprime", "risk_score": 200, "score_source": "early_warning",  # its first installment missed
        "when": ["segment in subprime", "the early-warning score 0-1000"]}
    assert report.by_reason["condition_risk_score"] == 2  # LOW, and NONE (early warning 0)
    assert report.by_reason["condition_segment"] == 1

    with db.session() as s:
        why = explain(s, "LOW", AT, policy=policy, check=FakeCheck())
    [item] = why["installments"]
    assert item["risk"] == {"risk_score": 699, "score_source": "lender"}
    assert item["action"] == "nothing: the risk score is outside the step's band"
    assert why["risk"] == {"score": 699, "source": "lender", "lender_score": 699, "segment": None,
                           "early_warning": {"score": 0, "source": "early_warning", "reasons": []}}


def test_a_risk_input_change_replans_the_borrower_incrementally(db: Database, tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, RISK_POLICY))
    add_borrower(db, "B1")
    add_loan(db, "B1", "B1-L", [("B1-I", due(-5))])
    add_borrower(db, "B2", phone="+12125550002", email="b2@example.com")
    add_loan(db, "B2", "B2-L", [("B2-I", due(-5))])
    first = run_plan(db, AT, policy, check=FakeCheck(), incremental_pass=True)
    assert first.full and attempts(db) == []
    with db.session() as s:  # the lender's score arrives: B1 only is planned again, and now contacted
        s.execute(update(Borrower).where(Borrower.id == "B1").values(risk_score=800))
    second = run_plan(db, AT + timedelta(minutes=5), policy, check=FakeCheck(), incremental_pass=True)
    assert not second.full and second.selected == 1
    assert [(r.borrower_id, r.status) for r in attempts(db)] == [("B1", "planned")]
    with db.session() as s:  # B2 breaks three promises: re-planned, but 300 < 700 is still nothing
        for n in range(3):
            s.add(Promise(borrower_id="B2", promised_date=due(n + 10), status="broken", source="sms", created_at=AT))
    third = run_plan(db, AT + timedelta(minutes=10), policy, check=FakeCheck(), incremental_pass=True)
    assert not third.full and third.selected == 1 and third.by_reason["condition_risk_score"] == 1
    assert [r.borrower_id for r in attempts(db)] == ["B1"]


# --- bot risk ----------------------------------------------------------------------------------


def test_bot_risk_ranks_with_reasons_and_masks(db: Database, db_url: str, run_bot) -> None:
    _risky_borrower(db, "B1")  # early warning 960
    add_borrower(db, "B2", name="John Roe", phone="+12125550002", email="b2@example.com")
    add_loan(db, "B2", "B2-L", [("B2-I", due(-3))])  # due in 3 days, lender's score 400
    add_borrower(db, "B3", name="Ann Poe", phone="+12125550003", email="b3@example.com")
    add_loan(db, "B3", "B3-L", [("B3-I", due(-30))])  # due in 30 days: not listed
    with db.session() as s:
        s.execute(update(Borrower).where(Borrower.id == "B2").values(risk_score=400, segment="prime"))
    at = AT.isoformat()
    result = run_bot("risk", "--json", "--at", at, db_url=db_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["borrowers"] == 2
    assert [(i["borrower_id"], i["score"], i["source"], i["early_warning"], i["segment"]) for i in data["items"]] == [
        ("B1", 960, "early_warning", 960, None), ("B2", 400, "lender", 0, "prime")]
    assert [r["code"] for r in data["items"][0]["reasons"]] == [
        "broken_promise", "first_payment_missed", "days_past_due_30", "arrears_rising", "partial_payment",
        "unreached_contacts", "address_flagged", "phone_changed"]
    assert data["items"][0]["next_due"] == due(45).isoformat() and data["items"][0]["days_past_due"] == 45
    top = run_bot("risk", "--top", "1", "--at", at, db_url=db_url)
    assert top.exit_code == 0
    assert "2 borrowers with installments overdue or due within 7 days; the 1 riskiest:" in top.stdout
    assert "+300 broken_promise: 2 broken promises to pay" in top.stdout
    assert "B2" not in top.stdout
    for raw in ("Jane Doe", "John Roe", "+12125551234", "2125551234", "jane.doe@example.com"):
        assert raw not in result.stdout and raw not in top.stdout


def test_the_bot_risk_list_is_empty_without_anything_due(db_url: str, run_bot) -> None:
    result = run_bot("risk", "--json", "--at", datetime(2026, 1, 1, tzinfo=UTC).isoformat(), db_url=db_url)
    assert result.exit_code == 0 and json.loads(result.stdout)["items"] == []


# --- the console borrower page ----------------------------------------------------------------------


def test_the_console_borrower_page_shows_score_source_and_reasons(world: World) -> None:
    with world.db.session() as s:
        s.execute(update(Borrower).where(Borrower.id == "B1").values(risk_score=820, segment="subprime"))
        s.add(Promise(borrower_id="B1", promised_date=date(2026, 11, 1), status="broken", source="sms",
                      created_at=NOW - timedelta(days=30), resolved_at=NOW - timedelta(days=26)))
    html = world.as_("vic").get("/console/borrowers/B1").text
    facts = html[html.index('id="b-risk"'):]
    assert facts.startswith("id=\"b-risk\">820 <small>(lender's score)</small> · segment subprime</dd>")
    reasons = html[html.index('id="risk-reasons"'):html.index("<h2>Loans")]
    assert "<td class=\"num\">+150</td><td>1 broken promise to pay</td><td><code>broken_promise</code></td>" in reasons
    assert "The lender's risk score is 820" in html
    with world.db.session() as s:
        s.execute(update(Borrower).where(Borrower.id == "B1").values(risk_score=None))
    html = world.as_("vic").get("/console/borrowers/B1").text
    assert "(early warning)" in html[html.index('id="b-risk"'):] and 'id="risk-lender"' not in html


# --- effectiveness reports by the lender's segment ------------------------------------------------------


def test_reports_group_by_the_lenders_segment_the_loans_first(db: Database) -> None:
    from test_effectiveness import COSTS, WINDOW, _by_key, _seed

    from bot.effectiveness import build_report

    _seed(db)
    with db.session() as s:
        s.execute(update(Borrower).where(Borrower.id.in_(["B1", "B3"])).values(segment="prime"))
        s.execute(update(Loan).where(Loan.id == "L3").values(segment="subprime"))  # B3's loan: overrides
    with db.session() as s:
        report = build_report(s, WINDOW, ["segment"], COSTS)
    groups = _by_key(report, "segment")
    assert set(groups) == {("prime", "USD"), ("subprime", "USD"), ("none", "KRW"), ("none", "EUR")}
    assert (groups[("prime", "USD")]["contacts"], groups[("subprime", "USD")]["contacts"]) == (3, 2)
    assert groups[("prime", "USD")]["recovered_minor"] == 20000  # P1 and P2 on B1's loan
    assert groups[("subprime", "USD")]["recovered_minor"] == 6000  # P4 and P5 on L3


# --- whole ladders chosen by segment or score ------------------------------------------------------------

LADDERS = (
    "version: 1\nladders:\n"
    "  - name: watch\n    when: {min_risk_score: 700}\n    steps:\n"
    "      - {day: -7, channel: sms, template: reminder_upcoming}\n"
    "      - {day: 1, channel: voice, script: first_stage}\n"
    "  - name: prime\n    when: {segments: [prime]}\n    steps:\n"
    "      - {day: 3, channel: email, template: reminder_overdue}\n"
    "  - name: standard\n    steps:\n"
    "      - {day: 1, channel: sms, template: reminder_overdue}\n"
)


def test_ladders_are_chosen_by_score_then_segment_then_the_default(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "ladders.yaml"
    path.write_text(LADDERS, encoding="utf-8")
    policy = load_policy(path)
    assert policy.chooses_ladders and list(policy.arms) == ["watch", "prime", "standard"]
    for n, (bid, score, segment) in enumerate((("RISKY", 850, "prime"), ("PRIME", 100, "prime"),
                                               ("OTHER", None, "subprime"))):
        add_borrower(db, bid, phone=f"+121255502{n}3", email=f"{bid.lower()}@example.com")
        add_loan(db, bid, f"{bid}-L", [(f"{bid}-I", due(1))])
        with db.session() as s:
            s.execute(update(Borrower).where(Borrower.id == bid).values(risk_score=score, segment=segment))
    report = run_plan(db, AT, policy, check=FakeCheck())
    rows = {r.borrower_id: r for r in attempts(db)}
    # PRIME's D+3 email is not current on D+1: nothing for it yet
    assert {b: r.step for b, r in rows.items()} == {"RISKY": "watch:D+1:voice", "OTHER": "standard:D+1:sms"}
    assert rows["RISKY"].dedupe_key == "plan:RISKY-I:watch:1:voice"
    assert rows["RISKY"].decision["planner"]["risk"] == {
        "risk_score": 850, "score_source": "lender", "ladder_when": ["risk score (lender's, else early warning) 700-1000"]}
    assert report.by_reason["no_current_step"] == 1
    with db.session() as s:
        assert explain(s, "PRIME", AT, policy=policy, check=FakeCheck())["arm"] == "prime"


def test_ladders_without_a_default_and_their_errors(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "ladders.yaml"
    path.write_text(LADDERS.split("  - name: standard")[0], encoding="utf-8")
    policy = load_policy(path)
    add_borrower(db, "B1")
    add_loan(db, "B1", "B1-L", [("B1-I", due(1))])
    report = run_plan(db, AT, policy, check=FakeCheck())
    assert report.by_reason["no_ladder"] == 1 and attempts(db) == []
    with db.session() as s:
        why = explain(s, "B1", AT, policy=policy, check=FakeCheck())
    assert why["installments"][0]["action"] == "nothing: no ladder's condition holds for the borrower"

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nladders:\n"
        "  - name: all\n    steps: [{day: 1, channel: sms, template: reminder_overdue}]\n"  # line 3
        "  - name: late\n    when: {min_risk_score: 900, max_risk_score: 100}\n"  # line 5
        "    steps: [{day: 1, channel: sms, template: reminder_overdue}]\n"
        "  - name: all\n    steps: [{day: 2, channel: sms, template: reminder_overdue}]\n",  # line 8
        encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(bad)
    assert caught.value.problems == [
        f"{bad}:5: ladders[1] can never be chosen: ladders[0] before it has no 'when' and takes every borrower",
        f"{bad}:6: when.min_risk_score 900 is above when.max_risk_score 100",
        f"{bad}:8: ladders[2].name: 'all' is used twice",
    ]
    both = tmp_path / "both.yaml"
    both.write_text("version: 1\nsteps: [{day: 1, channel: sms, template: reminder_overdue}]\n"
                    "ladders:\n  - name: x\n    steps: [{day: 1, channel: sms, template: reminder_overdue}]\n",
                    encoding="utf-8")
    with pytest.raises(PolicyError, match="give one of 'steps', 'experiment' .* or 'ladders'"):
        load_policy(both)


def test_the_dispatcher_sends_a_ladders_step_and_cancels_it_once_stale(db: Database, tmp_path: Path) -> None:
    from builders import add_borrower as add_dispatch_borrower
    from dispatch_support import due_in
    from test_dispatch import Harness

    from bot.config import load_settings

    path = tmp_path / "ladders.yaml"
    path.write_text(LADDERS.replace("{day: -7, channel: sms", "{day: -3, channel: sms"), encoding="utf-8")
    h = Harness(db, load_settings(twilio_from_numbers=["+15005550006"], rate_limits_enabled=False),
                load_policy(path))
    def risky(bid: str) -> None:
        add_dispatch_borrower(db, bid)
        add_loan(db, bid, f"L{bid}", [(f"I{bid}", due_in(3))])  # D-3
        with db.session() as s:
            s.execute(update(Borrower).where(Borrower.id == bid).values(risk_score=800))

    risky("B1")
    assert h.plan().by_status["planned"] == 1
    # B1's text goes out today (before, the re-check took the last ladder for everybody's: stale)
    assert h.run().by_channel() == {"sms": {"sent": 1}}
    risky("B2")
    assert h.plan().by_status["planned"] == 1
    h.clock.set(AT + timedelta(days=3))  # an outage: on D0 the watch ladder's D-3 text is no longer current
    assert h.run().by_channel() == {"sms": {"cancelled": 1}}
    assert sorted((r.borrower_id, r.step, r.status, r.last_error) for r in attempts(db)) == [
        ("B1", "watch:D-3:sms", "sent", None), ("B2", "watch:D-3:sms", "cancelled", "stale")]

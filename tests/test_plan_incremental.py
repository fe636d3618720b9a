"""Incremental planning: a pass plans again exactly the borrowers whose inputs changed.

Each kind of change goes through the component that makes it in production (the
importer, the inbound SMS handler, the promise recorder, the REST API, the
dispatcher, the clock), on SQLite and PostgreSQL; the database triggers of
migration 0013 mark the borrower dirty and the next pass plans that borrower only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, new_key
from builders import add_borrower, add_loan
from dispatch_support import FakeChannel
from sqlalchemy import func, select
from test_web_support import OUR_NUMBER, WebHarness, harness, new_sid, web  # noqa: F401 - fixtures

from bot.channels.events import InboundText
from bot.clock import FixedClock
from bot.config import load_settings
from bot.db import Database
from bot.db.models import ContactAttempt, PlanDirty, PlanState
from bot.dispatch import Dispatcher, DispatchOptions
from bot.policy import Policy, load_policy
from bot.replies import process_inbound_sms
from bot.replies.promises import create_promise
from bot.scheduler.incremental import inputs_hash
from bot.scheduler.planner import PlanReport, plan

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 10:00 in New York, 23:00 in Shanghai
TODAY = date(2026, 11, 28)
PHONES = {"B1": "+12125550101", "B2": "+12125550102", "B3": "+8613800000003"}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def portfolio(db: Database, policy: Policy) -> Database:
    """B1 and B2 in New York, B3 in Shanghai, each one installment at D+1; planned once."""
    for borrower_id, phone in PHONES.items():
        china = borrower_id == "B3"
        add_borrower(db, borrower_id, phone=phone, email=f"{borrower_id.lower()}@example.com",
                     country="CN" if china else "US", region="GD" if china else "NY",
                     locale="zh-CN" if china else "en-US")
        add_loan(db, borrower_id, f"L{borrower_id}", [(f"I{borrower_id}", TODAY - timedelta(days=1))])
    first = run(db, AT, policy)
    assert first.full and first.full_reason == "no_watermark"
    assert planned_borrowers(first) == {"B1", "B2", "B3"}
    return db


def run(db: Database, at: datetime, policy: Policy, **kwargs: Any) -> PlanReport:
    kwargs.setdefault("incremental_pass", True)
    with db.sessions() as s:
        return plan(s, at, policy=policy, limit=1000, **kwargs)


def planned_borrowers(report: PlanReport) -> set[str]:
    return {item.borrower_id for item in report.items}


def incremental(db: Database, at: datetime, policy: Policy) -> PlanReport:
    report = run(db, at, policy)
    assert not report.full, report.full_reason
    return report


def rows(db: Database) -> set[tuple[str, str, str | None]]:
    with db.sessions() as s:
        return set(s.execute(select(ContactAttempt.dedupe_key, ContactAttempt.status, ContactAttempt.step)).all())


def dirty(db: Database) -> int:
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(PlanDirty)) or 0)


# --- nothing changed ----------------------------------------------------------------------


def test_a_pass_with_nothing_changed_plans_nothing(portfolio: Database, policy: Policy) -> None:
    before = rows(portfolio)
    again = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert again.selected == again.contacts == again.batches == 0 and not again.by_status
    assert dirty(portfolio) == 0
    full = run(portfolio, AT + timedelta(minutes=10), policy, incremental_pass=False)
    assert full.full and full.full_reason == "asked" and planned_borrowers(full) == {"B1", "B2", "B3"}
    assert rows(portfolio) == before


def test_a_full_pass_gives_what_planning_everything_gave(portfolio: Database, policy: Policy) -> None:
    """After changes, incremental passes leave the same rows as a full pass would."""
    with portfolio.session() as s:
        create_promise(s, "B1", TODAY + timedelta(days=3), source="sms", at=AT)
    incremental(portfolio, AT + timedelta(minutes=5), policy)
    after_incremental = rows(portfolio)
    run(portfolio, AT + timedelta(minutes=10), policy, incremental_pass=False)
    assert rows(portfolio) == after_incremental


# --- each kind of change ------------------------------------------------------------------


def test_an_imported_payment_replans_its_borrower(portfolio: Database, db_url: str, run_bot, policy: Policy,
                                                  tmp_path: Path) -> None:
    payments = tmp_path / "payments.csv"
    payments.write_text("payment_id,loan_id,paid_at,amount\nP1,LB2,2026-11-28T14:00:00Z,10.00\n", encoding="utf-8")
    result = run_bot("import", "--json", str(payments), db_url=db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)
    report = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert planned_borrowers(report) == {"B2"} and report.selected == 1
    assert incremental(portfolio, AT + timedelta(minutes=10), policy).selected == 0


def test_an_opt_out_reply_replans_its_borrower(portfolio: Database, policy: Policy) -> None:
    outcome = process_inbound_sms(portfolio, InboundText(message_id=new_sid(), sender=PHONES["B1"],
                                                         recipient=OUR_NUMBER, body="STOP",
                                                         received_at=AT + timedelta(minutes=1)))
    assert outcome is not None
    report = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert planned_borrowers(report) == {"B1"}
    sms = [item for item in report.items if item.channel == "sms"]
    assert sms and all(item.status == "blocked" and "opted_out" in item.reasons for item in sms)


def test_a_promise_replans_its_borrower(portfolio: Database, policy: Policy) -> None:
    with portfolio.session() as s:
        create_promise(s, "B3", TODAY + timedelta(days=3), source="sms", at=AT + timedelta(minutes=1))
    report = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert planned_borrowers(report) == {"B3"}
    assert report.items and all("promise_pending" in item.reasons for item in report.items), report.items


def test_a_hold_through_the_api_replans_its_borrower(portfolio: Database, policy: Policy,
                                                     web: WebHarness,  # noqa: F811 - the fixture
                                                     clock: FixedClock) -> None:
    api = Api(web, new_key(portfolio, clock)[1])
    assert dirty(portfolio) == 0  # an API key is no planning input
    response = api("POST", "/borrowers/B2/holds", json={"kind": "legal"})
    assert response.status_code == 201, response.text
    report = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert planned_borrowers(report) == {"B2"}
    assert report.items and all(item.status == "blocked" and "hold" in item.reasons for item in report.items)


def test_a_sent_attempt_replans_its_borrower(portfolio: Database, policy: Policy) -> None:
    sms, email = FakeChannel("sms"), FakeChannel("email")
    settings = load_settings(twilio_from_numbers=[OUR_NUMBER], rate_limits_enabled=False)
    dispatcher = Dispatcher(portfolio, settings, channels={"sms": sms, "email": email}, policy=policy,
                            clock=FixedClock(AT + timedelta(minutes=1)),
                            options=DispatchOptions(worker_id="w1", rate_limits=False), rng=random.Random(7))
    asyncio.run(dispatcher.run_pass())
    with portfolio.sessions() as s:
        sent = set(s.scalars(select(ContactAttempt.borrower_id).where(ContactAttempt.status == "sent")))
    assert sent and "B3" not in sent  # 23:01 in Shanghai: nothing goes out there
    report = incremental(portfolio, AT + timedelta(minutes=5), policy)
    assert planned_borrowers(report) == sent
    assert {item.status for item in report.items} == {"unchanged"}


def test_the_local_day_turning_replans_that_zone_only(portfolio: Database, policy: Policy) -> None:
    # 16:30Z: 00:30 on the 29th in Shanghai, still 11:30 on the 28th in New York
    report = incremental(portfolio, AT + timedelta(hours=1, minutes=30), policy)
    assert planned_borrowers(report) == {"B3"} and report.selected == 1
    assert incremental(portfolio, AT + timedelta(hours=1, minutes=35), policy).selected == 0
    # 05:10Z on the 29th: New York's day turned (00:10), Shanghai's not since the last pass
    report = incremental(portfolio, datetime(2026, 11, 29, 5, 10, tzinfo=UTC), policy)
    assert planned_borrowers(report) == {"B1", "B2"}


def test_a_policy_change_makes_a_full_pass(portfolio: Database, policy: Policy) -> None:
    changed = dataclasses.replace(policy, horizon_days=policy.horizon_days + 1)
    report = run(portfolio, AT + timedelta(minutes=5), changed)
    assert report.full and report.full_reason == "inputs_changed"
    assert planned_borrowers(report) == {"B1", "B2", "B3"}
    assert incremental(portfolio, AT + timedelta(minutes=10), changed).selected == 0
    # the same policy loaded again (another file name, same content) is no change
    assert incremental(portfolio, AT + timedelta(minutes=15), dataclasses.replace(changed, source="x.yaml")) \
        .selected == 0


def test_a_full_pass_runs_at_least_daily(portfolio: Database, policy: Policy) -> None:
    report = run(portfolio, AT + timedelta(days=1), policy)
    assert report.full and report.full_reason == "daily"
    with portfolio.sessions() as s:
        state = s.get(PlanState, 1)
        assert state is not None and state.last_full_at == AT + timedelta(days=1)


def test_a_failed_pass_plans_its_borrowers_again(portfolio: Database, policy: Policy) -> None:
    with portfolio.session() as s:
        for borrower_id in ("B1", "B3"):
            create_promise(s, borrower_id, TODAY + timedelta(days=3), source="sms", at=AT)

    def failing_check(subject: Any, *args: Any, **kwargs: Any) -> Any:
        if subject.borrower_id == "B3":
            raise RuntimeError("the check failed")
        from bot.compliance import check

        return check(subject, *args, **kwargs)

    with pytest.raises(RuntimeError):
        run(portfolio, AT + timedelta(minutes=5), policy, batch_size=1, check=failing_check)
    report = incremental(portfolio, AT + timedelta(minutes=6), policy)
    assert planned_borrowers(report) == {"B3"}  # B1's batch was committed with its dirty marks cleared


def test_the_inputs_hash_is_the_same_in_every_process(policy: Policy) -> None:
    """Sets in the policy and the compliance rules iterate in a per-process order: the
    hash must not, or every pass of a new process would be full."""
    code = ("from bot.policy import load_policy; from bot.scheduler.incremental import inputs_hash; "
            "print(inputs_hash(load_policy(), 'America/New_York'))")
    hashes = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True).stdout.strip() for seed in ("1", "2", "3")}
    assert hashes == {inputs_hash(policy, "America/New_York")}


def test_plan_command_is_incremental_and_full_on_demand(portfolio: Database, db_url: str, run_bot) -> None:
    later = (AT + timedelta(minutes=5)).isoformat()
    again = json.loads(run_bot("plan", "--at", later, "--json", db_url=db_url).stdout)
    assert again["full"] is False and again["full_reason"] is None and again["selected_installments"] == 0
    full = json.loads(run_bot("plan", "--at", later, "--json", "--full", db_url=db_url).stdout)
    assert full["full"] is True and full["full_reason"] == "asked" and full["selected_installments"] == 3

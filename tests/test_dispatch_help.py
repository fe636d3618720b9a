"""HELP after STOP, end to end: a signed webhook in, the dispatcher's answer out through the sandbox.

Carriers (CTIA) require HELP to be answered whatever the opt-out state, so a
borrower who texted STOP and then HELP gets the HELP answer, and nothing else:
no other answer, no reminder.  Two set-ups:

* the provider forwards the keywords and leaves the answers to the bot (a
  messaging service whose own opt-out handling is off): the keywords are posted
  straight to the bot's ``/twilio/sms``, signed, and the bot's answers go out
  through the sandbox;
* the provider handles the keywords itself (Twilio's default, which the sandbox
  plays): it confirms STOP and answers HELP, and refuses the bot's own answers
  with 21610.  The borrower still gets exactly one answer to each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.channels.sms import SmsChannel
from bot.clock import FixedClock
from bot.config import Settings
from bot.db import Database
from bot.db.models import ContactAttempt
from bot.dispatch import DispatchOptions, DispatchReport, dispatch_once
from bot.policy import load_policy
from bot.sandbox import Sandbox, SandboxServer
from bot.scheduler.planner import plan
from test_web_support import (
    OUR_NUMBER,
    PHONE,
    WebHarness,
    add_account,
    harness,  # noqa: F401 - fixture
    make_settings,
)

NOON = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # Monday 12:00 in New York
NIGHT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # Monday 22:00 in New York


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(clock=FixedClock(NOON))) as server:
        yield server


@pytest.fixture
def bot(harness: WebHarness, sandbox_server: SandboxServer, db: Database) -> tuple[WebHarness, SandboxServer]:
    """The bot's web app (public URL = its real address, the sandbox's credentials) and the sandbox,
    one manual clock; borrower B1 (phone PHONE, consent on every channel) owes an installment."""
    sandbox = sandbox_server.sandbox
    sandbox.reset()
    assert isinstance(sandbox.clock, FixedClock)
    sandbox.clock.set(NOON)
    account = sandbox.default_account
    harness.use(make_settings(public_base_url=harness.server.base_url, twilio_account_sid=account.sid,
                              twilio_auth_token=account.auth_token, twilio_api_base_url=sandbox_server.base_url,
                              twilio_from_numbers=[OUR_NUMBER], rate_limits_enabled=False), db, sandbox.clock)
    sandbox.add_number(OUR_NUMBER, sms_url=harness.server.url("/twilio/sms"))
    with db.session() as session:
        add_account(session, "B1", due=date(2026, 11, 22))  # due yesterday: the D+1 SMS is current
    return harness, sandbox_server


def dispatch(bot: WebHarness, db: Database) -> DispatchReport:
    """One dispatch pass as `bot tick` runs it: the real SMS adapter, to the sandbox."""
    settings: Settings = bot.settings
    clock = bot.app.state.bot.clock

    async def go() -> DispatchReport:
        adapter = SmsChannel(settings)
        try:
            return await dispatch_once(db, settings, clock=clock, policy=load_policy(), channels={"sms": adapter},
                                       options=DispatchOptions.from_settings(settings, worker_id="test"))
        finally:
            await adapter.aclose()

    return asyncio.run(go())


def replies(db: Database) -> list[tuple[str | None, str]]:
    with db.sessions() as session:
        rows = session.scalars(select(ContactAttempt).where(ContactAttempt.source == "reply")
                               .order_by(ContactAttempt.id))
        return [(r.template, r.status) for r in rows]


def texts_to_phone(sandbox: SandboxServer) -> list[tuple[str, bool]]:
    """(body, automatic) of the messages the phone received, oldest first."""
    return [(m.body, m.automatic) for m in sandbox.sandbox.messages_to(PHONE) if m.status != "failed"]


def test_help_after_stop_is_answered_and_nothing_else(bot: tuple[WebHarness, SandboxServer], db: Database) -> None:
    web, sandbox = bot
    settings = web.settings
    assert web.inbound("STOP").status_code == 200
    dispatch(web, db)
    assert replies(db) == [("reply_opt_out", "sent")]

    sandbox.sandbox.advance(60)
    assert web.inbound("HELP").status_code == 200
    assert web.inbound("I already paid").status_code == 200  # opted out: no answer to this one
    with db.sessions() as session:  # the reminder the planner finds due is blocked by the opt-out
        report = plan(session, sandbox.sandbox.now(), policy=load_policy(), commit=True)
    assert report.by_status.get("blocked") == 1 and not report.by_status.get("planned")
    result = dispatch(web, db)

    assert result.by_channel() == {"sms": {"sent": 1}}
    assert replies(db) == [("reply_opt_out", "sent"), ("reply_help", "sent")]
    texts = texts_to_phone(sandbox)
    assert len(texts) == 2, texts
    assert "unsubscribed" in texts[0][0]
    help_text = texts[1][0]
    assert settings.lender_name in help_text and settings.lender_phone in help_text and "help" in help_text.lower()


def test_help_after_stop_at_night_waits_for_the_morning(bot: tuple[WebHarness, SandboxServer],
                                                        db: Database) -> None:
    web, sandbox = bot
    web.inbound("STOP")
    dispatch(web, db)
    clock = sandbox.sandbox.clock
    assert isinstance(clock, FixedClock)
    clock.set(NIGHT)
    web.inbound("HELP")
    assert dispatch(web, db).by_channel() == {"sms": {"deferred": 1}}
    clock.set(NIGHT + timedelta(hours=11))  # 09:00 in New York
    assert dispatch(web, db).by_channel() == {"sms": {"sent": 1}}
    assert [t for t, _ in replies(db)] == ["reply_opt_out", "reply_help"]
    assert len(texts_to_phone(sandbox)) == 2


def test_with_the_providers_own_keyword_handling_the_phone_gets_one_answer_each(
        bot: tuple[WebHarness, SandboxServer], db: Database) -> None:
    web, sandbox = bot
    phone_sends = sandbox.sandbox.send_sms  # the phone texts the sandbox number, which calls the bot
    assert phone_sends(PHONE, OUR_NUMBER, "STOP").webhook.status_code == 200  # type: ignore[union-attr]
    dispatch(web, db)
    sandbox.sandbox.advance(60)
    assert phone_sends(PHONE, OUR_NUMBER, "HELP").webhook.status_code == 200  # type: ignore[union-attr]
    dispatch(web, db)

    # The provider confirmed STOP and answered HELP itself and refused the bot's two answers (21610).
    texts = texts_to_phone(sandbox)
    assert [automatic for _, automatic in texts] == [True, True], texts
    with db.sessions() as session:
        rows = list(session.scalars(select(ContactAttempt).where(ContactAttempt.source == "reply")
                                    .order_by(ContactAttempt.id)))
    assert [(r.template, r.status) for r in rows] == [("reply_opt_out", "failed"), ("reply_help", "failed")]
    assert all("21610" in (r.last_error or "") for r in rows)


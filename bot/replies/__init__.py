"""What a borrower's message does: effects, the queued answer, consent changes, promises.

* :func:`process_inbound_sms` / :func:`handle_inbound_sms` — one inbound SMS,
  idempotent by MessageSid, effects and answer in one transaction
  (:mod:`bot.replies.inbound`, :mod:`bot.replies.effects`);
* :func:`record_opt_out`, :func:`record_opt_in`, :func:`flag_address` — consent
  facts, also used by the dispatcher (Twilio error 21610) and the unsubscribe
  endpoint (:mod:`bot.replies.consent`);
* :func:`check_promises` — the kept/broken follow-up the scheduler runs with
  each planning pass (:mod:`bot.replies.promises`);
* the satisfaction survey: its question queued after a good conversation, its
  1-5 answer read only while one is pending (:mod:`bot.replies.surveys`).

docs/webhooks.md describes every effect.  Nothing here sends anything: an
answer is a planned ``ContactAttempt`` the dispatcher sends under the rules.
"""

from bot.replies.consent import flag_address, record_opt_in, record_opt_out
from bot.replies.effects import PAID_LOOKBACK_DAYS, paid_claim_consistent
from bot.replies.inbound import (
    MAX_AUTO_REPLIES_PER_DAY,
    REPLY_KINDS,
    InboundOutcome,
    InboundSms,
    find_senders,
    handle_inbound_sms,
    process_inbound_sms,
    reply_dedupe_key,
)
from bot.replies.promises import PromiseCheck, check_promises, create_promise
from bot.replies.redaction import redact_reply

__all__ = [
    "MAX_AUTO_REPLIES_PER_DAY",
    "PAID_LOOKBACK_DAYS",
    "REPLY_KINDS",
    "InboundOutcome",
    "InboundSms",
    "PromiseCheck",
    "check_promises",
    "create_promise",
    "find_senders",
    "flag_address",
    "handle_inbound_sms",
    "paid_claim_consistent",
    "process_inbound_sms",
    "record_opt_in",
    "record_opt_out",
    "redact_reply",
    "reply_dedupe_key",
]

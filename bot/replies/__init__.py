"""What a borrower's message does: effects, the queued answer, consent changes, promises.

* :func:`apply_statement` — what a borrower said (a :class:`Statement`, from an
  SMS, an email, a call turn or a console correction) applied: the one place its
  effects are written (:mod:`bot.replies.statement`);
* :func:`queue_answer` — the bot's answer to it, with the same checks and caps
  for every channel (:mod:`bot.replies.answer`);
* :func:`process_inbound_sms` / :func:`handle_inbound_sms` — one inbound SMS,
  idempotent by MessageSid, effects and answer in one transaction
  (:mod:`bot.replies.inbound`);
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

from bot.replies.answer import MAX_AUTO_REPLIES_PER_DAY, REPLY_KINDS, Answer, Queued, queue_answer
from bot.replies.consent import flag_address, record_opt_in, record_opt_out
from bot.replies.inbound import (
    InboundOptions,
    InboundOutcome,
    find_senders,
    handle_inbound_sms,
    process_inbound_sms,
    reply_dedupe_key,
)
from bot.replies.promises import PromiseCheck, check_promises, create_promise
from bot.replies.redaction import redact_reply
from bot.replies.statement import PAID_LOOKBACK_DAYS, Applied, Statement, apply_statement, paid_claim_consistent

__all__ = [
    "MAX_AUTO_REPLIES_PER_DAY",
    "PAID_LOOKBACK_DAYS",
    "REPLY_KINDS",
    "Answer",
    "Applied",
    "InboundOptions",
    "InboundOutcome",
    "PromiseCheck",
    "Queued",
    "Statement",
    "apply_statement",
    "check_promises",
    "create_promise",
    "find_senders",
    "flag_address",
    "handle_inbound_sms",
    "paid_claim_consistent",
    "process_inbound_sms",
    "queue_answer",
    "record_opt_in",
    "record_opt_out",
    "redact_reply",
    "reply_dedupe_key",
]

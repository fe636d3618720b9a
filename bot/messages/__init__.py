"""Outgoing message content: compose an attempt's SMS or email (docs/channels.md).

* :func:`compose` -- the dispatcher's entry point: attempt -> :class:`ComposedMessage`;
* :mod:`bot.messages.segments` -- GSM-7 / UCS-2 encoding and segment count;
* :mod:`bot.messages.checks` -- opt-out instruction and segment limit, :class:`ComposeError`;
* :mod:`bot.messages.unsubscribe` -- unsubscribe tokens, List-Unsubscribe, Message-ID;
* :mod:`bot.messages.validation` -- template checks before sending (replies included).

Nothing here sends or logs message text; adapters live in :mod:`bot.channels`.
"""

from bot.messages.checks import ComposeError, check_sms, ends_with_opt_out
from bot.messages.compose import (
    REPLY_FOOTER_KINDS,
    REPLY_KINDS,
    REPLY_VARIABLES,
    ComposedMessage,
    MessageData,
    compose,
    first_texts,
    load_message_data,
    load_message_data_many,
    reply_context,
    sms_status_callback,
    template_locale,
)
from bot.messages.segments import SmsSegments, is_gsm7, sms_segments
from bot.messages.unsubscribe import (
    list_unsubscribe_headers,
    make_message_id,
    make_unsubscribe_token,
    one_click_allowed,
    public_url_warnings,
    read_unsubscribe_token,
    unsubscribe_url,
)
from bot.messages.validation import (
    REPLY_LOCALES,
    TemplateCheckError,
    sample_reply_context,
    validate_email_templates,
    validate_reply_templates,
    validate_sms_templates,
    validate_templates,
)

__all__ = [
    "REPLY_FOOTER_KINDS",
    "REPLY_KINDS",
    "REPLY_LOCALES",
    "REPLY_VARIABLES",
    "ComposeError",
    "ComposedMessage",
    "MessageData",
    "SmsSegments",
    "TemplateCheckError",
    "check_sms",
    "compose",
    "ends_with_opt_out",
    "first_texts",
    "is_gsm7",
    "list_unsubscribe_headers",
    "load_message_data",
    "load_message_data_many",
    "make_message_id",
    "make_unsubscribe_token",
    "one_click_allowed",
    "public_url_warnings",
    "read_unsubscribe_token",
    "reply_context",
    "sample_reply_context",
    "sms_segments",
    "sms_status_callback",
    "template_locale",
    "unsubscribe_url",
    "validate_email_templates",
    "validate_reply_templates",
    "validate_sms_templates",
    "validate_templates",
]

"""JSON representations of messages, calls, recordings and list pages, as the spec describes them.

Field names, types and formats follow ``api.v2010.account.message``,
``api.v2010.account.call`` and ``api.v2010.account.recording``: counts are strings (``"num_segments": "1"``),
dates are RFC 2822 in GMT (``"Thu, 24 Aug 2023 05:01:45 +0000"``), prices
are null, URIs are relative to the API host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from bot.sandbox.state import API_VERSION, Call, Message, Recording

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def rfc2822(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    return format_datetime(instant.astimezone(UTC))


def account_uri(account_sid: str) -> str:
    return f"/2010-04-01/Accounts/{account_sid}"


def message_json(message: Message) -> dict[str, Any]:
    base = f"{account_uri(message.account_sid)}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": rfc2822(message.date_created),
        "date_sent": rfc2822(message.date_sent),
        "date_updated": rfc2822(message.date_updated),
        "direction": message.direction,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": str(message.num_media),
        "num_segments": str(message.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
        "to": message.to,
        "uri": f"{base}.json",
    }


def _call_subresources(base: str) -> dict[str, str]:
    names = {
        "feedback": "Feedback",
        "user_defined_messages": "UserDefinedMessages",
        "notifications": "Notifications",
        "recordings": "Recordings",
        "streams": "Streams",
        "payments": "Payments",
        "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
        "siprec": "Siprec",
        "events": "Events",
        "feedback_summaries": "FeedbackSummary",
    }
    return {key: f"{base}/{path}.json" for key, path in names.items()}


def call_json(call: Call) -> dict[str, Any]:
    base = f"{account_uri(call.account_sid)}/Calls/{call.sid}"
    return {
        "account_sid": call.account_sid,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": rfc2822(call.date_created),
        "date_updated": rfc2822(call.date_updated),
        "direction": call.direction,
        "duration": None if call.duration is None else str(call.duration),
        "end_time": rfc2822(call.end_time),
        "forwarded_from": None,
        "from": call.from_,
        "from_formatted": call.from_,
        "group_sid": None,
        "parent_call_sid": call.parent_call_sid,
        "phone_number_sid": call.phone_number_sid,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": call.sid,
        "start_time": rfc2822(call.start_time),
        "status": call.status,
        "subresource_uris": _call_subresources(base),
        "to": call.to,
        "to_formatted": call.to,
        "trunk_sid": None,
        "uri": f"{base}.json",
    }


def recording_json(recording: Recording, base_url: str | None) -> dict[str, Any]:
    base = f"{account_uri(recording.account_sid)}/Recordings/{recording.sid}"
    return {
        "account_sid": recording.account_sid,
        "api_version": API_VERSION,
        "call_sid": recording.call_sid,
        "conference_sid": None,
        "date_created": rfc2822(recording.date_created),
        "date_updated": rfc2822(recording.date_created),
        "start_time": rfc2822(recording.start_time),
        "duration": str(recording.duration),
        "sid": recording.sid,
        "price": None,
        "price_unit": "USD",
        "status": recording.status,
        "channels": recording.channels,
        "source": recording.source,
        "error_code": None,
        "uri": f"{base}.json",
        "encryption_details": None,
        "subresource_uris": {
            "add_on_results": f"{base}/AddOnResults.json",
            "transcriptions": f"{base}/Transcriptions.json",
        },
        "media_url": f"{base_url or 'http://127.0.0.1'}{base}",
    }


def page_json(
    *,
    key: str,
    list_uri: str,
    filters: Sequence[tuple[str, str]],
    records: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    sid_of: Callable[[T], str],
    page_size: int,
    page: int,
    token: str | None,
) -> dict[str, Any]:
    """One page of a list, newest first, with Twilio's paging fields.

    Page tokens are ``PA<sid>`` ("the records after this one") and
    ``PB<sid>`` ("the records before this one"), so records created between
    two page requests do not shift the pages a client walks through.
    """
    sids = [sid_of(record) for record in records]
    start_index = 0
    end_index: int | None = None
    if token and token[2:] in sids:
        anchor = sids.index(token[2:])
        if token.startswith("PA"):
            start_index = anchor + 1
        elif token.startswith("PB"):
            end_index = anchor
            start_index = max(0, anchor - page_size)
    items = list(records[start_index : end_index if end_index is not None else start_index + page_size])
    items = items[:page_size]

    def uri(page_number: int, page_token: str | None) -> str:
        query = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
        if page_token:
            query.append(("PageToken", page_token))
        return f"{list_uri}?{urlencode(query)}"

    last_index = start_index + len(items)
    next_uri = uri(page + 1, "PA" + sid_of(items[-1])) if items and last_index < len(records) else None
    previous_uri = uri(page - 1, "PB" + sid_of(items[0])) if items and page > 0 and start_index > 0 else None
    start = page * page_size
    return {
        key: [render(item) for item in items],
        "end": start + max(len(items) - 1, 0),
        "first_page_uri": uri(0, None),
        "next_page_uri": next_uri,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": previous_uri,
        "start": start,
        "uri": uri(page, token),
    }

"""Twilio's error codes as the sandbox returns them.

Twilio answers a failed REST request with a JSON body such as::

    {"code": 21211, "message": "Invalid 'To' Phone Number",
     "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}

and the official client turns it into ``TwilioRestException(status, code)``.
:data:`CATALOGUE` lists every code the sandbox can produce with its HTTP
status and default message (the list is repeated in docs/sandbox.md).
Messages never contain the phone numbers or bodies of the request: they
name the parameter only, as the rest of the bot does.

Delivery failures (``30xxx``) are not HTTP errors: they arrive later as
``ErrorCode`` on a status callback and in the message's ``error_code``;
:data:`DELIVERY_ERRORS` holds their texts.
"""

from __future__ import annotations

from typing import Any

from bot.errors import BotError

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

#: code -> (HTTP status, default message)
CATALOGUE: dict[int, tuple[int, str]] = {
    400: (400, "Bad request: a parameter did not pass validation"),
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20009: (400, "Cannot delete this resource before it is complete"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21201: (400, "No 'To' number is specified"),
    21205: (400, "Url is not a valid URL"),
    21210: (400, "The source 'From' phone number is not verified for your account"),
    21211: (400, "Invalid 'To' Phone Number"),
    21212: (400, "Invalid 'From' Phone Number"),
    21213: (400, "No 'From' number is specified"),
    21220: (400, "Call is not in-progress. Cannot redirect."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable phone number for this account."),
    21609: (400, "Invalid 'StatusCallback'"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit"),
    21626: (400, "Invalid 'StatusCallbackEvent'"),
    30409: (400, "This message cannot be canceled"),
}

#: delivery error codes reported on status callbacks (not HTTP errors)
DELIVERY_ERRORS: dict[int, str] = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
}


class TwilioApiError(Exception):
    """An error the sandbox answers with, in Twilio's JSON error format."""

    def __init__(self, code: int, message: str | None = None, *, status: int | None = None, detail: str | None = None):
        default_status, default_message = CATALOGUE.get(code, (400, "Bad request"))
        self.code = code
        self.status = status if status is not None else default_status
        self.message = message or default_message
        self.detail = detail
        super().__init__(f"{self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }
        if self.detail:
            payload["detail"] = self.detail
        return payload


class SandboxError(BotError):
    """Misuse of the sandbox's own Python or control API (not a Twilio error)."""

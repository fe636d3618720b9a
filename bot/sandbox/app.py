"""The sandbox's HTTP face: Twilio's REST paths plus the ``/_sandbox/`` control API.

REST resources: Messages, Calls and Recordings (JSON and the audio itself).

Every REST request goes through the same steps, in Twilio's order:
HTTP Basic authentication (account SID and auth token, or an API key SID
and secret of that account) -> the provider's latency (``latency``, awaited:
other requests are served meanwhile) -> injected faults (delay, 429, 5xx) ->
parameter checks against the OpenAPI spec -> the operation.  Errors are
Twilio's JSON error bodies with Twilio's codes (:mod:`bot.sandbox.errors`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.sandbox import spec
from bot.sandbox.control import control_routes
from bot.sandbox.errors import TwilioApiError
from bot.sandbox.params import FormValues, collect
from bot.sandbox.recordings import Recordings
from bot.sandbox.resources import call_json, message_json
from bot.sandbox.sandbox import Sandbox

log = logging.getLogger("bot.sandbox.http")

ACCOUNT_PATH = "/2010-04-01/Accounts/{AccountSid}"
_SID = {
    "Messages": re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$"),
    "Calls": re.compile(r"^CA[0-9a-fA-F]{32}$"),
    "Recordings": re.compile(r"^RE[0-9a-fA-F]{32}$"),
}

Handler = Callable[[Sandbox, str, str | None, FormValues], tuple[int, Any]]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204, headers=headers)
    return JSONResponse(payload, status_code=status, headers=headers)


def error_response(error: TwilioApiError) -> Response:
    headers = {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def authenticate(sandbox: Sandbox, request: Request, account_sid: str) -> None:
    """Accept ``AccountSid:AuthToken`` or ``ApiKeySid:Secret`` of the account in the path."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise TwilioApiError(20003, detail="Your AccountSid or AuthToken was incorrect.")
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise TwilioApiError(20003, detail="Your AccountSid or AuthToken was incorrect.") from None
    with sandbox.store.lock:
        found = sandbox.store.account_for_key(username)
    if found is None:
        raise TwilioApiError(20003, detail="Your AccountSid or AuthToken was incorrect.")
    account, secret = found
    if not hmac.compare_digest(secret.encode("utf-8"), password.encode("utf-8")) or account.sid != account_sid:
        raise TwilioApiError(20003, detail="Your AccountSid or AuthToken was incorrect.")


def rest_endpoint(sandbox: Sandbox, resource: str, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = request.method
        account_sid = request.path_params["AccountSid"]
        sid = request.path_params.get("Sid")
        _learn_base_url(sandbox, request)
        try:
            await _admit(sandbox, request, account_sid)
            if sid is not None and not _SID[resource].match(sid):
                raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
            if method == "GET" or method == "DELETE":
                values = collect(request.query_params.multi_items())
            else:
                form = await request.form()
                values = collect((name, value) for name, value in form.multi_items() if isinstance(value, str))
            handler = handlers.get(method)
            if handler is None:
                raise TwilioApiError(20004)
            status, payload = handler(sandbox, account_sid, sid, values)
        except TwilioApiError as error:
            log.info("%s %s -> %d (%d)", method, _short(request.url.path), error.status, error.code)
            return error_response(error)
        log.info("%s %s -> %d", method, _short(request.url.path), status)
        return json_response(status, payload, {"Twilio-Request-Id": "RQ" + secrets.token_hex(16)})

    return endpoint


async def _admit(sandbox: Sandbox, request: Request, account_sid: str) -> None:
    """Authentication, the latency, then the injected request faults (delay, 429, 5xx), in Twilio's order."""
    authenticate(sandbox, request, account_sid)
    fault = sandbox.faults.take_request_fault()
    # The provider's latency and the "slow" fault: the only real time the sandbox spends on
    # purpose, awaited on the event loop's clock so concurrent requests overlap.
    delay = sandbox.latency.draw() + fault.delay
    if delay:
        await asyncio.sleep(delay)
    if fault.error is not None:
        raise fault.error


def _learn_base_url(sandbox: Sandbox, request: Request) -> None:
    """``RecordingUrl`` needs the sandbox's address: without a server that set it, the first request tells."""
    if sandbox.base_url is None:
        sandbox.base_url = str(request.base_url).rstrip("/")


def recording_media_endpoint(sandbox: Sandbox, recordings: Recordings) -> Callable[[Request], Awaitable[Response]]:
    """``GET …/Recordings/{Sid}`` and ``…/{Sid}.wav``: the recording's audio, as it was recorded."""

    async def endpoint(request: Request) -> Response:
        account_sid = request.path_params["AccountSid"]
        name = request.path_params["Name"]
        _learn_base_url(sandbox, request)
        try:
            await _admit(sandbox, request, account_sid)
            if request.method != "GET":
                raise TwilioApiError(20004)
            sid = name.removesuffix(".wav")
            if not _SID["Recordings"].match(sid):
                raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
            recording = recordings.media(account_sid, sid)
        except TwilioApiError as error:
            log.info("%s %s -> %d (%d)", request.method, _short(request.url.path), error.status, error.code)
            return error_response(error)
        log.info("GET %s -> 200 (%d bytes)", _short(request.url.path), len(recording.audio))
        return Response(recording.audio, media_type=recording.content_type, headers={"Twilio-Request-Id": "RQ" + secrets.token_hex(16)})

    return endpoint


def _short(path: str) -> str:
    return path.removeprefix("/2010-04-01/Accounts/")


# --- operations ---------------------------------------------------------------------


def _create_message(sb: Sandbox, account: str, _: str | None, values: FormValues) -> tuple[int, Any]:
    return 201, message_json(sb.messaging.create(account, values))


def _list_messages(sb: Sandbox, account: str, _: str | None, values: FormValues) -> tuple[int, Any]:
    return 200, sb.messaging.list(account, values)


def _fetch_message(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
    return 200, message_json(sb.messaging.fetch(account, sid or ""))


def _update_message(sb: Sandbox, account: str, sid: str | None, values: FormValues) -> tuple[int, Any]:
    return 200, message_json(sb.messaging.update(account, sid or "", values))


def _delete_message(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
    sb.messaging.delete(account, sid or "")
    return 204, None


def _create_call(sb: Sandbox, account: str, _: str | None, values: FormValues) -> tuple[int, Any]:
    return 201, call_json(sb.voice.create(account, values))


def _list_calls(sb: Sandbox, account: str, _: str | None, values: FormValues) -> tuple[int, Any]:
    return 200, sb.voice.list(account, values)


def _fetch_call(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
    return 200, call_json(sb.voice.fetch(account, sid or ""))


def _update_call(sb: Sandbox, account: str, sid: str | None, values: FormValues) -> tuple[int, Any]:
    return 200, call_json(sb.voice.update(account, sid or "", values))


def _delete_call(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
    sb.voice.delete(account, sid or "")
    return 204, None


def _recording_handlers(recordings: Recordings) -> tuple[dict[str, Handler], dict[str, Handler]]:
    def fetch(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
        return 200, recordings.fetch(account, sid or "")

    def delete(sb: Sandbox, account: str, sid: str | None, _: FormValues) -> tuple[int, Any]:
        recordings.delete(account, sid or "")
        return 204, None

    def listing(sb: Sandbox, account: str, _: str | None, values: FormValues) -> tuple[int, Any]:
        return 200, recordings.list(account, values)

    return {"GET": listing}, {"GET": fetch, "DELETE": delete}


async def _not_found(request: Request) -> Response:
    return error_response(TwilioApiError(20404, f"The requested resource {request.url.path} was not found"))


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return error_response(TwilioApiError(20004))
    if status == 404:
        return await _not_found(request)
    return error_response(TwilioApiError(20500, status=500))


def create_app(sandbox: Sandbox) -> Starlette:
    """The ASGI application serving *sandbox*."""
    spec.load_spec()  # parse the spec now rather than during the first request
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH"]
    recordings = Recordings(sandbox)
    list_recordings, one_recording = _recording_handlers(recordings)
    routes = [
        Route(
            f"{ACCOUNT_PATH}/Messages.json",
            rest_endpoint(sandbox, "Messages", {"POST": _create_message, "GET": _list_messages}),
            methods=methods,
        ),
        Route(
            f"{ACCOUNT_PATH}/Messages/{{Sid}}.json",
            rest_endpoint(sandbox, "Messages", {"GET": _fetch_message, "POST": _update_message, "DELETE": _delete_message}),
            methods=methods,
        ),
        Route(
            f"{ACCOUNT_PATH}/Calls.json",
            rest_endpoint(sandbox, "Calls", {"POST": _create_call, "GET": _list_calls}),
            methods=methods,
        ),
        Route(
            f"{ACCOUNT_PATH}/Calls/{{Sid}}.json",
            rest_endpoint(sandbox, "Calls", {"GET": _fetch_call, "POST": _update_call, "DELETE": _delete_call}),
            methods=methods,
        ),
        Route(f"{ACCOUNT_PATH}/Recordings.json", rest_endpoint(sandbox, "Recordings", list_recordings), methods=methods),
        Route(f"{ACCOUNT_PATH}/Recordings/{{Sid}}.json", rest_endpoint(sandbox, "Recordings", one_recording), methods=methods),
        Route(f"{ACCOUNT_PATH}/Recordings/{{Name}}", recording_media_endpoint(sandbox, recordings), methods=methods),
        Mount("/_sandbox", routes=control_routes(sandbox)),
        Route("/{path:path}", _not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})

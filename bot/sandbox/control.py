"""The control API under ``/_sandbox/``: configure phones and faults, drive time, look inside.

JSON in, JSON out; every endpoint but ``health`` needs HTTP Basic auth
with a sandbox account's SID and auth token (the same credentials as the
REST API).  The request bodies use the shapes of the personas file
(:mod:`bot.sandbox.config`).  docs/sandbox.md lists every endpoint.

Endpoints that send webhooks (``inbound``, ``advance``, ``run-pending``)
run in a worker thread so the server keeps answering REST calls the bot
makes while it handles those webhooks.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sandbox.config import NumberConfig, PhoneConfig, SandboxConfig, describe_errors
from bot.sandbox.errors import SandboxError
from bot.sandbox.faults import FaultSpec, LatencySpec
from bot.sandbox.resources import call_json, message_json

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox
    from bot.sandbox.state import Call

Endpoint = Callable[[Request], Awaitable[Response]]


class InboundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    body: str = ""
    media_urls: list[str] = Field(default_factory=list)
    after: float | None = Field(default=None, ge=0)


class AdvanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0)


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _authorised(sandbox: Sandbox, request: Request) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    with sandbox.store.lock:
        account = sandbox.store.accounts.get(username)
    return account is not None and hmac.compare_digest(account.auth_token.encode(), password.encode())


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ControlError(400, "the request body is not JSON") from None


def _model(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ControlError(400, describe_errors(exc)) from None


def _call_detail(call: Call) -> dict[str, Any]:
    """A call as the REST API shows it, plus what its flow recorded."""
    return call_json(call) | {
        "twiml_log": call.twiml_log,
        "spoken": [item.as_dict() for item in call.spoken],
        "events": [event.as_dict() for event in call.events],
        "recordings": call.recording_sids,
    }


def control_routes(sandbox: Sandbox) -> list[Route]:
    def guarded(handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if not _authorised(sandbox, request):
                return JSONResponse(
                    {"error": "the control API needs a sandbox account's SID and auth token (HTTP Basic)"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="Twilio sandbox"'},
                )
            try:
                result = await handler(request)
            except ControlError as exc:
                return _error(exc.status, exc.message)
            except SandboxError as exc:
                return _error(400, str(exc))
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def state(request: Request) -> Any:
        with sandbox.store.lock:
            numbers = [
                {"number": n.number, "account_sid": n.account_sid, "sms_url": n.sms_url, "voice_url": n.voice_url}
                for n in sandbox.store.numbers.values()
            ]
            accounts = list(sandbox.store.accounts)
        return {
            "now": sandbox.now().isoformat(),
            "realtime": sandbox.realtime,
            "accounts": accounts,
            "numbers": numbers,
            "phones": _phones(),
            "faults": sandbox.faults.snapshot().model_dump(),
            "latency": sandbox.latency.spec.model_dump(),
            "pending_events": [{"due": e.due.isoformat(), "label": e.label} for e in sandbox.events.pending()],
        }

    def _phones() -> list[dict[str, Any]]:
        return [{"match": match, **persona.model_dump(mode="json")} for match, persona in sandbox.phones.entries()]

    async def config(request: Request) -> Any:
        sandbox.apply_config(_model(SandboxConfig, await _json(request)))
        return {"ok": True}

    async def numbers(request: Request) -> Any:
        entry: NumberConfig = _model(NumberConfig, await _json(request))
        owned = sandbox.add_number(
            entry.number,
            account_sid=entry.account_sid,
            sms_url=entry.sms_url,
            sms_method=entry.sms_method,
            voice_url=entry.voice_url,
            voice_method=entry.voice_method,
        )
        return {"number": owned.number, "account_sid": owned.account_sid, "sid": owned.sid}

    async def phones(request: Request) -> Any:
        if request.method == "GET":
            return _phones()
        entry: PhoneConfig = _model(PhoneConfig, await _json(request))
        chosen = sandbox.add_phone(entry.match, entry.persona())
        return {"match": entry.match, **chosen.model_dump(mode="json")}

    async def inbound(request: Request) -> Any:
        entry: InboundRequest = _model(InboundRequest, await _json(request))
        if entry.after:
            event = sandbox.send_sms(entry.from_, entry.to, entry.body, media_urls=entry.media_urls, after=entry.after)
            return {"scheduled_at": event.due.isoformat()}  # type: ignore[union-attr]
        result = await run_in_threadpool(sandbox.messaging.receive, entry.from_, entry.to, entry.body, entry.media_urls)
        return {
            "message": message_json(result.message),
            "webhook_status": result.webhook.status_code if result.webhook else None,
            "webhook_error": result.webhook.error if result.webhook else None,
            "replies": [message_json(m) for m in result.replies],
            "automatic_reply": message_json(result.automatic_reply) if result.automatic_reply else None,
        }

    async def messages(request: Request) -> Any:
        phone = request.query_params.get("phone")
        direction = request.query_params.get("direction")
        return [message_json(m) | {"automatic": m.automatic, "created_at": m.date_created.isoformat()}
                for m in sandbox.messages(phone, direction=direction)]

    async def calls(request: Request) -> Any:
        phone = request.query_params.get("phone")
        return [_call_detail(c) for c in sandbox.calls(phone)]

    async def one_call(request: Request) -> Any:
        try:
            call = sandbox.call(request.path_params["sid"])
        except SandboxError as exc:
            raise ControlError(404, str(exc)) from None
        return _call_detail(call)

    async def webhooks(request: Request) -> Any:
        kind = request.query_params.get("kind")
        sid = request.query_params.get("sid")
        return [a.as_dict() for a in sandbox.webhook_log(kind, sid)]

    async def faults(request: Request) -> Any:
        if request.method == "POST":
            sandbox.faults.apply(_model(FaultSpec, await _json(request)))
        elif request.method == "DELETE":
            sandbox.faults.clear()
        return sandbox.faults.snapshot().model_dump()

    async def latency(request: Request) -> Any:
        if request.method == "POST":
            sandbox.latency.apply(_model(LatencySpec, await _json(request)))
        return sandbox.latency.spec.model_dump()

    async def advance(request: Request) -> Any:
        if sandbox.realtime:
            raise ControlError(409, "this sandbox runs in real time; advance is for the manual clock")
        entry: AdvanceRequest = _model(AdvanceRequest, await _json(request))
        fired = await run_in_threadpool(sandbox.advance, entry.seconds)
        return {"fired": fired, "now": sandbox.now().isoformat()}

    async def run_pending(request: Request) -> Any:
        fired = await run_in_threadpool(sandbox.run_pending)
        return {"fired": fired, "now": sandbox.now().isoformat()}

    async def reset(request: Request) -> Any:
        await run_in_threadpool(sandbox.reset)
        return {"ok": True}

    return [
        Route("/health", health, methods=["GET"]),
        Route("/state", guarded(state), methods=["GET"]),
        Route("/config", guarded(config), methods=["POST"]),
        Route("/numbers", guarded(numbers), methods=["POST"]),
        Route("/phones", guarded(phones), methods=["GET", "POST"]),
        Route("/inbound", guarded(inbound), methods=["POST"]),
        Route("/messages", guarded(messages), methods=["GET"]),
        Route("/calls", guarded(calls), methods=["GET"]),
        Route("/calls/{sid}", guarded(one_call), methods=["GET"]),
        Route("/webhooks", guarded(webhooks), methods=["GET"]),
        Route("/faults", guarded(faults), methods=["GET", "POST", "DELETE"]),
        Route("/latency", guarded(latency), methods=["GET", "POST"]),
        Route("/advance", guarded(advance), methods=["POST"]),
        Route("/run-pending", guarded(run_pending), methods=["POST"]),
        Route("/reset", guarded(reset), methods=["POST"]),
    ]

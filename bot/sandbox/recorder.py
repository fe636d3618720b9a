"""A small webhook receiver for tests and demos: records what the sandbox sends.

:class:`WebhookRecorder` serves a Starlette app on its own
:class:`~bot.sandbox.server.ThreadedServer`; every request is kept with
the full URL it was sent to, its form parameters and its
``X-Twilio-Signature`` (so a test can run ``RequestValidator`` on it), and
is answered with what :meth:`WebhookRecorder.respond` configured for its
path (default: 200 with an empty TwiML ``<Response/>``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.sandbox.server import ThreadedServer
from bot.sandbox.signing import SIGNATURE_HEADER

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    path: str
    params: list[tuple[str, str]]
    signature: str | None
    headers: dict[str, str]

    @property
    def form(self) -> dict[str, str]:
        """Parameters as a plain dict (the last value of a repeated name)."""
        return dict(self.params)


class WebhookRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._responses: dict[str, tuple[int, str, str]] = {}
        self._changed = threading.Condition(self._lock)
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self.server = ThreadedServer(app)

    async def _handle(self, request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            params = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        else:
            params = []
        record = RecordedRequest(
            method=request.method,
            url=str(request.url),
            path=request.url.path,
            params=params,
            signature=request.headers.get(SIGNATURE_HEADER),
            headers=dict(request.headers),
        )
        with self._changed:
            self._requests.append(record)
            status, body, content_type = self._responses.get(request.url.path, (200, EMPTY_TWIML, "application/xml"))
            self._changed.notify_all()
        return Response(body, status_code=status, media_type=content_type)

    def respond(self, path: str, body: str, *, status: int = 200, content_type: str = "application/xml") -> None:
        with self._lock:
            self._responses[path] = (status, body, content_type)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until *count* requests (to *path*) arrived: for real-time mode, where another thread sends."""
        with self._changed:
            self._changed.wait_for(lambda: len([r for r in self._requests if path is None or r.path == path]) >= count, timeout)
            return [r for r in self._requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._responses.clear()

    def start(self) -> WebhookRecorder:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> WebhookRecorder:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

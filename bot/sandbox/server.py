"""Serving ASGI apps with uvicorn: in a background thread (tests, demos) or in the foreground (CLI).

:class:`ThreadedServer` binds its own socket first (port 0 picks a free
one, so parallel test runs never collide), runs ``uvicorn.Server`` on it in
a daemon thread, waits until uvicorn reports ``started`` and, when a
health path is given, until that path answers; ``stop()`` sets
``should_exit`` and joins the thread, so no thread or port is left
behind.  uvicorn only installs signal handlers in the main thread, so a
server in a thread leaves Ctrl-C to the program.

:class:`SandboxServer` is a :class:`ThreadedServer` for a
:class:`~bot.sandbox.sandbox.Sandbox`::

    with SandboxServer() as server:
        client = server.twilio_client()      # official client, base_url pointed here
        client.messages.create(to=..., from_=..., body=...)
        server.sandbox.advance(5)
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from bot.errors import BotError
from bot.sandbox.sandbox import Sandbox

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


class ServerError(BotError):
    """A server that could not start (port taken, never became ready)."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only disables Nagle's algorithm (TCP_NODELAY)
    # on sockets whose proto says TCP; with proto 0 every response waited ~40 ms
    # for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def uvicorn_config(app: Any, *, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn settings for the sandbox and test receivers.

    No access log: request lines contain query strings, which may carry
    phone numbers.  No lifespan, no websockets: the sandbox needs neither.
    """
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=5,
        log_config=None,
    )


def url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class ThreadedServer:
    """An ASGI app served by uvicorn in a background thread on 127.0.0.1 and a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, health_path: str | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.health_path = health_path
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise ServerError("the server is not running")
        return f"http://{url_host(self.host)}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def start(self) -> ThreadedServer:
        if self._thread is not None:
            return self
        self._socket = bind_socket(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"uvicorn-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Readiness, not waiting for time to pass: poll until uvicorn serves (bounded by a deadline)."""
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerError("the server thread exited before it was ready")
            if time.monotonic() > deadline:
                raise ServerError("the server did not start in time")
            time.sleep(0.005)
        if self.health_path is None:
            return
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while True:
                try:
                    if client.get(self.url(self.health_path)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerError("the server's health check never answered")
                time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class SandboxServer(ThreadedServer):
    """A :class:`Sandbox` served over HTTP in a background thread."""

    def __init__(self, sandbox: Sandbox | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from bot.sandbox.app import create_app

        self.sandbox = sandbox or Sandbox()
        super().__init__(create_app(self.sandbox), host=host, port=port, health_path="/_sandbox/health")

    def start(self) -> SandboxServer:
        super().start()
        self.sandbox.base_url = self.base_url
        if self.sandbox.realtime:
            self.sandbox.start()
        return self

    def stop(self) -> None:
        self.sandbox.stop()
        super().stop()
        self.sandbox.webhooks.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def twilio_client(self, account_sid: str | None = None, auth_token: str | None = None, **kwargs: Any) -> Any:
        """The official ``twilio.rest.Client`` pointed at this sandbox (``client.api.base_url``)."""
        from twilio.rest import Client

        sid = account_sid or self.sandbox.default_account.sid
        client = Client(sid, auth_token or self.sandbox.auth_token(sid), **kwargs)
        client.api.base_url = self.base_url
        return client

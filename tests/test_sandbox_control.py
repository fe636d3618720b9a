"""The sandbox's control API, personas file, real-time mode, server lifecycle and ``bot sandbox``."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from bot.errors import InputFileError
from bot.sandbox import Sandbox, SandboxConfig, SandboxError, SandboxServer, ThreadedServer, load_config_file
from bot.sandbox.config import TimingConfig
from bot.sandbox.recorder import WebhookRecorder
from bot.sandbox.server import ServerError

SID = "AC" + "0" * 32
TOKEN = "sandbox-token"
NUMBER = "+15005550006"
PHONE = "+15551230001"
PERSONAS = """
accounts:
  - sid: AC{sid}
    auth_token: file-token
numbers:
  - number: "+15005550006"
    sms_url: {sms_url}
phones:
  - number: "+15551230001"
    label: promises to pay
    replies:
      - text: I will pay Friday
        after: 0
  - pattern: "+1555000*"
    line_type: landline
timing:
  sms_sent_after: 0
  sms_delivered_after: 0
"""


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as srv:
        yield srv


@pytest.fixture
def control(server: SandboxServer, recorder: WebhookRecorder) -> Iterator[httpx.Client]:
    server.sandbox.reset()
    recorder.clear()
    with httpx.Client(base_url=server.url("/_sandbox"), auth=(SID, TOKEN), trust_env=False) as http:
        yield http


def test_control_api_needs_credentials(control: httpx.Client, server: SandboxServer) -> None:
    assert httpx.get(server.url("/_sandbox/health"), trust_env=False).json() == {"status": "ok"}
    assert httpx.get(server.url("/_sandbox/state"), trust_env=False).status_code == 401
    assert httpx.get(server.url("/_sandbox/state"), auth=(SID, "wrong"), trust_env=False).status_code == 401
    state = control.get("/state").json()
    assert state["accounts"] == [SID] and state["realtime"] is False
    assert [n["number"] for n in state["numbers"]] == [NUMBER]


def test_control_api_drives_a_conversation(control: httpx.Client, server: SandboxServer, recorder: WebhookRecorder) -> None:
    assert control.post("/numbers", json={"number": NUMBER, "sms_url": recorder.url("/sms")}).status_code == 200
    added = control.post("/phones", json={"number": PHONE, "replies": [{"text": "PAID", "after": 20}]})
    assert added.status_code == 200 and added.json()["replies"] == [{"text": "PAID", "after": 20.0}]
    assert control.get("/phones").json()[0]["match"] == PHONE
    recorder.respond("/sms", "<Response><Message>Got it</Message></Response>")

    inbound = control.post("/inbound", json={"from": PHONE, "to": NUMBER, "body": "Hello?"}).json()
    assert inbound["webhook_status"] == 200
    assert [r["body"] for r in inbound["replies"]] == ["Got it"]
    assert recorder.requests("/sms")[0].form["Body"] == "Hello?"

    client = server.twilio_client()
    client.messages.create(to=PHONE, from_=NUMBER, body="Reminder")
    fired = control.post("/advance", json={"seconds": 3}).json()["fired"]
    assert fired >= 3
    assert control.post("/advance", json={"seconds": 20}).status_code == 200
    assert [r.form["Body"] for r in recorder.requests("/sms")] == ["Hello?", "PAID"]

    to_phone = control.get("/messages", params={"phone": PHONE, "direction": "outbound-api"}).json()
    assert [(m["body"], m["status"]) for m in to_phone] == [("Reminder", "delivered")]
    hooks = control.get("/webhooks", params={"kind": "sms-inbound"}).json()
    assert len(hooks) == 2 and all(h["signature"] for h in hooks)

    assert control.post("/reset").json() == {"ok": True}
    assert control.get("/messages").json() == []
    assert control.get("/phones").json() == []


def test_control_api_faults(control: httpx.Client, server: SandboxServer) -> None:
    body = control.post("/faults", json={"rate_limit": 1, "duplicate_callbacks": True}).json()
    assert body["rate_limit"] == 1 and body["duplicate_callbacks"] is True
    client = server.twilio_client()
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE, from_=NUMBER, body="x")
    assert info.value.status == 429
    assert control.get("/faults").json()["rate_limit"] == 0
    assert control.delete("/faults").json()["duplicate_callbacks"] is False
    assert client.messages.create(to=PHONE, from_=NUMBER, body="x").status == "queued"


def test_control_api_latency_and_message_instants(control: httpx.Client, server: SandboxServer) -> None:
    assert control.post("/latency", json={"latency_ms": 40, "jitter_ms": 10, "seed": 3}).json() == {
        "latency_ms": 40.0, "jitter_ms": 10.0, "seed": 3}
    assert control.get("/state").json()["latency"]["latency_ms"] == 40.0
    client = server.twilio_client()
    started = time.monotonic()
    client.messages.create(to=PHONE, from_=NUMBER, body="x")
    assert time.monotonic() - started >= 0.03
    [message] = control.get("/messages").json()
    assert datetime.fromisoformat(message["created_at"]) == server.sandbox.messages()[0].date_created
    assert control.post("/latency", json={"latency_ms": -1}).status_code == 400
    control.post("/reset")
    assert control.get("/latency").json()["latency_ms"] == 0


def test_control_api_rejects_bad_input(control: httpx.Client) -> None:
    bad_kind = control.post("/phones", json={"number": PHONE, "line_type": "satellite"})
    assert bad_kind.status_code == 400 and "line_type" in bad_kind.json()["error"]
    bad_number = control.post("/phones", json={"number": "5551234"})
    assert bad_number.status_code == 400
    assert "E.164" in bad_number.json()["error"] and "5551234" not in bad_number.json()["error"]
    assert control.post("/numbers", json={"number": NUMBER, "sms_url": "https://example.com/sms"}).status_code == 400
    assert control.post("/inbound", content=b"not json").status_code == 400
    assert control.post("/inbound", json={"from": PHONE, "to": "+15009999999", "body": "x"}).status_code == 400
    assert control.post("/faults", json={"server_error_status": 502}).status_code == 400


def test_control_api_replaces_the_configuration(control: httpx.Client, server: SandboxServer) -> None:
    other = "AC" + "a" * 32
    config = {"accounts": [{"sid": other, "auth_token": "t2"}], "numbers": [{"number": "+15005550010"}]}
    assert control.post("/config", json=config).status_code == 200
    client = Client(other, "t2")
    client.api.base_url = server.base_url
    assert client.messages.create(to=PHONE, from_="+15005550010", body="x").account_sid == other
    with httpx.Client(base_url=server.url("/_sandbox"), auth=(other, "t2"), trust_env=False) as second:
        assert second.post("/reset").status_code == 200  # back to the configuration the sandbox started with
    assert control.get("/state").json()["accounts"] == [SID]


# --- personas file -----------------------------------------------------------------------


def test_personas_file_configures_the_sandbox(tmp_path: Path) -> None:
    path = tmp_path / "personas.yaml"
    path.write_text(PERSONAS.format(sid="1" * 32, sms_url="http://127.0.0.1:8000/twilio/sms"), encoding="utf-8")
    config = load_config_file(path)
    sb = Sandbox(config)
    assert sb.default_account.sid == "AC" + "1" * 32
    assert sb.phones.persona(PHONE).label == "promises to pay"
    assert sb.phones.persona("+15550001234").line_type == "landline"
    assert sb.phones.persona("+15550011234").line_type == "mobile"
    assert sb.store.numbers[NUMBER].sms_url == "http://127.0.0.1:8000/twilio/sms"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("phones:\n  - number: '+15551230001'\n    line_type: satellite\n", "phones.0.line_type"),
        ("phones:\n  - pattern: '+1555*'\n    number: '+15551230001'\n", "exactly one of number or pattern"),
        ("phones:\n  - number: '5551230001'\n", "E.164"),
        ("numbers:\n  - number: '+15005550006'\n    account_sid: AC" + "9" * 32 + "\n", "numbers.0.account_sid"),
        ("phones: [\n", "line 2"),
        ("- just a list\n", "mapping"),
        ("phones:\n  - number: '+15551230001'\n    delivery: delivered\n    error_code: 30003\n", "error_code"),
    ],
)
def test_personas_file_errors_name_the_field_not_the_value(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "personas.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        load_config_file(path)
    message = str(info.value)
    assert fragment in message and str(path) in message
    assert "5551230001" not in message


def test_webhook_urls_in_the_file_must_stay_on_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "personas.yaml"
    path.write_text("numbers:\n  - number: '+15005550006'\n    sms_url: https://bot.example.com/sms\n", encoding="utf-8")
    with pytest.raises(SandboxError):
        Sandbox(load_config_file(path))
    path.write_text(
        "allowed_webhook_hosts: [bot.example.com]\nnumbers:\n  - number: '+15005550006'\n    sms_url: https://bot.example.com/sms\n",
        encoding="utf-8",
    )
    assert Sandbox(load_config_file(path)).store.numbers[NUMBER].sms_url == "https://bot.example.com/sms"


# --- real-time mode and the server's life cycle ------------------------------------------------


def test_real_time_mode_fires_events_by_itself(recorder: WebhookRecorder) -> None:
    recorder.clear()
    config = SandboxConfig(timing=TimingConfig(sms_sent_after=0, sms_delivered_after=0))
    with SandboxServer(Sandbox(config, realtime=True)) as srv:
        client = srv.twilio_client()
        client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/rt-status"))
        received = recorder.wait_for(3, "/rt-status")
        assert [r.form["MessageStatus"] for r in received] == ["queued", "sent", "delivered"]
        with pytest.raises(SandboxError):
            srv.sandbox.advance(1)
    assert not any(t.name == "sandbox-events" for t in threading.enumerate())


def test_server_stops_cleanly_and_frees_its_port() -> None:
    before = {t.ident for t in threading.enumerate()}
    srv = SandboxServer().start()
    port = srv.port
    assert httpx.get(srv.url("/_sandbox/health"), trust_env=False).status_code == 200
    srv.stop()
    assert {t.ident for t in threading.enumerate()} <= before
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing is left listening on it
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", trust_env=False, timeout=1)


def test_threaded_server_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = ThreadedServer(lambda scope, receive, send: None, port=port)
        with pytest.raises(ServerError, match="cannot listen"):
            server.start()


# --- bot sandbox ----------------------------------------------------------------------------


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> str:
    """Lines the command printed up to *marker* (readiness of a child process, bounded by a deadline)."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in iter(stdout.readline, "")], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while marker not in "".join(seen):
        try:
            seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"{marker!r} not printed; got {''.join(seen)!r}") from None
    return "".join(seen)


def test_bot_sandbox_command_serves_the_twilio_client(tmp_path: Path, recorder: WebhookRecorder) -> None:
    recorder.clear()
    recorder.respond("/file-sms", "<Response><Message>Thank you</Message></Response>")
    personas = tmp_path / "personas.yaml"
    personas.write_text(PERSONAS.format(sid="1" * 32, sms_url=recorder.url("/file-sms")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--personas", str(personas), "--auth-token", "cli-token",
         "--latency-ms", "30", "--jitter-ms", "10", "--latency-seed", "5"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = _read_until(process, "control API")
        base_url = banner.split("listening on ")[1].split()[0]
        assert "AC" + "1" * 32 in banner and "cli-token" in banner
        assert "latency     : 30 ms +/- 10 ms per REST request (seed 5)" in banner
        state = httpx.get(f"{base_url}/_sandbox/state", auth=("AC" + "1" * 32, "cli-token"), trust_env=False).json()
        assert state["latency"] == {"latency_ms": 30.0, "jitter_ms": 10.0, "seed": 5}
        client = Client("AC" + "1" * 32, "cli-token")
        client.api.base_url = base_url
        message = client.messages.create(to=PHONE, from_=NUMBER, body="Reminder")
        # Real time: sent and delivered at once (timing 0), then the persona replies at once.
        [reply] = recorder.wait_for(1, "/file-sms")
        assert reply.form["Body"] == "I will pay Friday"
        assert client.messages(message.sid).fetch().status == "delivered"
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to="+15550001234", from_=NUMBER, body="x")
        assert info.value.code == 21614
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "sandbox stopped" in err
    assert "I will pay Friday" not in out + err and "Reminder" not in out + err
    assert PHONE not in out + err


def test_bot_sandbox_command_rejects_a_bad_personas_file(run_bot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("phones:\n  - number: '+15551230001'\n    line_type: satellite\n", encoding="utf-8")
    result = run_bot("sandbox", "--personas", str(bad))
    assert result.exit_code == 2
    assert "phones.0.line_type" in " ".join(result.stderr.split())
    missing = run_bot("sandbox", "--personas", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "no such file" in " ".join(missing.stderr.split())
    bad_sid = run_bot("sandbox", "--account-sid", "XX12")
    assert bad_sid.exit_code == 2 and "accounts.0.sid" in " ".join(bad_sid.stderr.split())

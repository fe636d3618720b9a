"""The console's security, over real HTTP, on SQLite and PostgreSQL.

Every route refuses anonymous requests (the routes are enumerated from the
app, so a new one cannot be missed); every POST needs the session's CSRF
token; sign-in locks after repeated failures and is audited; injection
attempts in filters and notes are harmless; no page shows an unmasked phone
number, email address or name unless a supervisor revealed it (audited);
viewers cannot reveal; every console response carries the security headers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import select

from bot.console.security import is_console_path
from bot.console.web import current_user
from bot.db.models import AuditEvent, CallSession, CallTurn, ConsoleSession, Note, Promise, Task, User
from test_console_support import (
    B1_EMAIL,
    B1_PHONE,
    NOW,
    PASSWORD,
    RAW_VALUES,
    ConsoleServer,
    World,
    console_server,  # noqa: F401 - fixture
    console_settings,
    count,
    fast_hashing,  # noqa: F401 - fixture
    world,  # noqa: F401 - fixture
)

PUBLIC = {("GET", "/"), ("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/static/{name}")}
SEEDED_TEXT = ("I can pay next friday", "Jane", "B1-L1", "low_confidence")


def _flatten(routes: list[object]) -> list[object]:
    """Every route of the app, descending into included routers (however FastAPI nests them)."""
    flat: list[object] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat.extend(_flatten(list(inner.routes)) if inner is not None else [route])
    return flat


def _console(path: str) -> bool:
    return is_console_path(path.split("{")[0].rstrip("/") or "/")


def console_routes(app: object) -> list[tuple[str, str]]:
    found = []
    for route in _flatten(list(app.routes)):  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        if _console(path):
            assert isinstance(route, APIRoute), f"{path} is not a FastAPI route: it escapes the session check"
            found.extend((method, path) for method in sorted(route.methods))
    return found


def concrete(path: str, call_id: int = 1, turn_id: int = 1) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return {"call_id": str(call_id), "turn_id": str(turn_id), "task_id": "1", "borrower_id": "B1",
                "name": "console.css"}[name]
    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


# --- sign-in required ----------------------------------------------------------------------------


def test_the_route_list_is_complete_and_every_protected_route_depends_on_the_session(
        console_server: ConsoleServer) -> None:
    routes = console_routes(console_server.app)
    paths = {path for _, path in routes}
    # Not vacuous: the pages, actions and API the console is made of are all found.
    for expected in ("/console", "/console/calls", "/console/calls/{call_id:int}", "/console/tasks",
                     "/console/audit", "/console/borrowers/{borrower_id}", "/console/media/turns/{turn_id:int}",
                     "/console/api/dashboard", "/console/api/calls", "/console/logout",
                     "/console/borrowers/{borrower_id}/reveal", "/console/calls/{call_id:int}/turns/{turn_id:int}/correct"):
        assert expected in paths
    assert len(routes) >= 20
    assert PUBLIC <= set(routes)
    for route in _flatten(list(console_server.app.routes)):
        if isinstance(route, APIRoute) and (sorted(route.methods)[0], route.path) not in PUBLIC \
                and _console(route.path):
            calls = {d.call for d in route.dependant.dependencies}
            assert current_user in calls, f"{route.path} does not depend on the session"


def test_every_console_route_refuses_anonymous_requests(world: World) -> None:
    routes = [r for r in console_routes(world.server.app) if r not in PUBLIC]
    for cookie in (None, "forged-token-" + "x" * 30, "short"):
        browser = world.server.browser()
        if cookie:
            browser.http.cookies.set("console", cookie)
        for method, path in routes:
            url = concrete(path, world.seeded.call_promise, world.seeded.promise_turn)
            response = browser.http.request(method, url, data={"text": "x", "field": "phone", "reason": "because"}
                                            if method == "POST" else None)
            if path.startswith("/console/api/"):
                assert response.status_code == 401, (method, url)
                assert response.json() == {"detail": "sign in required"}
            else:
                assert response.status_code == 303, (method, url, response.status_code)
                assert response.headers["location"].startswith("/console/login")
            for secret in RAW_VALUES + SEEDED_TEXT:
                assert secret not in response.text
    # Nothing was changed by any of those requests.
    assert count(world.db, Note) == 0 and count(world.db, CallSession, CallSession.reviewed_at.is_not(None)) == 1
    assert count(world.db, AuditEvent, AuditEvent.action == "reveal") == 0


def test_public_routes_show_nothing_personal(world: World) -> None:
    browser = world.server.browser()
    root = browser.get("/")
    assert root.status_code == 303 and root.headers["location"] == "/console"
    assert browser.get("/console", ).headers["location"] == "/console/login"
    login = browser.get("/console/login?next=/console/calls")
    assert login.status_code == 200 and 'name="password"' in login.text
    assert browser.get("/console/static/console.css").status_code == 200
    for name in ("../../bot/config.py", "..%2F..%2Fpyproject.toml", "base.html.j2", "nothing.js"):
        assert browser.get(f"/console/static/{name}").status_code == 404


def test_sessions_expire_end_at_sign_out_and_with_a_disabled_user(world: World) -> None:
    sam = world.as_("sam")
    assert sam.get("/console/calls").status_code == 200
    token = sam.http.cookies.get("console")
    assert token and count(world.db, ConsoleSession) == 1
    with world.db.session() as session:  # the cookie holds a token whose SHA-256 is the row's id
        import hashlib
        assert session.scalar(select(ConsoleSession.id)) == hashlib.sha256(token.encode()).hexdigest()
    world.clock.advance(timedelta(minutes=world.settings.console_idle_minutes - 1))
    assert sam.get("/console/calls").status_code == 200  # activity keeps it alive
    world.clock.advance(timedelta(minutes=world.settings.console_idle_minutes))
    assert sam.get("/console/calls").status_code == 303  # idle too long
    assert count(world.db, ConsoleSession) == 0

    sam = world.as_("sam")
    for _ in range(int(world.settings.console_session_hours * 60 / 20) + 1):  # busy, but past the lifetime
        world.clock.advance(timedelta(minutes=20))
        sam.get("/console/tasks")
    assert sam.get("/console/tasks").status_code == 303

    sam = world.as_("sam")
    first = sam.http.cookies.get("console")
    sam.http.cookies.set("console_login_csrf", "t" * 32)  # the sign-in page redirects a signed-in user
    again = sam.http.post("/console/login", data={"csrf": "t" * 32, "name": "sam", "password": PASSWORD})
    assert again.status_code == 303  # signing in again replaces the session
    assert sam.http.cookies.get("console") != first and count(world.db, ConsoleSession) == 1
    stale = world.server.browser()
    stale.http.cookies.set("console", first or "")
    assert stale.get("/console").status_code == 303
    sam.csrf()
    out = sam.post("/console/logout")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert sam.get("/console").status_code == 303
    assert count(world.db, AuditEvent, AuditEvent.action == "console.logout", AuditEvent.actor == "sam") == 1

    sam = world.as_("sam")
    from bot.console.users import set_disabled
    with world.db.session() as session:
        set_disabled(session, "sam", True, at=world.clock.now())
    assert sam.get("/console").status_code == 303
    assert world.server.browser().login("sam").status_code == 401


# --- CSRF -----------------------------------------------------------------------------------------


def _post_routes(world: World) -> list[str]:
    return [concrete(path, world.seeded.call_promise, world.seeded.promise_turn)
            for method, path in console_routes(world.server.app) if method == "POST" and (method, path) not in PUBLIC]


def _state(world: World) -> tuple[int, ...]:
    db = world.db
    return (count(db, Note), count(db, Task), count(db, Promise), count(db, AuditEvent, AuditEvent.action != "console.login"),
            count(db, CallSession, CallSession.reviewed_at.is_not(None)),
            count(db, CallTurn, CallTurn.corrected_intent.is_not(None)), count(db, ConsoleSession))


def test_every_post_without_the_right_csrf_token_is_refused(world: World) -> None:
    ada = world.as_("ada")
    real = ada.csrf()
    before = _state(world)
    form = {"text": "a note", "field": "phone", "reason": "checking the number", "intent": "dispute",
            "promise_date": "", "kind": "review", "assignee": "me", "note": "done"}
    posts = _post_routes(world)
    assert len(posts) >= 9
    for csrf, url in ((c, u) for c in (None, "", "wrong-token-" + "a" * 32, real[:-1]) for u in posts):
        response = ada.post(url, form, csrf=csrf if csrf is not None else False)
        assert response.status_code == 403, (url, response.status_code)
        assert "CSRF" in response.text
        assert B1_PHONE not in response.text
    assert _state(world) == before
    # The token of another session does not work either.
    other = world.as_("sam")
    assert other.post(f"/console/calls/{world.seeded.call_promise}/review", csrf=real).status_code == 403
    assert ada.post(f"/console/calls/{world.seeded.call_promise}/review").status_code == 303  # the right one does


def test_cross_site_posts_and_the_sign_in_form_need_their_tokens(world: World) -> None:
    browser = world.server.browser()
    response = browser.http.post("/console/login", data={"name": "sam", "password": PASSWORD, "next": "/console"})
    assert response.status_code == 403 and "console" not in browser.http.cookies
    page = browser.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    browser.http.cookies.delete("console_login_csrf")
    response = browser.http.post("/console/login", data={"csrf": token, "name": "sam", "password": PASSWORD})
    assert response.status_code == 403
    sam = world.as_("sam")
    sam.csrf()
    response = sam.http.post(f"/console/calls/{world.seeded.call_promise}/review",
                             data={"csrf": sam.csrf_token or ""}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    json_body = sam.http.post(f"/console/calls/{world.seeded.call_promise}/review",
                              json={"csrf": sam.csrf_token})
    assert json_body.status_code == 415
    assert count(world.db, CallSession, CallSession.reviewed_by == "sam") == 1  # only the seeded one


# --- sign-in and lock-out --------------------------------------------------------------------------


def test_lock_out_after_repeated_failures_is_audited_and_ends(world: World) -> None:
    limit = world.settings.console_max_failed_logins
    browser = world.server.browser()
    for attempt in range(limit):
        response = browser.login("sam", "wrong password " + str(attempt))
        assert response.status_code == 401 and "Sign-in refused" in response.text
    # Locked: even the right password is refused, with the same message.
    locked = browser.login("sam")
    assert locked.status_code == 401 and "Sign-in refused" in locked.text and "console" not in browser.http.cookies
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "sam"))
        assert user is not None and user.failed_logins == limit
        assert user.locked_until == NOW + timedelta(minutes=world.settings.console_lockout_minutes)
        actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.actor == "sam")
                                                    .order_by(AuditEvent.id))]
    assert actions == ["console.login_failed"] * limit + ["console.lockout", "console.login_refused_locked"]
    # Another user is not affected; an unknown name is audited without the name.
    assert world.server.browser().login("ada").status_code == 303
    assert world.server.browser().login("nobody-here").status_code == 401
    with world.db.session() as session:
        unknown = session.scalars(select(AuditEvent).where(AuditEvent.actor == "anonymous")).all()
    assert [(e.action, e.subject_id, e.detail["reason"]) for e in unknown] == [  # type: ignore[index]
        ("console.login_failed", None, "unknown_user")]
    assert "nobody-here" not in str(unknown[0].detail)
    # After the lock-out time the right password works again and resets the count.
    world.clock.advance(timedelta(minutes=world.settings.console_lockout_minutes, seconds=1))
    assert browser.login("sam").status_code == 303
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "sam"))
        assert user is not None and user.failed_logins == 0 and user.locked_until is None
        assert user.last_login_at == world.clock.now()


def test_a_lock_that_expired_counts_failures_from_zero(world: World) -> None:
    browser = world.server.browser()
    for _ in range(world.settings.console_max_failed_logins):
        browser.login("vic", "nope nope nope")
    world.clock.advance(timedelta(minutes=world.settings.console_lockout_minutes + 1))
    assert browser.login("vic", "still wrong!!").status_code == 401
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "vic"))
        assert user is not None and user.failed_logins == 1 and user.locked_until is None
    assert browser.login("vic").status_code == 303


def test_sign_in_never_redirects_off_the_console(world: World) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/console/../twilio/sms", "javascript:alert(1)",
                   "/consolex", "/console//evil.example"):
        response = world.server.browser().login("vic", next_=target)
        assert response.status_code == 303 and response.headers["location"] == "/console", target
    assert world.server.browser().login("vic", next_="/console/calls?flagged=yes").headers["location"] == \
        "/console/calls?flagged=yes"


def test_cookie_flags(world: World) -> None:
    response = world.server.browser().login("vic")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    world.server.use(console_settings(world.seeded.media_dir, console_secure_cookies=True), world.db, world.clock)
    browser = world.server.browser()
    page = browser.get("/console/login")
    assert "__Host-console_login_csrf=" in page.headers["set-cookie"] and "Secure" in page.headers["set-cookie"]
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    # httpx does not send Secure cookies over plain HTTP: send the double-submit cookie by hand.
    response = httpx.post(browser.http.base_url.join("/console/login"), headers={
        "Cookie": f"__Host-console_login_csrf={token}"}, data={"csrf": token, "name": "vic", "password": PASSWORD})
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("__Host-console="))
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/", "Max-Age=28800"):
        assert flag in session_cookie
    assert "Domain" not in session_cookie


# --- injection ------------------------------------------------------------------------------------


INJECTIONS = ["x' OR '1'='1", "1; DROP TABLE call_sessions;--", "<script>alert(1)</script>",
              "promise\" onmouseover=\"alert(1)", "%' UNION SELECT password_hash FROM users --"]


def test_injection_in_filters_is_refused_without_sql_errors(world: World) -> None:
    ada = world.as_("ada")
    for value in INJECTIONS:
        for name in ("from", "to", "outcome", "intent", "flagged", "reviewed", "locale", "low", "queue", "page"):
            response = ada.get("/console/calls", params={name: value})
            assert response.status_code == 400, (name, value)
            assert f"{name}:" in response.text and "<script>alert" not in response.text
            assert "password_hash" not in response.text and "$argon2" not in response.text
        for name in ("kind", "assigned", "status", "page"):
            assert ada.get("/console/tasks", params={name: value}).status_code == 400
        for name in ("action", "actor", "subject"):
            assert ada.get("/console/audit", params={name: value}).status_code == 400
        api = ada.get("/console/api/calls", params={"outcome": value})
        assert api.status_code == 400 and api.json()["detail"].startswith("outcome:")
    assert ada.get("/console/borrowers/B1' OR '1'='1").status_code == 400
    assert ada.get("/console/calls/1 OR 1=1").status_code == 404
    assert count(world.db, CallSession) == 3 and count(world.db, User) == 3
    # Valid values still filter (bound parameters): the table is intact and answers.
    assert ada.get("/console/api/calls", params={"outcome": "promise"}).json()["total"] == 1


def test_html_and_sql_in_notes_are_stored_redacted_and_shown_escaped(world: World) -> None:
    sam = world.as_("sam")
    call = world.seeded.call_promise
    text = "<script>alert('x')</script> '); DROP TABLE notes;-- call back on +1 212 555 1234"
    assert sam.post(f"/console/calls/{call}/notes", {"text": text}).status_code == 303
    assert sam.post("/console/borrowers/B1/notes", {"text": "<img src=x onerror=alert(1)>"}).status_code == 303
    page = sam.get(f"/console/calls/{call}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "DROP TABLE notes;--" in page and "+1 ***-***-1234" in page and "555 1234" not in page
    borrower = sam.get("/console/borrowers/B1").text
    assert "<img src=x" not in borrower and "&lt;img src=x onerror=alert(1)&gt;" in borrower
    with world.db.session() as session:
        notes = session.scalars(select(Note).order_by(Note.id)).all()
    assert [n.subject_type for n in notes] == ["call", "borrower"]
    assert "212 555 1234" not in notes[0].text_redacted and "+1 ***-***-1234" in notes[0].text_redacted
    assert count(world.db, CallSession) == 3
    # A note must be text: empty, too long or with control characters is refused.
    for bad in ("", " ", "x" * 2001, "bell\x07"):
        assert sam.post(f"/console/calls/{call}/notes", {"text": bad}).status_code == 400


# --- masking, reveal, audit -----------------------------------------------------------------------


def _pages(world: World) -> list[str]:
    s = world.seeded
    return ["/console", "/console/calls", "/console/calls?low=1", f"/console/calls/{s.call_promise}",
            f"/console/calls/{s.call_dispute}", f"/console/calls/{s.call_voicemail}", "/console/borrowers/B1",
            "/console/borrowers/B2", "/console/tasks", "/console/tasks?status=all", "/console/audit",
            "/console/api/dashboard", "/console/api/calls", "/console/effectiveness",
            "/console/effectiveness?by=step", "/console/effectiveness.csv?by=locale", "/console/api/effectiveness"]


def test_no_page_shows_unmasked_personal_data(world: World) -> None:
    ada = world.as_("ada")
    for path in _pages(world):
        response = ada.get(path)
        assert response.status_code == 200, path
        for raw in RAW_VALUES:
            assert raw not in response.text, (path, raw)
    borrower = ada.get("/console/borrowers/B1").text
    assert "+1 ***-***-1234" in borrower and "j***@example.com" in borrower and "J*** D***" in borrower
    assert "张*" in ada.get("/console/borrowers/B2").text and "+86 138****5678" in ada.get("/console/borrowers/B2").text


def test_a_supervisor_reveals_one_field_once_with_an_audit_row(world: World) -> None:
    sam = world.as_("sam")
    reason = "borrower called back from +1 212 555 1234, verifying the number"
    posted = sam.post("/console/borrowers/B1/reveal", {"field": "phone", "reason": reason})
    assert posted.status_code == 303 and B1_PHONE not in posted.text  # Post/Redirect/Get
    assert re.fullmatch(r"/console/borrowers/B1\?revealed=\d+", posted.headers["location"])
    response = sam.get(posted.headers["location"])
    assert response.status_code == 200
    assert response.text.count(B1_PHONE) == 1 and B1_EMAIL not in response.text and "Jane Doe" not in response.text
    assert response.headers["cache-control"] == "no-store"
    # A reload of the result neither shows the value again nor reveals (audits) again.
    again = sam.get(posted.headers["location"])
    assert again.status_code == 200 and B1_PHONE not in again.text and "shown once only" in again.text
    assert count(world.db, AuditEvent, AuditEvent.action == "reveal") == 1
    assert count(world.db, AuditEvent, AuditEvent.action == "reveal.shown") == 1
    # Nobody else can use the link; nor can the revealer once it is old.
    assert B1_PHONE not in world.as_("ada").get(posted.headers["location"]).text
    with world.db.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
    assert len(events) == 1
    event = events[0]
    assert (event.actor, event.subject_type, event.subject_id, event.at) == ("sam", "borrower", "B1", NOW)
    assert event.detail == {"fields": ["phone"], "reason": "borrower called back from +1 ***-***-1234, verifying "
                                                           "the number", "via": "console"}
    # Shown once: the page itself stays masked afterwards.
    assert B1_PHONE not in sam.get("/console/borrowers/B1").text
    # Each reveal is its own audit row; the email and name too.
    assert sam.get(sam.post("/console/borrowers/B1/reveal", {"field": "email", "reason": "send a statement"}
                            ).headers["location"]).text.count(B1_EMAIL) == 1
    late = sam.post("/console/borrowers/B1/reveal", {"field": "name", "reason": "identity check"}).headers["location"]
    world.clock.advance(timedelta(minutes=3))
    assert "Jane Doe" not in sam.get(late).text  # fetched too late: shown never
    assert sam.get("/console/borrowers/B1", params={"revealed": "x1"}).status_code == 400
    assert count(world.db, AuditEvent, AuditEvent.action == "reveal") == 3
    # The admin's audit page shows who, what, when and why, never the value.
    audit = world.as_("ada").get("/console/audit", params={"action": "reveal"}).text
    assert audit.count("reveal") >= 3 and "verifying the number" in audit and B1_PHONE not in audit


def test_a_reveal_without_a_reason_or_a_known_field_is_refused(world: World) -> None:
    sam = world.as_("sam")
    for form in ({"field": "phone", "reason": "why"}, {"field": "phone"}, {"field": "ssn", "reason": "because I can"},
                 {"reason": "no field given"}, {"field": "phone", "reason": "x" * 501}):
        response = sam.post("/console/borrowers/B1/reveal", form)
        assert response.status_code == 400 and B1_PHONE not in response.text, form
    assert sam.post("/console/borrowers/NOPE/reveal", {"field": "phone", "reason": "who is this"}).status_code == 404
    assert count(world.db, AuditEvent, AuditEvent.action == "reveal") == 0


def test_a_viewer_can_read_but_not_reveal_or_act(world: World) -> None:
    vic = world.as_("vic")
    s = world.seeded
    assert vic.get("/console/borrowers/B1").status_code == 200
    assert 'id="reveal-form"' not in vic.get("/console/borrowers/B1").text
    vic.csrf()
    response = vic.post("/console/borrowers/B1/reveal", {"field": "phone", "reason": "I would like to see it"})
    assert response.status_code == 403 and B1_PHONE not in response.text
    for url, form in ((f"/console/calls/{s.call_promise}/review", {}),
                      (f"/console/calls/{s.call_promise}/notes", {"text": "hello"}),
                      (f"/console/calls/{s.call_promise}/escalate", {"kind": "review"}),
                      (f"/console/calls/{s.call_promise}/turns/{s.promise_turn}/correct", {"intent": "dispute"}),
                      ("/console/tasks/1/assign", {"assignee": "me"}), ("/console/tasks/1/close", {"note": "x"}),
                      ("/console/borrowers/B1/notes", {"text": "hello"})):
        assert vic.post(url, form).status_code == 403, url
    assert vic.get("/console/audit").status_code == 403
    assert world.as_("sam").get("/console/audit").status_code == 403
    # A bot prompt may be heard by anybody signed in; the borrower's own voice only by a supervisor.
    assert vic.get(f"/console/media/turns/{s.bot_turn}").status_code == 200
    assert vic.get(f"/console/media/turns/{s.promise_turn}").status_code == 403
    assert count(world.db, AuditEvent, AuditEvent.action.in_(["reveal", "call.recording_played"])) == 0
    assert _state_after_viewer(world)


def _state_after_viewer(world: World) -> bool:
    return (count(world.db, Note) == 0 and count(world.db, CallTurn, CallTurn.corrected_intent.is_not(None)) == 0
            and count(world.db, Task) == 2)


def test_media_is_served_only_from_the_media_directory(world: World, tmp_path: Path) -> None:
    sam = world.as_("sam")
    s = world.seeded
    response = sam.get(f"/console/media/turns/{s.promise_turn}")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.content[:4] == b"RIFF"
    partial = sam.get(f"/console/media/turns/{s.promise_turn}", headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and len(partial.content) == 100
    played = count(world.db, AuditEvent, AuditEvent.action == "call.recording_played")
    assert played == 1  # the whole file once; the later range request is the same listening
    (tmp_path / "secret.wav").write_bytes(b"RIFF" + b"\0" * 40)
    for ref in ("../secret.wav", str(tmp_path / "secret.wav"), "recordings/../../secret.wav",
                "recordings/missing.wav", "recordings/1-4.txt"):
        with world.db.session() as session:
            turn = session.get(CallTurn, s.promise_turn)
            assert turn is not None
            turn.audio_ref = ref
        assert sam.get(f"/console/media/turns/{s.promise_turn}").status_code == 404, ref
    assert sam.get("/console/media/turns/999999").status_code == 404


# --- headers ----------------------------------------------------------------------------------------


def _assert_headers(response: httpx.Response, *, personal: bool = True) -> None:
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    if personal:
        assert response.headers["cache-control"] == "no-store"


_INLINE = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def test_security_headers_on_every_console_response_and_no_inline_code(world: World) -> None:
    anonymous = world.server.browser()
    for response in (anonymous.get("/"), anonymous.get("/console"), anonymous.get("/console/login"),
                     anonymous.get("/console/api/calls"), anonymous.get("/console/static/nothing")):
        _assert_headers(response)
    _assert_headers(anonymous.get("/console/static/console.js"), personal=False)
    ada = world.as_("ada")
    for path in _pages(world) + ["/console/calls/424242", "/console/borrowers/NOPE",
                                 f"/console/media/turns/{world.seeded.bot_turn}"]:
        response = ada.get(path)
        _assert_headers(response)
        if response.headers["content-type"].startswith("text/html"):
            assert not _INLINE.search(response.text), (path, _INLINE.search(response.text))
    # The webhooks are not the console's: their own headers stay as they were.
    assert "content-security-policy" not in anonymous.get("/healthz").headers


def test_ids_no_row_can_have_are_404_with_the_headers(world: World) -> None:
    """Ids no row can have (at or above 2^31, beyond PostgreSQL's INTEGER; at or above 2^63,
    beyond SQLite's) and 0, on every route with an id in its path, GET and POST alike: a 404
    with the console's headers, never a driver error."""
    ada = world.as_("ada")
    ada.csrf()
    form = {"text": "a note", "intent": "dispute", "promise_date": "", "kind": "review", "assignee": "me",
            "note": "done"}
    id_routes = [(m, p) for m, p in console_routes(world.server.app) if ":int}" in p]
    assert len(id_routes) >= 8
    before = _state(world)
    for method, path in id_routes:
        for big in (2**31, 2**63, 2**64, 10**30, 0):
            url = concrete(path, big, big).replace("/tasks/1/", f"/tasks/{big}/")
            response = ada.get(url) if method == "GET" else ada.post(url, form)
            assert response.status_code == 404, (method, url, response.status_code)
            _assert_headers(response)
    # The largest id there can be is looked up as usual (no such call: a 404 page too).
    assert ada.get(f"/console/calls/{2**31 - 1}").status_code == 404
    assert _state(world) == before


def test_an_unhandled_error_is_a_500_with_the_security_headers(world: World) -> None:
    from bot.sandbox.server import ThreadedServer
    from bot.app import create_app

    app = create_app(world.settings, world.db, world.clock)

    @app.get("/console/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    server = ThreadedServer(app).start()
    try:
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=15) as client:
            response = client.get("/console/boom")
            assert response.status_code == 500 and response.text == "Internal Server Error"
            _assert_headers(response)
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=15) as client:
            assert client.get("/healthz").status_code == 200  # the server goes on serving
    finally:
        server.stop()

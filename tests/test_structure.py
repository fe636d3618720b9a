"""The package's own structure: the dependency direction of docs/architecture.md.

domain/errors/clock <- privacy, compliance engine, nlu <- db-backed services
<- channels <- dispatch <- scheduler, web <- cli.  Pure modules stay pure, each middle
layer imports nothing above it (``FORBIDDEN``; ``LAYER_EXCEPTIONS`` would name any hole),
only the dispatcher talks to channel adapters (every layer may read the channel contract's
neutral events, bot.channels.events), only bot.providers imports the provider's
library (``twilio``) or reads its webhook field names, the call flow (bot.voice) does
not know the web, the webhooks (bot.web) import neither the console nor the API
(the composition root, bot.app, mounts the three side by side), the Twilio sandbox
stays a separate "other side" that knows nothing of the bot's internals, only the
attempt store (bot.dispatch.attempts) writes an attempt's lease or reads its dispatch
metadata, and the dispatch pass leaves what differs per channel to each channel's steps.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bot"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FILES = [p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts]
#: Every module of the package, to tell ``from package import module`` from a package's own names.
NAMES = frozenset(_module_name(p) for p in FILES)


def _imports(path: Path) -> set[str]:
    return _imports_of(path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py")


def _imports_of(text: str, module: str, *, is_package: bool = False, known: frozenset[str] = NAMES) -> set[str]:
    """Every module ``text`` imports (anywhere: lazy imports in functions and ``TYPE_CHECKING`` too).

    ``from package import name`` imports ``package.name`` when that is one of the ``known``
    modules, else ``package`` itself."""
    tree = ast.parse(text)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            elif node.module:
                source = node.module
            else:  # pragma: no cover - ``from . import`` always has a level
                continue
            # ``from package import module`` imports the module (the package's own names: the package)
            submodules = {f"{source}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(source)
    return found


MODULES = {_module_name(p): _imports(p) for p in FILES}


def import_cycles(modules: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among ``modules``: the strongly connected components of more than one module.

    An edge is an import (at the top, in a function or under ``TYPE_CHECKING``) of another
    module of ``modules``; each cycle is listed sorted, the list sorted (Tarjan's algorithm).
    """
    graph = {m: sorted(i for i in imports if i in modules and i != m) for m, imports in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(graph[step])))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: The channel contract's neutral events: pure, and readable by every layer (providers
#: write them, the web passes them on, the core reads them).
CHANNEL_CONTRACT = ("bot.channels.events",)

# module prefix -> prefixes it must never import (the channel contract excepted)
FORBIDDEN: dict[tuple[str, ...], tuple[str, ...]] = {
    ("bot.domain", "bot.errors", "bot.clock"): ("bot.privacy", "bot.db", "bot.compliance", "bot.nlu",
                                                "bot.channels", "bot.dispatch", "bot.scheduler",
                                                "bot.web", "bot.cli", "bot.sandbox", "sqlalchemy"),
    ("bot.privacy", "bot.nlu"): ("bot.db", "bot.compliance", "bot.channels", "bot.dispatch",
                                 "bot.scheduler", "bot.web", "bot.cli", "bot.sandbox", "sqlalchemy"),
    ("bot.compliance.engine", "bot.compliance.types", "bot.compliance.rules", "bot.compliance.zones",
     "bot.compliance.calendars"): ("bot.db", "bot.channels", "bot.dispatch", "bot.scheduler", "bot.web",
                                   "bot.cli", "bot.sandbox", "sqlalchemy"),
    ("bot.db",): ("bot.channels", "bot.dispatch", "bot.scheduler", "bot.web", "bot.cli", "bot.sandbox"),
    ("bot.sandbox",): ("bot.db", "bot.compliance", "bot.nlu", "bot.channels", "bot.dispatch", "bot.providers",
                       "bot.scheduler", "bot.web", "bot.cli", "bot.speech", "bot.scripts", "bot.voice",
                       "bot.console", "bot.demo"),
    # the provider package is used by channels, dispatch, web and voice; it uses none of them
    # but the dispatcher's lookup protocol (bot.dispatch.reconcile)
    ("bot.providers",): ("bot.channels", "bot.web", "bot.voice", "bot.scheduler", "bot.cli", "bot.console",
                         "bot.sandbox", "bot.demo"),
    # the dialog engine and its scripts are pure: no database, no I/O layers
    ("bot.scripts",): ("bot.db", "bot.channels", "bot.dispatch", "bot.scheduler", "bot.web", "bot.cli",
                       "bot.sandbox", "bot.voice", "bot.speech", "bot.console", "sqlalchemy"),
    # speech knows audio, models and reply intents, nothing of calls or storage
    ("bot.speech",): ("bot.db", "bot.channels", "bot.dispatch", "bot.scheduler", "bot.web", "bot.cli",
                      "bot.sandbox", "bot.voice", "bot.console", "bot.scripts", "sqlalchemy"),
    # the call flow is provider- and HTTP-neutral: events in, a neutral plan out; it sits below
    # the dispatcher and the webhooks that use it
    ("bot.voice",): ("bot.cli", "bot.sandbox", "bot.console", "bot.channels", "bot.web", "bot.api", "bot.dispatch",
                     "bot.scheduler", "bot.demo"),
    # events are written by every layer that changes something: they know only the database
    ("bot.events",): ("bot.channels", "bot.dispatch", "bot.scheduler", "bot.web", "bot.cli", "bot.sandbox",
                      "bot.replies", "bot.voice", "bot.console", "bot.speech", "bot.scripts"),
    # --- the middle layers, bottom-up ---
    # the compliance package as a whole (its loader reads the database): below everything that contacts
    ("bot.compliance",): ("bot.channels", "bot.providers", "bot.dispatch", "bot.replies", "bot.voice",
                          "bot.scheduler", "bot.web", "bot.console", "bot.api", "bot.cli", "bot.sandbox",
                          "bot.demo"),
    # database-backed services: they read and write rows, nothing above them
    ("bot.importer", "bot.ledger", "bot.portfolio", "bot.risk", "bot.retention", "bot.metrics", "bot.ratelimit",
     "bot.messages", "bot.effectiveness"): ("bot.channels", "bot.providers", "bot.dispatch", "bot.replies",
                                            "bot.voice", "bot.scheduler", "bot.web", "bot.console", "bot.api",
                                            "bot.cli", "bot.sandbox", "bot.demo"),
    # what a borrower's statement does: every channel and surface calls it, it calls none of them
    ("bot.replies",): ("bot.channels", "bot.providers", "bot.dispatch", "bot.voice", "bot.scheduler", "bot.web",
                       "bot.console", "bot.api", "bot.cli", "bot.sandbox", "bot.demo"),
    # channel adapters are driven by the dispatcher and know nothing above it
    ("bot.channels",): ("bot.dispatch", "bot.replies", "bot.scheduler", "bot.web", "bot.console", "bot.api",
                        "bot.cli", "bot.sandbox", "bot.demo"),
    ("bot.dispatch",): ("bot.scheduler", "bot.web", "bot.console", "bot.api", "bot.cli", "bot.sandbox",
                        "bot.demo"),
    ("bot.scheduler",): ("bot.web", "bot.console", "bot.api", "bot.cli", "bot.sandbox", "bot.demo"),
    # what the three HTTP surfaces share (the request context, bounded bodies): below all three
    ("bot.http",): ("bot.channels", "bot.providers", "bot.dispatch", "bot.replies", "bot.voice", "bot.scheduler",
                    "bot.web", "bot.console", "bot.api", "bot.cli", "bot.sandbox", "bot.demo"),
    ("bot.web",): ("bot.scheduler", "bot.cli", "bot.sandbox", "bot.demo"),
    # the console and the API share the request context and the form body reader with bot.web
    # through bot.http; neither reaches bot.web, the other, a channel or the dispatcher
    ("bot.console",): ("bot.web", "bot.api", "bot.channels", "bot.dispatch", "bot.cli", "bot.sandbox", "bot.demo"),
    ("bot.api",): ("bot.web", "bot.console", "bot.channels", "bot.providers", "bot.dispatch", "bot.voice",
                   "bot.scheduler", "bot.cli", "bot.sandbox", "bot.demo"),
}

#: ``(module prefix, imported prefix)`` pairs a rule of :data:`FORBIDDEN` lets through, each named
#: with its reason (none today: every surface shares what it needs through a layer below it).
LAYER_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def forbidden_imports(module: str, imports: set[str]) -> list[str]:
    """What ``module`` imports against :data:`FORBIDDEN` (the channel contract is never forbidden,
    :data:`LAYER_EXCEPTIONS` are let through)."""
    return sorted({i for owners, forbidden in FORBIDDEN.items() if _starts(module, owners)
                   for i in imports if _starts(i, forbidden) and not _starts(i, CHANNEL_CONTRACT)
                   and not any(_starts(module, (owner,)) and _starts(i, (allowed,))
                               for owner, allowed in LAYER_EXCEPTIONS)})


def layer_violations(modules: dict[str, set[str]]) -> list[str]:
    """``"<module> imports <module>"`` for every import a rule of :data:`FORBIDDEN` forbids."""
    return sorted(f"{module} imports {i}" for module, imports in modules.items()
                  for i in forbidden_imports(module, imports))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependency_direction(module: str) -> None:
    bad = forbidden_imports(module, MODULES[module])
    assert not bad, f"{module} must not import {bad}"


@pytest.mark.parametrize(("module", "text", "expected"), [
    ("bot.voice.service", "from bot.web.voice import service_for\n", ["bot.web.voice"]),
    ("bot.voice.intruder", "def lazy():\n    from bot.web import twilio\n", ["bot.web.twilio"]),
    ("bot.voice.service", "from bot.channels.voice import VoiceChannel\n", ["bot.channels.voice"]),
    ("bot.voice.service", "from bot.channels.events import CallHeard\n", []),
])
def test_the_call_flow_rule_reports_a_violation(module: str, text: str, expected: list[str]) -> None:
    assert forbidden_imports(module, _imports_of(text, module)) == expected


@pytest.mark.parametrize(("module", "text", "expected"), [
    ("bot.compliance.loader", "def lazy():\n    from bot.dispatch.runner import Dispatcher\n",
     "bot.compliance.loader imports bot.dispatch.runner"),
    ("bot.effectiveness.report", "from bot.web import app\n", "bot.effectiveness.report imports bot.web.app"),
    ("bot.ledger", "from bot.replies.statement import apply_statement\n",
     "bot.ledger imports bot.replies.statement"),
    ("bot.replies.statement", "from bot.voice.service import CallService\n",
     "bot.replies.statement imports bot.voice.service"),
    ("bot.replies.inbound", "from ..api.app import create_api\n", "bot.replies.inbound imports bot.api.app"),
    ("bot.channels.sms", "from bot.dispatch.records import record\n", "bot.channels.sms imports bot.dispatch.records"),
    ("bot.dispatch.runner", "from bot.scheduler.service import PlannerService\n",
     "bot.dispatch.runner imports bot.scheduler.service"),
    ("bot.dispatch.runner", "from bot.web.twilio import router\n", "bot.dispatch.runner imports bot.web.twilio"),
    ("bot.dispatch.statuses", "from bot.web import app\n", "bot.dispatch.statuses imports bot.web.app"),
    ("bot.scheduler.service", "import bot.web.app\n", "bot.scheduler.service imports bot.web.app"),
    ("bot.voice.service", "from bot.dispatch.runner import Dispatcher\n",
     "bot.voice.service imports bot.dispatch.runner"),
    ("bot.web.twilio", "from bot.scheduler.explain import explain\n",
     "bot.web.twilio imports bot.scheduler.explain"),
    ("bot.console.routes", "from bot.web.voice import router\n", "bot.console.routes imports bot.web.voice"),
    ("bot.api.deps", "from bot.console.sessions import current_user\n",
     "bot.api.deps imports bot.console.sessions"),
    ("bot.console.web", "from bot.web.body import signed_event\n", "bot.console.web imports bot.web.body"),
    ("bot.http.context", "from bot.console.web import current_user\n",
     "bot.http.context imports bot.console.web"),
])
def test_the_layer_rules_report_a_violation(module: str, text: str, expected: str) -> None:
    """Each middle layer's rule fails on a deliberate violation (and only on it)."""
    modules = {module: MODULES.get(module, set()) | _imports_of(text, module)}  # (a renamed module: only the text)
    assert layer_violations(modules) == [expected]


def test_an_exception_lets_one_module_import_one_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "LAYER_EXCEPTIONS",
                        frozenset({("bot.dispatch.statuses", "bot.web.twilio")}))
    assert forbidden_imports("bot.dispatch.statuses", {"bot.web.twilio", "bot.web.app"}) == ["bot.web.app"]
    assert forbidden_imports("bot.dispatch.runner", {"bot.web.twilio"}) == ["bot.web.twilio"]


def test_the_layer_exceptions_are_still_needed() -> None:
    """Every exception is one an import of today uses: when the code stops needing it, it goes."""
    unused = sorted(pair for pair in LAYER_EXCEPTIONS
                    if not any(_starts(m, (pair[0],)) and _starts(i, (pair[1],))
                               for m, imports in MODULES.items() for i in imports))
    assert unused == []


def test_only_dispatch_uses_channel_adapters() -> None:
    offenders = sorted(
        m for m, imports in MODULES.items()
        if not _starts(m, ("bot.channels", "bot.dispatch"))
        and any(_starts(i, ("bot.channels",)) and not _starts(i, CHANNEL_CONTRACT) for i in imports)
    )
    assert offenders == []


def test_the_channel_contract_is_pure() -> None:
    """The neutral events import nothing but the standard library (no bot layer, no provider)."""
    for module in CHANNEL_CONTRACT:
        assert MODULES[module] <= {"__future__", "collections.abc", "dataclasses", "datetime", "typing"}


#: The one home of the telephony provider: only it imports the provider's library.
PROVIDER_HOMES = ("bot.providers",)
#: The sandbox plays Twilio (the other side of the API, knowing nothing of the bot): it may
#: use twilio's own client and validator to behave like Twilio.
PROVIDER_STAND_INS = ("bot.sandbox",)


def provider_library_importers(modules: dict[str, set[str]]) -> list[str]:
    """Modules outside :data:`PROVIDER_HOMES` that import ``twilio``."""
    return sorted(
        m for m, imports in modules.items()
        if not _starts(m, PROVIDER_HOMES + PROVIDER_STAND_INS) and any(_starts(i, ("twilio",)) for i in imports)
    )


def test_only_the_provider_package_imports_twilio() -> None:
    assert provider_library_importers(MODULES) == []
    assert any(_starts(i, ("twilio",)) for m, imports in MODULES.items() if _starts(m, PROVIDER_HOMES)
               for i in imports)


@pytest.mark.parametrize("text", [
    "from twilio.rest import Client\n",
    "import twilio.request_validator\n",
    "def lazy():\n    from twilio.base.exceptions import TwilioRestException\n",
])
def test_the_provider_rule_reports_a_violation(text: str) -> None:
    modules = {**MODULES, "bot.web.intruder": _imports_of(text, "bot.web.intruder"),
               "bot.providers.twilio.extra": _imports_of(text, "bot.providers.twilio.extra")}
    assert provider_library_importers(modules) == ["bot.web.intruder"]


#: Twilio's webhook field names: only the provider package (and the sandbox that plays
#: Twilio) reads them; everything else reads the neutral events.
PROVIDER_FIELDS = frozenset({
    "AccountSid", "AnsweredBy", "CallDuration", "CallSid", "CallStatus", "Digits", "ErrorCode",
    "MachineDetectionDuration", "MessageSid", "MessageStatus", "RecordingDuration", "RecordingSid",
    "RecordingStartTime", "RecordingStatus", "RecordingUrl", "SmsStatus",
})


def field_literals(text: str) -> list[str]:
    """The string literals of ``text`` that are provider field names (docstrings mentioning one are not)."""
    return [node.value for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PROVIDER_FIELDS]


def provider_field_readers(sources: dict[str, str]) -> list[str]:
    """``module: field`` for each provider field name read outside :data:`PROVIDER_HOMES` and
    :data:`PROVIDER_STAND_INS`."""
    return sorted(f"{module}: {name}" for module, text in sources.items()
                  if not _starts(module, PROVIDER_HOMES + PROVIDER_STAND_INS) for name in field_literals(text))


SOURCES = {_module_name(p): p.read_text(encoding="utf-8") for p in FILES}


def test_only_the_provider_package_reads_its_field_names() -> None:
    assert provider_field_readers(SOURCES) == []
    assert {"CallSid", "MessageSid", "AnsweredBy"} <= set(field_literals(SOURCES["bot.providers.twilio.webhooks"]))


@pytest.mark.parametrize(("module", "text", "expected"), [
    ("bot.web.voice", 'sid = form.get("CallSid")\n', ["bot.web.voice: CallSid"]),
    ("bot.voice.service", 'def f(params):\n    return params["AnsweredBy"], params.get("Digits")\n',
     ["bot.voice.service: AnsweredBy", "bot.voice.service: Digits"]),
    ("bot.dispatch.runner", 'ended = [p for p in answers if p.get("CallStatus") == "completed"]\n',
     ["bot.dispatch.runner: CallStatus"]),
    ("bot.providers.twilio.webhooks", 'sid = form["MessageSid"]\n', []),
    ("bot.sandbox.voice", 'form["CallSid"] = sid\n', []),
    ("bot.web.voice", '"""Reads the ``CallSid`` of a webhook."""\n', []),
])
def test_the_provider_field_rule_reports_a_violation(module: str, text: str, expected: list[str]) -> None:
    assert provider_field_readers({**SOURCES, module: text}) == expected


def test_nothing_imports_the_cli() -> None:
    offenders = sorted(
        m for m, imports in MODULES.items()
        if not _starts(m, ("bot.cli",)) and m != "bot.__main__"
        and any(_starts(i, ("bot.cli",)) for i in imports)
    )
    assert offenders == []


def test_top_level_layout() -> None:
    root = PACKAGE.parent
    for required in ("bot", "bot/channels", "bot/scripts", "bot/scheduler", "templates", "tests",
                     "docker-compose.yml", "README.md"):
        assert (root / required).exists(), required


def test_command_table_matches_command_modules() -> None:
    """Every command a module declares is in the lazy table, and nothing else is."""
    import importlib
    import pkgutil

    import bot.cli as package
    from bot.cli import COMMAND_TABLE

    declared = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.endswith(("_cmd", "_cmds")):
            module = importlib.import_module(f"bot.cli.{info.name}")
            for command in module.COMMANDS:
                attr = next(k for k, v in vars(module).items() if v is command)
                declared[command.name] = (module.__name__, attr)
    assert declared == {name: (mod, attr) for name, (mod, attr, _help) in COMMAND_TABLE.items()}


def test_no_import_cycles() -> None:
    """No module of bot/ imports itself back through others, lazily or for types either."""
    assert import_cycles(MODULES) == []


def test_the_cycle_check_reports_a_deliberate_cycle() -> None:
    known = NAMES | {"bot.fake", "bot.fake.first", "bot.fake.second", "bot.fake.third"}
    first = "def lazy():\n    from bot.fake.second import thing\n"
    second = "from bot.fake import first\n"
    modules = {**MODULES, "bot.fake": _imports_of("from bot.fake.first import thing\n", "bot.fake", is_package=True),
               "bot.fake.first": _imports_of(first, "bot.fake.first", known=known),
               "bot.fake.second": _imports_of(second, "bot.fake.second", known=known),
               # a package's own name, not a cycle: the package imports first, third imports the package
               "bot.fake.third": _imports_of("from bot.fake import thing\n", "bot.fake.third", known=known)}
    assert import_cycles(modules) == [["bot.fake.first", "bot.fake.second"]]


def test_the_cycle_check_sees_the_former_dispatch_circle() -> None:
    """Put back a lazy import of the runner in the attempt store (as the former voice module
    of the dispatcher had): the check reports the circle again."""
    modules = {name: set(imports) for name, imports in MODULES.items()}
    modules["bot.dispatch.attempts"] |= _imports_of("def f():\n    from .runner import Dispatcher\n",
                                                    "bot.dispatch.attempts")
    assert any({"bot.dispatch.attempts", "bot.dispatch.runner"} <= set(c) for c in import_cycles(modules))
    assert import_cycles(MODULES) == []


def test_the_cycle_check_counts_type_only_imports() -> None:
    """The sandbox's resources once named their owner under ``TYPE_CHECKING``: that is a cycle too."""
    modules = {name: set(imports) for name, imports in MODULES.items()}
    modules["bot.sandbox.callbacks"] |= _imports_of(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.sandbox.sandbox import Sandbox\n",
        "bot.sandbox.callbacks")
    assert import_cycles(modules) == [["bot.sandbox.callbacks", "bot.sandbox.messaging", "bot.sandbox.sandbox",
                                      "bot.sandbox.voice"]]


#: The composition root builds the app and mounts the webhooks, the console and the API side
#: by side; besides it only the command line and the demo (which run the app) may know all three.
COMPOSITION_ROOTS = ("bot.app", "bot.cli", "bot.demo")
SURFACES = ("bot.web", "bot.console", "bot.api")


def composition_violations(modules: dict[str, set[str]]) -> list[str]:
    """The webhooks importing the console or the API, and modules outside :data:`COMPOSITION_ROOTS`
    that import all three surfaces."""
    found = [f"{m} imports {i}" for m, imports in modules.items() if _starts(m, ("bot.web",))
             for i in sorted(imports) if _starts(i, ("bot.console", "bot.api"))]
    found += [f"{m} imports all of {', '.join(SURFACES)}" for m, imports in modules.items()
              if not _starts(m, COMPOSITION_ROOTS)
              and all(any(_starts(i, (surface,)) for i in imports) for surface in SURFACES)]
    return sorted(found)


def test_the_webhooks_import_neither_the_console_nor_the_api() -> None:
    assert composition_violations(MODULES) == []


def test_the_composition_root_mounts_all_three() -> None:
    assert all(any(_starts(i, (surface,)) for i in MODULES["bot.app"]) for surface in SURFACES)


@pytest.mark.parametrize(("module", "text", "expected"), [
    ("bot.web.app", "from bot.console import routes\n", ["bot.web.app imports bot.console.routes"]),
    ("bot.web.voice", "def lazy():\n    from bot.api.app import create_api\n",
     ["bot.web.voice imports bot.api.app"]),
    ("bot.web.twilio", "from ..console.security import ConsoleHeadersMiddleware\n",
     ["bot.web.twilio imports bot.console.security"]),
    ("bot.scheduler.intruder", "import bot.web.app\nimport bot.console.routes\nimport bot.api.app\n",
     ["bot.scheduler.intruder imports all of bot.web, bot.console, bot.api"]),
])
def test_the_composition_rule_reports_a_violation(module: str, text: str, expected: list[str]) -> None:
    modules = {**MODULES, module: _imports_of(text, module)}
    assert composition_violations(modules) == expected


# --- the attempt store owns the lease and the dispatch metadata ----------------------------

#: The one module that writes the lease columns of ``contact_attempts`` and reads ``decision["dispatch"]``.
ATTEMPT_STORE = "bot.dispatch.attempts"
LEASE_COLUMNS = ("claimed_by", "claimed_until")
TEXTS = {_module_name(p): p.read_text(encoding="utf-8") for p in FILES}


def _is_attempt_module(text: str) -> bool:
    return "ContactAttempt" in text or "contact_attempts" in text


def lease_writes(text: str) -> list[int]:
    """The lines of ``text`` that write a lease column: ``claimed_by=``/``claimed_until=`` keyword
    arguments (``.values(...)``, a row's constructor), assignments to ``row.claimed_by``, dict
    entries that set one (not ``"claimed_by": row.claimed_by``, a read), SQL ``SET claimed_by``."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.keyword) and node.arg in LEASE_COLUMNS:
            lines.append(node.value.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            lines.extend(t.lineno for t in targets if isinstance(t, ast.Attribute) and t.attr in LEASE_COLUMNS)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in LEASE_COLUMNS and not (
                        isinstance(value, ast.Attribute) and value.attr == key.value):
                    lines.append(key.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = node.value.lower()
            if " set " in f" {sql}" and any(c in sql.split(" set ", 1)[-1] for c in LEASE_COLUMNS):
                lines.append(node.lineno)
    return sorted(lines)


def dispatch_meta_reads(text: str) -> list[int]:
    """The lines of ``text`` that read ``decision["dispatch"]`` or ``decision.get("dispatch")``."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.slice, ast.Constant) and node.slice.value == "dispatch":
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "dispatch":
            lines.append(node.lineno)
    return sorted(lines)


def attempt_store_offenders(texts: dict[str, str]) -> dict[str, list[int]]:
    """Modules other than :data:`ATTEMPT_STORE` that write a contact attempt's lease or read its
    dispatch metadata out of the decision JSON, with the lines."""
    found = {}
    for module, text in texts.items():
        if module == ATTEMPT_STORE:
            continue
        lines = _store_rule_lines(text)
        if lines:
            found[module] = lines
    return found


@functools.lru_cache(maxsize=None)
def _store_rule_lines(text: str) -> list[int]:
    return sorted((lease_writes(text) if _is_attempt_module(text) else []) + dispatch_meta_reads(text))


def test_only_the_attempt_store_writes_the_lease_and_reads_dispatch_metadata() -> None:
    assert attempt_store_offenders(TEXTS) == {}
    assert lease_writes(TEXTS[ATTEMPT_STORE])  # the rule sees the store's own writes


@pytest.mark.parametrize("text", [
    "from bot.db.models import ContactAttempt\nstmt = update(ContactAttempt).values(claimed_by=None)\n",
    "from bot.db.models import ContactAttempt\ndef f(row):\n    row.claimed_until = None\n",
    "from bot.db.models import ContactAttempt\nCANCEL = {'status': 'cancelled', 'claimed_by': None}\n",
    "SQL = 'UPDATE contact_attempts SET status = 1, claimed_until = NULL'\n",
    "def f(attempt):\n    return attempt.decision['dispatch']['from']\n",
    "def f(decision):\n    return (decision or {}).get('dispatch')\n",
])
def test_the_attempt_store_rule_reports_a_violation(text: str) -> None:
    texts = {**TEXTS, "bot.web.intruder": text, ATTEMPT_STORE: TEXTS[ATTEMPT_STORE] + "\n" + text}
    assert list(attempt_store_offenders(texts)) == ["bot.web.intruder"]


def test_the_attempt_store_rule_lets_reads_be() -> None:
    text = ("from bot.db.models import ContactAttempt\n"
            "def f(a):\n    return {'claimed_by': a.claimed_by, 'mine': a.claimed_by == 'w1'}\n"
            "q = select(ContactAttempt.id).where(ContactAttempt.claimed_until < 1)\n")
    assert attempt_store_offenders({"bot.cli.reader": text}) == {}


CHANNEL_NAMES = frozenset({"sms", "email", "voice", "SMS", "EMAIL", "VOICE"})


def channel_branches(text: str) -> list[int]:
    """Lines of ``text`` that compare with a channel's name (``channel == "voice"``, ``"sms" in
    channels``, ``Channel.VOICE``): what each channel does differently belongs in its steps."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare):
            if any((isinstance(n, ast.Constant) and n.value in CHANNEL_NAMES)
                   or (isinstance(n, ast.Attribute) and n.attr in CHANNEL_NAMES)
                   for side in (node.left, *node.comparators) for n in ast.walk(side)):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("module", ["bot.dispatch.runner", "bot.dispatch.attempts"])
def test_the_dispatch_pass_does_not_branch_on_channel_names(module: str) -> None:
    """Neither the pass nor the attempt store it records with."""
    assert channel_branches(TEXTS[module]) == []


@pytest.mark.parametrize("text", [
    "if attempt.channel == 'voice':\n    pass\n",
    "ok = 'sms' in self.channels\n",
    "ok = channel in ('sms', 'voice')\n",
    "ok = channel == Channel.VOICE.value\n",
])
def test_the_channel_branch_rule_reports_a_violation(text: str) -> None:
    assert channel_branches(text) == [1]

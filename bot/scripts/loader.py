"""Load and validate voice scripts: ``bot/scripts/<name>/<locale>.yaml``.

Everything is checked when a script is loaded, and every problem is reported as
``FILE:LINE: message`` (all of them at once, in a :class:`ScriptError`):

* structure (pydantic): unknown or missing keys, wrong types, unknown intents,
  outcomes, task kinds; the file's ``script``/``locale`` must match its path;
* the graph: every target exists, every node is reachable, every node ends, asks, or
  goes on (``end`` / ``listen`` / ``next``, exactly one), no loop of nodes that never
  listen, ``on_fail`` leads to an ending without asking anything;
* conditional nodes: ``when`` (a context flag) and ``otherwise`` (the node entered in its
  place when the flag does not hold) come together, and such a node is entered only by an
  answer or a ``next`` (not the start, the voicemail, an ``on_fail``, a global fallback, the
  survey or a read-back); the walk follows both ways;
* prompts: Jinja2 syntax, only the documented variables (StrictUndefined at run time);
* read-back: each ``readback`` entry names an action node and a ``check: readback`` yes/no
  question whose ``affirm`` enters it, with no ``deny`` of its own (the engine returns to
  the question) and an ``on_fail`` that hands over without recording anything;
* keypad: every listening node has a keypad prompt that says keys are used and names
  each of its keys, and every key leads somewhere;
* survey: the optional ``survey`` node asks by keypad only, keys 1 to 5 each meaning
  ``survey_response`` and leading somewhere, and ``survey_response`` is used nowhere else;
  the walk enters it after every ``promise`` or ``paid_claim`` ending;
* compliance, by walking every path of the dialog with the facts the engine keeps
  (right party confirmed, disclosure said, promise date known, promise confirmed):
  nothing about the debt before the right party is confirmed (the revealing variables
  ``amount_text``, ``due_date_text``, ``disclosure``, ``promise_date_text`` and the
  debt words of :mod:`bot.scripts.words`, which a script cannot switch off); the
  disclosure before the amount; the voicemail path limited to the lender's name and the
  call-back number, without debt words, questions or side effects.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import jinja2
import jinja2.meta
import jinja2.sandbox
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from bot.domain import Intent, TaskKind
from bot.errors import ConfigError
from bot.scripts.model import (
    AMOUNT_VARIABLES,
    CONDITIONS,
    MESSAGE_VARIABLES,
    PROMPT_VARIABLES,
    REVEALING_VARIABLES,
    VOICEMAIL_VARIABLES,
    ListenSpec,
    Node,
    NodeActions,
    OutcomeKind,
    Prompt,
    Route,
    Script,
)
from bot.scripts.words import DEBT_WORDS, KEYPAD_WORDS, debt_words_in, has_keypad_word, language_of
from bot.scripts.yamlmarks import Lines, pydantic_problems, read_yaml

__all__ = ["DEFAULT_SCRIPTS_DIR", "ScriptError", "load_script", "script_file", "validate_all"]

DEFAULT_SCRIPTS_DIR = Path(__file__).resolve().parent
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
_NODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KEY_RE = re.compile(r"^[0-9*#]{1,4}$")
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_REASON_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ScriptError(ConfigError):
    """Voice scripts that cannot be used; ``problems`` are ``FILE:LINE: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid voice script:\n  " + "\n  ".join(problems))


# --- file schema -------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Listen(_Strict):
    input: Literal["speech", "keypad", "both"] = "both"
    expect: Literal["yes_no", "date", "intent", "digits"]
    timeout_s: Annotated[StrictInt, Field(ge=1, le=30)] = 5
    max_length_s: Annotated[StrictInt, Field(ge=1, le=60)] = 10
    retries: Annotated[StrictInt, Field(ge=0, le=5)] = 2
    keypad_after: Annotated[StrictInt, Field(ge=0, le=5)] = 2


class _Actions(_Strict):
    opt_out: StrictBool = False
    flag_number: StrictStr | None = None
    open_task: TaskKind | None = None
    flag: StrictStr | None = None
    send_sms: StrictStr | None = None


class _Node(_Strict):
    say: StrictStr
    keypad_say: StrictStr | None = None
    reprompt: StrictStr | None = None
    listen: _Listen | None = None
    keypad: dict[str, Intent] = {}
    on: dict[Intent, StrictStr] = {}
    next: StrictStr | None = None
    end: OutcomeKind | None = None
    check: Literal["right_party", "promise", "readback"] | None = None
    actions: _Actions = _Actions()
    on_fail: StrictStr | None = None
    when: Literal[CONDITIONS] | None = None  # type: ignore[valid-type]
    otherwise: StrictStr | None = None


class _Global(_Strict):
    to: StrictStr
    unconfirmed: StrictStr | None = None


class _Messages(_Strict):
    no_input: StrictStr
    not_understood: StrictStr


class _ScriptFile(_Strict):
    version: Literal[1]
    script: StrictStr
    locale: StrictStr
    start: StrictStr
    voicemail: StrictStr
    on_fail: StrictStr
    max_turns: Annotated[StrictInt, Field(ge=1, le=100)] = 30
    min_confidence: Annotated[StrictFloat, Field(ge=0.0, le=1.0)] = 0.5
    disclosure: StrictStr
    messages: _Messages
    debt_words: list[StrictStr] = []
    keypad: dict[str, Intent] = {}
    globals: dict[Intent, _Global]
    readback: dict[str, StrictStr] = {}
    survey: StrictStr | None = None
    nodes: Annotated[dict[str, _Node], Field(min_length=1)]


# --- public API ----------------------------------------------------------------------


def script_file(name: str, locale: str, scripts_dir: Path | str | None = None) -> Path:
    return Path(scripts_dir or DEFAULT_SCRIPTS_DIR) / name / f"{locale}.yaml"


_cache: dict[str, tuple[tuple[int, int], Script | ScriptError]] = {}
_cache_lock = threading.Lock()


def load_script(name: str, locale: str, *, scripts_dir: Path | str | None = None) -> Script:
    """The validated script ``<scripts_dir>/<name>/<locale>.yaml``.

    Raises :class:`ScriptError` listing every problem as ``FILE:LINE: message``.
    A file is parsed once per process while it is unchanged (size and mtime).
    """
    if not _NAME_RE.match(name):
        raise ScriptError([f"voice script name '{name}': lower-case letters, digits and _ only"])
    if not _LOCALE_RE.match(locale):
        raise ScriptError([f"voice script '{name}': '{locale}' is not a locale tag such as en-US"])
    file = script_file(name, locale, scripts_dir)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise ScriptError([f"{file}: the script file does not exist"]) from None
    except OSError as exc:
        raise ScriptError([f"{file}: cannot be read ({type(exc).__name__})"]) from None
    key = str(file.resolve())
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        result = cached[1]
    else:
        result = _load_file(file, name, locale)
        with _cache_lock:
            _cache[key] = (stamp, result)
    if isinstance(result, ScriptError):
        raise ScriptError(list(result.problems))
    return result


def validate_all(
    scripts_dir: Path | str | None = None,
    *,
    names: Iterable[str] | None = None,
    locales: Iterable[str] | None = None,
) -> dict[tuple[str, str], Script]:
    """Load every script (or the ``names`` given) for every locale file present (or each of
    ``locales``, which must then all exist).  For start-up and the policy loader.

    Returns ``{(name, locale): Script}``; raises :class:`ScriptError` with every problem.
    """
    root = Path(scripts_dir or DEFAULT_SCRIPTS_DIR)
    problems: list[str] = []
    loaded: dict[tuple[str, str], Script] = {}
    if not root.is_dir():
        raise ScriptError([f"{root}: the scripts directory does not exist"])
    if names is None:
        for stray in sorted(root.glob("*.y*ml")):
            problems.append(f"{stray}:1: scripts are <name>/<locale>.yaml; move this file into a directory")
        wanted = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    else:
        wanted = list(dict.fromkeys(names))
    wanted_locales = list(dict.fromkeys(locales)) if locales is not None else None
    for name in wanted:
        folder = root / name
        if not _NAME_RE.match(name):
            problems.append(f"voice script name '{name}': lower-case letters, digits and _ only")
            continue
        if not folder.is_dir():
            problems.append(f"voice script '{name}': {folder} does not exist")
            continue
        if wanted_locales is None:
            tags = sorted(p.stem for p in folder.glob("*.yaml"))
        else:
            missing = [t for t in wanted_locales if not (folder / f"{t}.yaml").is_file()]
            if missing:
                problems.append(
                    f"voice script '{name}' does not serve {', '.join(missing)}: "
                    f"no {folder / (missing[0] + '.yaml')}"
                )
            tags = [t for t in wanted_locales if t not in missing]
        for tag in tags:
            try:
                loaded[(name, tag)] = load_script(name, tag, scripts_dir=root)
            except ScriptError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ScriptError(problems)
    return loaded


# --- loading one file ---------------------------------------------------------------


def _load_file(file: Path, name: str, locale: str) -> Script | ScriptError:
    label = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ScriptError([f"{label}: cannot be read ({type(exc).__name__})"])
    problems: list[str] = []
    lines = Lines(label)
    data = read_yaml(text, lines, problems, what="script file")
    if problems:
        return ScriptError(problems)
    if not isinstance(data, dict):
        return ScriptError([f"{label}:1: a script must be a mapping with 'script', 'locale' and 'nodes'"])
    try:
        parsed = _ScriptFile.model_validate(data)
    except ValidationError as exc:
        return ScriptError(pydantic_problems(exc, lines))
    builder = _Builder(lines, name, locale, problems)
    script = builder.build(parsed)
    if problems or script is None:
        return ScriptError(_unique(problems or [f"{label}:1: the script cannot be used"]))
    return script


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)
_PLACEHOLDERS = {name: f"<{name}>" for name in PROMPT_VARIABLES}


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the engine knows at a point of the dialog (the analysis walks these)."""

    confirmed: bool = False  # right party confirmed
    disclosed: bool = False  # the collection disclosure has been said
    has_date: bool = False  # a promise date is known
    promised: bool = False  # the promise date was read back and confirmed


class _Builder:
    def __init__(self, lines: Lines, name: str, locale: str, problems: list[str]) -> None:
        self.lines = lines
        self.name = name
        self.locale = locale
        self.language = language_of(locale)
        self.problems = problems
        self.extra_words: tuple[str, ...] = ()
        # debt words found in each prompt's text, by prompt key
        self.words: dict[str, list[str]] = {}

    def error(self, path: Iterable[str | int], message: str) -> None:
        self.problems.append(f"{self.lines.where(path)}: {message}")

    # building -----------------------------------------------------------------------

    def build(self, raw: _ScriptFile) -> Script | None:
        if raw.script != self.name:
            self.error(("script",), f"script: '{raw.script}' does not match the directory name '{self.name}'")
        if raw.locale != self.locale:
            self.error(("locale",), f"locale: '{raw.locale}' does not match the file name '{self.locale}.yaml'")
        if self.language not in DEBT_WORDS or self.language not in KEYPAD_WORDS:
            self.error(("locale",), f"locale: no debt and keypad word lists for language '{self.language}' "
                                    "(add them to bot/scripts/words.py)")
            return None
        self.extra_words = tuple(w.strip() for w in raw.debt_words if w.strip())

        disclosure = self._prompt("disclosure", raw.disclosure, ("disclosure",), MESSAGE_VARIABLES)
        no_input = self._prompt("messages.no_input", raw.messages.no_input, ("messages", "no_input"),
                                MESSAGE_VARIABLES)
        not_understood = self._prompt("messages.not_understood", raw.messages.not_understood,
                                      ("messages", "not_understood"), MESSAGE_VARIABLES)
        if disclosure is not None and not self.words.get("disclosure"):
            self.error(("disclosure",), "disclosure: must say that this is a debt collection "
                                        "(it names none of the language's debt words)")
        for prompt, path in ((no_input, ("messages", "no_input")), (not_understood, ("messages", "not_understood"))):
            if prompt is not None and self.words.get(prompt.key):
                self.error(path, f"{prompt.key}: is said in every node, also before the right party is "
                                 f"confirmed, and must not mention the debt (found {self._quote(prompt.key)})")

        nodes: dict[str, Node] = {}
        for node_name, raw_node in raw.nodes.items():
            node = self._node(node_name, raw_node)
            if node is not None:
                nodes[node_name] = node

        keypad = self._keys(raw.keypad, ("keypad",))
        routes = self._globals(raw, nodes)
        for key, intent in keypad.items():
            if intent not in routes:
                self.error(("keypad", key), f"keypad '{key}': {intent.value} has no global fallback "
                                            "in 'globals' (a global key must work in every node)")
        for what in ("start", "voicemail", "on_fail", "survey"):
            target = getattr(raw, what)
            if target is not None and target not in raw.nodes:
                self.error((what,), f"{what}: no node named '{target}'")
        if raw.start == raw.voicemail:
            self.error(("voicemail",), "voicemail: the voicemail path must not be the conversation's start")
        if self.problems or disclosure is None or no_input is None or not_understood is None:
            return None

        script = Script(
            name=self.name, locale=self.locale, source=self.lines.file, start=raw.start, voicemail=raw.voicemail,
            on_fail=raw.on_fail, max_turns=raw.max_turns, min_confidence=raw.min_confidence,
            disclosure=disclosure, no_input=no_input, not_understood=not_understood,
            keypad=keypad, globals=routes, nodes=nodes, readback=dict(raw.readback), survey=raw.survey,
        )
        self._check_survey(script)
        self._check_nodes(script)
        self._check_readback(script)
        if self.problems:
            return None
        self._check_loops(script)
        self._check_fail_paths(script)
        if self.problems:
            return None
        self._check_conditions(script)
        if self.problems:
            return None
        reached = self._walk_conversation(script)
        reached |= self._check_voicemail(script)
        for node_name in nodes:
            if node_name not in reached:
                self.error(("nodes", node_name), f"node '{node_name}' cannot be reached from "
                                                 f"'{script.start}' or '{script.voicemail}'")
        return None if self.problems else script

    def _prompt(self, key: str, source: str, path: tuple[str, ...], allowed: Iterable[str]) -> Prompt | None:
        line = self.lines.at(path)
        try:
            ast = _ENV.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            self.error(path, f"{key}: template syntax error (template line {exc.lineno}): {exc.message}")
            return None
        variables = frozenset(jinja2.meta.find_undeclared_variables(ast))
        unknown = sorted(variables - set(allowed))
        if unknown:
            self.error(path, f"{key}: unknown variable {', '.join(repr(u) for u in unknown)} "
                             f"(allowed here: {', '.join(sorted(allowed))})")
            return None
        template = _ENV.from_string(source)
        try:
            rendered = template.render(**_PLACEHOLDERS)
        except jinja2.TemplateError as exc:
            self.error(path, f"{key}: the template cannot be rendered: {type(exc).__name__}")
            return None
        if not rendered.strip():
            self.error(path, f"{key}: the text is empty")
            return None
        found = debt_words_in(source, self.language, self.extra_words)
        found += [w for w in debt_words_in(rendered, self.language, self.extra_words) if w not in found]
        self.words[key] = found
        return Prompt(key=key, source=source, template=template, variables=variables, line=line)

    def _keys(self, raw: dict[str, Intent], path: tuple[str | int, ...]) -> dict[str, Intent]:
        keys = {}
        for key, intent in raw.items():
            if not _KEY_RE.match(key):
                self.error((*path, key), f"keypad key '{key}': digits, * and # only (at most 4)")
                continue
            keys[key] = intent
        return keys

    def _globals(self, raw: _ScriptFile, nodes: dict[str, Node]) -> dict[Intent, Route]:
        routes: dict[Intent, Route] = {}
        for intent, route in raw.globals.items():
            path = ("globals", intent.value)
            if intent in (Intent.AFFIRM, Intent.DENY, Intent.OTHER):
                self.error(path, f"globals.{intent.value}: a yes, no or unrecognised answer means something "
                                 "different in every node; it cannot be a global fallback")
                continue
            for field in ("to", "unconfirmed"):
                target = getattr(route, field)
                if target is not None and target not in raw.nodes:
                    self.error((*path, field), f"globals.{intent.value}.{field}: no node named '{target}'")
            routes[intent] = Route(route.to, route.unconfirmed)
        opt_out = routes.get(Intent.OPT_OUT)
        if opt_out is None or opt_out.unconfirmed is None:
            self.error(("globals",), "globals.opt_out: a request to stop calling must be honoured in every node, "
                                     "before and after the right party is confirmed: give 'to' and 'unconfirmed'")
        return routes

    def _node(self, name: str, raw: _Node) -> Node | None:
        path = ("nodes", name)
        before = len(self.problems)
        if not _NODE_RE.match(name):
            self.error(path, f"node '{name}': lower-case letters, digits and _ only, starting with a letter")
        kinds = [k for k in ("next", "listen", "end") if getattr(raw, k) is not None]
        if len(kinds) != 1:
            self.error(path, f"node '{name}': needs exactly one of 'next', 'listen' or 'end' "
                             f"(has {', '.join(kinds) if kinds else 'none'}); a node without one is a dead end")
        if raw.listen is None:
            for key in ("keypad_say", "reprompt", "check", "on_fail"):
                if getattr(raw, key) is not None:
                    self.error((*path, key), f"nodes.{name}.{key}: only a node that listens can have '{key}'")
            for key in ("keypad", "on"):
                if getattr(raw, key):
                    self.error((*path, key), f"nodes.{name}.{key}: only a node that listens can have '{key}'")
        else:
            if raw.keypad_say is None:
                self.error(path, f"nodes.{name}: a node that listens needs 'keypad_say', the keypad-only "
                                 "prompt used when speech is unavailable or not understood")
            if not raw.on:
                self.error(path, f"nodes.{name}: a node that listens needs transitions ('on')")
            if raw.listen.expect != "date" and not raw.keypad:
                self.error(path, f"nodes.{name}: a node that listens needs a 'keypad' mapping (digits -> intent)")
        if (raw.when is None) != (raw.otherwise is None):
            self.error(path, f"nodes.{name}: 'when' and 'otherwise' go together (the node entered in its place "
                             "when the condition does not hold)")
        if Intent.OPT_OUT in raw.on:
            self.error((*path, "on", "opt_out"), f"nodes.{name}.on.opt_out: a request to stop calling is always "
                                                 "handled by the global fallback, not by a node")
        for key in ("flag_number", "flag", "send_sms"):
            value = getattr(raw.actions, key)
            if value is not None and not _REASON_RE.match(value):
                self.error((*path, "actions", key), f"nodes.{name}.actions.{key}: lower-case letters, digits and _")
        variables = PROMPT_VARIABLES
        say = self._prompt(f"{name}.say", raw.say, (*path, "say"), variables)
        keypad_say = reprompt = None
        if raw.keypad_say is not None:
            keypad_say = self._prompt(f"{name}.keypad_say", raw.keypad_say, (*path, "keypad_say"), variables)
        if raw.reprompt is not None:
            reprompt = self._prompt(f"{name}.reprompt", raw.reprompt, (*path, "reprompt"), variables)
        keys = self._keys(raw.keypad, (*path, "keypad"))
        if len(self.problems) > before or say is None:
            return None
        listen = None
        if raw.listen is not None:
            lst = raw.listen
            listen = ListenSpec(lst.input, lst.expect, lst.timeout_s, lst.max_length_s, lst.retries, lst.keypad_after)
        return Node(
            name=name, line=self.lines.at(path), say=say, keypad_say=keypad_say, reprompt=reprompt, listen=listen,
            keypad=keys, on=dict(raw.on), next=raw.next, end=raw.end, check=raw.check,
            actions=NodeActions(raw.actions.opt_out, raw.actions.flag_number, raw.actions.open_task,
                                raw.actions.flag, raw.actions.send_sms),
            on_fail=raw.on_fail, when=raw.when, otherwise=raw.otherwise,
        )

    # static checks over the nodes ----------------------------------------------------

    def _check_nodes(self, script: Script) -> None:
        for name, node in script.nodes.items():
            path = ("nodes", name)
            for intent, target in node.on.items():
                if target not in script.nodes:
                    self.error((*path, "on", intent.value), f"nodes.{name}.on.{intent.value}: no node named '{target}'")
            for key in ("next", "on_fail", "otherwise"):
                target = getattr(node, key)
                if target is not None and target not in script.nodes:
                    self.error((*path, key), f"nodes.{name}.{key}: no node named '{target}'")
            if node.check == "right_party":
                assert node.listen is not None
                if node.listen.expect != "yes_no" or Intent.AFFIRM not in node.on:
                    self.error((*path, "check"), f"nodes.{name}: the right-party check asks a yes/no question "
                                                 "(expect: yes_no) and needs an 'affirm' transition")
                if "party_initials" not in node.say.variables:
                    self.error((*path, "say"), f"nodes.{name}.say: the right-party check must name the person "
                                               "asked for ({{ party_initials }})")
            if node.check == "promise":
                assert node.listen is not None
                if node.listen.expect != "yes_no" or Intent.AFFIRM not in node.on:
                    self.error((*path, "check"), f"nodes.{name}: the promise read-back asks a yes/no question "
                                                 "(expect: yes_no) and needs an 'affirm' transition")
                for prompt in (node.say, node.keypad_say):
                    if prompt is not None and "promise_date_text" not in prompt.variables:
                        self.error(self._prompt_path(prompt), f"{prompt.key}: the promise read-back must say the "
                                                              "date ({{ promise_date_text }})")
            if "disclosure" in node.variables and node.variables & AMOUNT_VARIABLES:
                self.error(path, f"nodes.{name}: say the disclosure in a node before the one that names the "
                                 "amount or due date, not in the same node")
            if node.listen is not None:
                self._check_keypad(script, node)

    def _check_conditions(self, script: Script) -> None:
        """A conditional node (``when``) is entered by an answer or a ``next`` only, never on the way
        of the start, the voicemail, an ``on_fail``, a global fallback, the survey or a read-back
        (those are checked as single chains of nodes)."""
        fixed = {script.start: "the start", script.voicemail: "the voicemail", script.on_fail: "the script's on_fail"}
        if script.survey is not None:
            fixed[script.survey] = "the survey"
        for acting, question in script.readback.items():
            fixed.setdefault(acting, "a read-back's action")
            fixed.setdefault(question, "a read-back")
        for intent, route in script.globals.items():
            for target in (route.to, route.unconfirmed):
                if target is not None:
                    fixed.setdefault(target, f"the global fallback of {intent.value}")
        for name, node in script.nodes.items():
            if node.on_fail is not None:
                fixed.setdefault(node.on_fail, f"the on_fail of '{name}'")
        for root, what in list(fixed.items()):
            for node in self._chain(script, root):
                fixed.setdefault(node.name, f"on the way of {what}")
        for name, node in script.nodes.items():
            if node.when is not None and name in fixed:
                self.error(("nodes", name, "when"), f"nodes.{name}.when: a conditional node is entered only by an "
                                                    f"answer or a 'next', but it is {fixed[name]}")

    def _check_readback(self, script: Script) -> None:
        """Each ``readback`` entry: an existing acting node -> a ``check: readback`` yes/no question
        whose yes enters that node, whose no is the engine's (back to the question), and whose
        ``on_fail`` hands over without acting."""
        questions = {q: a for a, q in script.readback.items()}
        for acting, question in script.readback.items():
            path = ("readback", acting)
            if acting not in script.nodes:
                self.error(path, f"readback.{acting}: no node named '{acting}'")
            node = script.nodes.get(question)
            if node is None:
                self.error(path, f"readback.{acting}: no node named '{question}'")
                continue
            if node.check != "readback":
                self.error(path, f"readback.{acting}: node '{question}' must be marked 'check: readback'")
        for name, node in script.nodes.items():
            if node.check != "readback":
                continue
            path = ("nodes", name)
            acting = questions.get(name)
            assert node.listen is not None
            if acting is None:
                self.error((*path, "check"), f"nodes.{name}: a read-back question must be named in 'readback'")
            elif node.listen.expect != "yes_no" or node.on.get(Intent.AFFIRM) != acting:
                self.error((*path, "check"), f"nodes.{name}: a read-back asks a yes/no question (expect: yes_no) "
                                             f"and its 'affirm' enters '{acting}'")
            if Intent.DENY in node.on:
                self.error((*path, "on", "deny"), f"nodes.{name}.on.deny: a 'no' to a read-back always returns "
                                                  "to the question asked before it")
            if node.on_fail is None:
                self.error(path, f"nodes.{name}: a read-back needs its own 'on_fail' (a hand-over to a person)")
                continue
            for step in self._chain(script, node.on_fail) if node.on_fail in script.nodes else ():
                if step.actions.opt_out or step.actions.flag_number or step.actions.flag:
                    self.error((*path, "on_fail"), f"nodes.{name}.on_fail: an unconfirmed read-back must not act "
                                                   f"(node '{step.name}' records it); hand over to a person")
                    break

    def _check_survey(self, script: Script) -> None:
        """The survey question: keypad only, keys 1-5 meaning ``survey_response``; nowhere else."""
        for name, node in script.nodes.items():
            used = Intent.SURVEY_RESPONSE in node.on or Intent.SURVEY_RESPONSE in node.keypad.values()
            if used and name != script.survey:
                self.error(("nodes", name), f"nodes.{name}: survey_response belongs to the 'survey' node only")
        if Intent.SURVEY_RESPONSE in script.keypad.values() or Intent.SURVEY_RESPONSE in script.globals:
            self.error(("keypad",), "keypad: survey_response belongs to the 'survey' node only")
        if script.survey is None:
            return
        node = script.nodes[script.survey]
        path = ("nodes", node.name)
        if node.listen is None or node.listen.input != "keypad":
            self.error(path, f"nodes.{node.name}: the survey question must listen with 'input: keypad'")
        wanted = {str(score): Intent.SURVEY_RESPONSE for score in range(1, 6)}
        if {k: v for k, v in node.keypad.items() if v is Intent.SURVEY_RESPONSE} != wanted:
            self.error((*path, "keypad"), f"nodes.{node.name}.keypad: keys 1 to 5 must each mean survey_response")
        if Intent.SURVEY_RESPONSE not in node.on:
            self.error((*path, "on"), f"nodes.{node.name}.on: survey_response must lead to a node")
        if node.variables & REVEALING_VARIABLES:
            self.error(path, f"nodes.{node.name}: the survey question must not mention the debt")

    def _check_keypad(self, script: Script, node: Node) -> None:
        assert node.listen is not None and node.keypad_say is not None
        path = ("nodes", node.name)
        text = node.keypad_say.template.render(**_PLACEHOLDERS)
        if not has_keypad_word(text, self.language):
            words = ", ".join(KEYPAD_WORDS[self.language])
            self.error((*path, "keypad_say"), f"nodes.{node.name}.keypad_say: must say clearly that keys are used "
                                              f"(one of: {words})")
        for key in node.keypad:
            if not re.search(rf"(?<![0-9]){re.escape(key)}(?![0-9])", text):
                self.error((*path, "keypad", key), f"nodes.{node.name}.keypad '{key}': keypad_say does not tell "
                                                   "the caller about this key")
        for key, intent in node.keypad.items():
            if node.check == "readback" and intent is Intent.DENY:
                continue  # "no" to a read-back returns to the question
            if intent not in node.on and intent not in script.globals:
                self.error((*path, "keypad", key), f"nodes.{node.name}.keypad '{key}': {intent.value} has no "
                                                   "transition in this node nor a global fallback")

    def _prompt_path(self, prompt: Prompt) -> tuple[str, ...]:
        node, _, key = prompt.key.partition(".")
        return ("nodes", node, key)

    def _check_loops(self, script: Script) -> None:
        """A loop of ``next`` (or ``otherwise``) links never waits for the caller: the engine would spin."""
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            state[name] = 1
            node = script.nodes[name]
            for nxt in (node.next, node.otherwise):  # said one after the other, or skipped
                if nxt is None:
                    continue
                if state.get(nxt) == 1:
                    loop = trail[trail.index(nxt):] + [nxt] if nxt in trail else [name, nxt]
                    self.error(("nodes", nxt), f"nodes {' -> '.join(loop)}: a loop that never listens")
                elif nxt not in state:
                    visit(nxt, [*trail, nxt])
            state[name] = 2

        for name in script.nodes:
            if name not in state:
                visit(name, [name])

    def _chain(self, script: Script, start: str) -> Iterator[Node]:
        """The nodes said one after the other from ``start`` until one listens or ends."""
        node = script.nodes[start]
        yield node
        while node.next is not None:
            node = script.nodes[node.next]
            yield node

    def _check_fail_paths(self, script: Script) -> None:
        targets = {script.on_fail: ("on_fail",)}
        for name, node in script.nodes.items():
            if node.on_fail is not None:
                targets.setdefault(node.on_fail, ("nodes", name, "on_fail"))
        for target, path in targets.items():
            for node in self._chain(script, target):
                if node.listen is not None:
                    self.error(path, f"on_fail '{target}': must lead to an ending without asking anything "
                                     f"(node '{node.name}' listens)")
                    break

    # the dialog walk -------------------------------------------------------------------

    def _reveals(self, node: Node) -> tuple[list[str], tuple[str, ...]]:
        """What ``node`` says about the debt, and the path of the first prompt that says it."""
        found: list[str] = []
        where: tuple[str, ...] = ("nodes", node.name)
        for prompt in node.prompts:
            these = [f"{{{{ {v} }}}}" for v in sorted(prompt.variables & REVEALING_VARIABLES)]
            these += [f"'{w}'" for w in self.words.get(prompt.key, [])]
            if these and not found:
                where = self._prompt_path(prompt)
            found += [item for item in these if item not in found]
        return found, where

    def _quote(self, key: str) -> str:
        return ", ".join(f"'{w}'" for w in self.words.get(key, []))

    def _edges(self, script: Script, node: Node, facts: _Facts) -> Iterator[tuple[str, _Facts, str]]:
        if node.next is not None:
            yield node.next, facts, "next"
            return
        if node.listen is None:
            return
        for intent, target in node.on.items():
            yield target, _effect(node, intent, facts), intent.value
            if script.readback.get(target, node.name) != node.name:
                yield script.readback[target], facts, f"{intent.value} (unsure: read back)"
        for intent, route in script.globals.items():
            if intent in node.on:
                continue
            target = route.to if facts.confirmed else route.unconfirmed
            if target is not None:
                yield target, _effect(node, intent, facts), f"{intent.value} (global)"
                if script.readback.get(target, node.name) != node.name:
                    yield script.readback[target], facts, f"{intent.value} (global, unsure: read back)"
        # a read-back's "no" returns to the question with the same facts: nothing new to walk
        yield node.on_fail or script.on_fail, facts, "not understood"

    def _walk_conversation(self, script: Script) -> set[str]:
        """Visit every (node, facts) a person's call can reach; check each on the way."""
        start = (script.start, _Facts())
        parent: dict[tuple[str, _Facts], tuple[tuple[str, _Facts], str] | None] = {start: None}
        queue = deque([start])
        reported: set[tuple[str, str]] = set()

        def trail(state: tuple[str, _Facts]) -> str:
            names = []
            cursor: tuple[str, _Facts] | None = state
            while cursor is not None:
                names.append(cursor[0])
                link = parent[cursor]
                cursor = link[0] if link else None
            return " -> ".join(reversed(names))

        def report(state: tuple[str, _Facts], what: str, path: tuple[str, ...], message: str) -> None:
            if (state[0], what) in reported:
                return
            reported.add((state[0], what))
            self.error(path, f"{message} (path: {trail(state)})")

        while queue:
            state = queue.popleft()
            name, facts = state
            node = script.nodes[name]
            path = ("nodes", name)
            if not facts.confirmed:
                revealed, where = self._reveals(node)
                if revealed:
                    report(state, "reveal", where, f"node '{name}' can be said before the right party is confirmed "
                                                   f"and mentions the debt: {', '.join(revealed)}")
            if node.variables & AMOUNT_VARIABLES and not facts.disclosed:
                report(state, "disclosure", path, f"node '{name}' names the amount or due date before the "
                                                  "collection disclosure ({{ disclosure }}) was said")
            if "promise_date_text" in node.variables and not facts.has_date:
                report(state, "date", path, f"node '{name}' reads back a promise date but can be reached "
                                            "without one (only a promise_to_pay transition gives one)")
            if node.end == "promise" and not facts.promised:
                report(state, "promise", (*path, "end"), f"node '{name}' ends with a promise that was not read back "
                                                         "and confirmed (a 'check: promise' node's affirm)")
            if node.end == "voicemail":
                report(state, "voicemail", (*path, "end"), f"node '{name}': the voicemail outcome is only for the "
                                                           "voicemail path")
            entered = replace(facts, disclosed=facts.disclosed or "disclosure" in node.variables)
            edges = list(self._edges(script, node, entered))
            if node.otherwise is not None:  # the condition does not hold: skipped, nothing said
                edges.append((node.otherwise, facts, f"{node.when} does not hold"))
            if script.survey is not None and node.end in ("promise", "paid_claim"):
                edges.append((script.survey, entered, "survey"))
            for target, new_facts, _via in edges:
                nxt = (target, new_facts)
                if nxt not in parent:
                    parent[nxt] = (state, _via)
                    queue.append(nxt)
        return {name for name, _ in parent}

    def _check_voicemail(self, script: Script) -> set[str]:
        reached = set()
        last = None
        for node in self._chain(script, script.voicemail):
            reached.add(node.name)
            last = node
            path = ("nodes", node.name)
            where = f"node '{node.name}' is on the voicemail path, which may only leave a limited-content message"
            if node.listen is not None:
                self.error((*path, "listen"), f"{where}: it cannot ask anything")
                return reached
            extra = sorted(node.variables - VOICEMAIL_VARIABLES)
            if extra:
                self.error((*path, "say"), f"{where}: it may use only lender_name and callback_number_text, "
                                           f"not {', '.join(extra)}")
            words = self._quote(node.say.key)
            if words:
                self.error((*path, "say"), f"{where}: it must not mention the debt (found {words})")
            if node.actions:
                self.error((*path, "actions"), f"{where}: it has no side effects besides the voicemail outcome")
        if last is not None and last.end != "voicemail":
            self.error(("nodes", last.name, "end"), f"the voicemail path must end with 'end: voicemail' "
                                                    f"(node '{last.name}')")
        return reached


def _effect(node: Node, intent: Intent, facts: _Facts) -> _Facts:
    """How answering ``intent`` in ``node`` changes the facts (the engine does the same)."""
    if node.check == "right_party" and intent is Intent.AFFIRM:
        facts = replace(facts, confirmed=True)
    if intent is Intent.PROMISE_TO_PAY:
        facts = replace(facts, has_date=True, promised=False)
    if node.check == "promise" and intent is Intent.AFFIRM:
        facts = replace(facts, promised=facts.has_date)
    if node.check == "promise" and intent is Intent.DENY:
        facts = replace(facts, has_date=False, promised=False)
    return facts

"""The treatment policy: days relative to the due date → one contact step each.

A policy is a YAML file (the default ships as ``bot/policy.yaml``; docs/policy.md
describes the format).  It is validated completely when it is loaded, so a bad
policy stops ``bot plan`` / ``bot run`` at once with every problem listed as
``FILE:LINE: message`` instead of failing at sending time:

* structure: unknown keys, missing keys, wrong types, day values out of range,
  unknown channels (pydantic does the type work; every error is mapped back to the
  YAML line it came from, using the node marks of :func:`yaml.compose`);
* meaning: a step with the wrong content key for its channel, two steps on the same
  day (the *overlap* rule: the planner takes exactly one current step per
  installment, so one day must name one step), locales Babel does not know;
* content: every template is rendered for every locale the step serves with a
  sample context (StrictUndefined), and every voice script must have a valid
  ``bot/scripts/<name>/<locale>.yaml`` for each locale its step serves (the script
  loader's own checks, docs/voice-scripts.md, with the script's file:line).

A/B testing: instead of ``steps`` the file may hold an ``experiment`` with two
ladders ``a`` and ``b``, the percentage ``split`` of borrowers that get ``a`` (the
arms' weights), its ``start`` and ``end`` days, the ``champion`` arm (``a`` unless
said) and the ``guardrail_margin`` ``bot experiment status`` flags a challenger by.
A borrower's arm is ``sha256("<experiment name>:<borrower id>")`` modulo 100, so it
is stable across runs, processes and machines (unlike ``hash()``), and renaming the
experiment reshuffles the borrowers.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from bot.errors import ConfigError
from bot.policy_risk import RiskCondition, RiskWhenFields, build_condition
from bot.risk import RiskFacts
from bot.rendering import Renderer, TemplateProblem, babel_locale
from bot.scripts import ScriptError, validate_all
from bot.scripts.yamlmarks import Lines, read_yaml
from bot.scripts.yamlmarks import dotted as dotted_path

__all__ = [
    "DEFAULT_POLICY_FILE",
    "DEFAULT_SCRIPTS_DIR",
    "Conditions",
    "Experiment",
    "Ladder",
    "Policy",
    "PolicyError",
    "Step",
    "load_policy",
    "step_label",
]

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "policy.yaml"
DEFAULT_SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
DEFAULT_LOCALES = ("en-US", "zh-CN", "ko-KR", "es-US")
MIN_DAY, MAX_DAY = -60, 365
SINGLE_ARM = "main"

StepChannel = Literal["sms", "email", "voice", "human"]
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
_EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class PolicyError(ConfigError):
    """A policy file that cannot be used; ``problems`` are ``FILE:LINE: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid treatment policy:\n  " + "\n  ".join(problems))


# --- the validated result -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conditions:
    """When a step applies; a step whose conditions fail plans nothing that day."""

    min_outstanding_minor: int = 0
    locales: frozenset[str] | None = None  # None: every locale of the policy
    no_conversation_within_days: int | None = None  # skip after a recent conversation
    risk: RiskCondition | None = None  # segments and risk score band (bot.policy_risk)

    def describe(self) -> list[str]:
        out = self.risk.describe() if self.risk is not None else []
        if self.min_outstanding_minor:
            out.append(f"outstanding >= {self.min_outstanding_minor} minor units")
        if self.locales is not None:
            out.append("locale in " + ", ".join(sorted(self.locales)))
        if self.no_conversation_within_days:
            out.append(f"no conversation in the last {self.no_conversation_within_days} days")
        return out


def step_label(day: int) -> str:
    """``-3`` → ``D-3``, ``0`` → ``D0``, ``1`` → ``D+1``."""
    return f"D{day:+d}" if day else "D0"


@dataclass(frozen=True, slots=True)
class Step:
    day: int
    channel: str  # sms | email | voice | human
    template: str | None  # message template (sms, email) or voice script name; None for human
    when: Conditions
    line: int  # line of the step in the policy file, for messages

    @property
    def label(self) -> str:
        return f"{step_label(self.day)}:{self.channel}"


@dataclass(frozen=True, slots=True)
class Ladder:
    """One arm's steps, sorted by day."""

    arm: str
    steps: tuple[Step, ...]
    _days: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_days", tuple(s.day for s in self.steps))

    def current_step(self, offset: int, horizon_days: int) -> Step | None:
        """The latest step whose day is ``<= offset``: each step is current until the
        next one's day; the last one for ``horizon_days`` more days.  ``None``
        before the first step and after the horizon."""
        index = bisect.bisect_right(self._days, offset) - 1
        if index < 0:
            return None
        if index == len(self.steps) - 1 and offset > self._days[-1] + horizon_days:
            return None
        return self.steps[index]


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    split: int  # percent of borrowers in arm A
    start: date | None = None  # first day measured by ``bot experiment status``
    end: date | None = None  # last day measured (inclusive)
    champion: str = "A"  # the arm the other is compared with
    guardrail_margin: float = 0.005  # how much worse a guardrail rate may be (absolute)

    @property
    def arms(self) -> tuple[str, str]:
        """(champion, challenger)."""
        return (self.champion, "B" if self.champion == "A" else "A")


@dataclass(frozen=True)
class Policy:
    source: str
    locales: tuple[str, ...]
    fallback_locale: str
    horizon_days: int
    arms: dict[str, Ladder]
    experiment: Experiment | None = None
    # ``ladders``: each ladder's condition, in the file's order (bot.policy_risk); empty otherwise
    ladder_when: dict[str, RiskCondition | None] = field(default_factory=dict)

    @property
    def chooses_ladders(self) -> bool:
        """Whether the ladder is chosen per borrower by segment or risk score (``ladders``)."""
        return bool(self.ladder_when)

    def choose_ladder(self, facts: RiskFacts | None) -> tuple[str | None, dict[str, Any] | None]:
        """``ladders``: the first ladder whose ``when`` holds for the borrower as a whole (their
        segment, their riskiest loan's score), with what was compared; ``(None, ...)`` when none does."""
        seen: dict[str, Any] | None = None
        for name, when in self.ladder_when.items():
            if when is None:
                return name, seen
            skip, seen = when.evaluate(facts, None)
            if skip is None:
                return name, {**{k: v for k, v in seen.items() if k != "when"}, "ladder_when": seen["when"]}
        return None, seen

    def arm_for(self, borrower_id: str) -> str:
        """``main`` without an experiment; else ``A`` or ``B``, stable per borrower.  With
        ``ladders`` the last ladder (see :meth:`choose_ladder` for the borrower's own)."""
        if self.ladder_when:
            return next(reversed(self.ladder_when))
        if self.experiment is None:
            return SINGLE_ARM
        digest = hashlib.sha256(f"{self.experiment.name}:{borrower_id}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") % 100
        return "A" if bucket < self.experiment.split else "B"

    def ladder_for(self, borrower_id: str) -> Ladder:
        return self.arms[self.arm_for(borrower_id)]

    @property
    def first_day(self) -> int:
        return min(ladder.steps[0].day for ladder in self.arms.values())

    @property
    def last_day(self) -> int:
        """The last day offset on which any step is still current (horizon included)."""
        return max(ladder.steps[-1].day for ladder in self.arms.values()) + self.horizon_days

    def due_date_window(self, today: date) -> tuple[date, date]:
        """Due dates that can have a current step on some borrower's local ``today``.

        ``today`` is the UTC date of the planning instant; a borrower's local date is
        at most one day away from it, hence the one-day margin on each side.
        """
        return today - timedelta(days=self.last_day + 1), today - timedelta(days=self.first_day - 1)

    def locale_for(self, locale: str | None) -> str:
        """The borrower's locale if the policy serves it, else the first of the policy's
        locales in the same language (es-MX, es → es-US), else the fallback."""
        if locale:
            tag = locale.replace("_", "-")
            if tag in self.locales:
                return tag
            language = tag.split("-")[0].lower()
            for served in self.locales:
                if served.split("-")[0].lower() == language:
                    return served
        return self.fallback_locale

    def steps(self) -> Iterable[tuple[str, Step]]:
        for arm, ladder in self.arms.items():
            for step in ladder.steps:
                yield arm, step

    @property
    def uses_risk(self) -> bool:
        """Whether a step or ladder has a segment or risk score condition (the planner then loads
        bot.risk facts)."""
        return self.chooses_ladders or any(step.when.risk is not None for _arm, step in self.steps())


# --- file schema (pydantic) -------------------------------------------------------

Day = Annotated[StrictInt, Field(ge=MIN_DAY, le=MAX_DAY)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _When(RiskWhenFields, _Strict):
    min_outstanding_minor: Annotated[StrictInt, Field(ge=0)] = 0
    locales: list[StrictStr] | None = None
    no_conversation_within_days: Annotated[StrictInt, Field(ge=1, le=90)] | None = None


class _Step(_Strict):
    day: Day
    channel: StepChannel
    template: StrictStr | None = None
    script: StrictStr | None = None
    when: _When = _When()


class _Ladder(_Strict):
    steps: Annotated[list[_Step], Field(min_length=1)]


class _LadderWhen(RiskWhenFields, _Strict):
    pass


class _ChosenLadder(_Strict):
    name: StrictStr
    when: _LadderWhen | None = None
    steps: Annotated[list[_Step], Field(min_length=1)]


class _Experiment(_Strict):
    name: StrictStr
    split: Annotated[StrictInt, Field(ge=1, le=99)]
    start: date
    end: date
    champion: Literal["a", "b"] = "a"
    guardrail_margin: Annotated[float, Field(ge=0, le=1)] = 0.005
    a: _Ladder
    b: _Ladder


class _PolicyFile(_Strict):
    version: Literal[1]
    locales: Annotated[list[StrictStr], Field(min_length=1)] = list(DEFAULT_LOCALES)
    fallback_locale: StrictStr | None = None
    horizon_days: Annotated[StrictInt, Field(ge=0, le=60)] = 7
    steps: Annotated[list[_Step], Field(min_length=1)] | None = None
    experiment: _Experiment | None = None
    ladders: Annotated[list[_ChosenLadder], Field(min_length=1)] | None = None


# --- YAML with line numbers (bot.scripts.yamlmarks) --------------------------------

Path_ = tuple[str | int, ...]


def _pydantic_problems(exc: ValidationError, lines: Lines) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # A missing key has no line of its own: point at the mapping that lacks it.
        where = lines.where(loc[:-1] if err["type"] == "missing" else loc)
        dotted = dotted_path(loc, root="policy")
        if err["type"] == "missing":
            message = f"{dotted}: missing key"
        elif err["type"] == "extra_forbidden":
            message = f"{dotted}: unknown key"
        elif err["type"] == "literal_error" and loc and loc[-1] == "channel":
            message = f"{dotted}: unknown channel (expected sms, email, voice or human)"
        else:
            message = f"{dotted}: {err['msg']}"
        out.append(f"{where}: {message}")
    return out


# --- loading -----------------------------------------------------------------------


def load_policy(
    path: Path | str | None = None,
    *,
    templates_dir: Path | str | None = None,
    scripts_dir: Path | str | None = None,
    renderer: Renderer | None = None,
) -> Policy:
    """Read, validate and return the policy at ``path`` (default: the shipped one).

    Raises :class:`PolicyError` listing every problem as ``FILE:LINE: message``.
    """
    file = Path(path) if path is not None else DEFAULT_POLICY_FILE
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{name}: the policy file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{name}: cannot be read ({type(exc).__name__})"]) from None

    problems: list[str] = []
    lines = Lines(name)
    data = read_yaml(text, lines, problems, what="policy file", text_keys=False)
    if problems:
        raise PolicyError(problems)
    if not isinstance(data, dict):
        raise PolicyError([f"{name}:1: the policy must be a mapping with 'version' and 'steps'"])
    try:
        parsed = _PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_pydantic_problems(exc, lines)) from None

    renderer = renderer or Renderer(templates_dir)
    scripts = Path(scripts_dir) if scripts_dir else DEFAULT_SCRIPTS_DIR
    builder = _Builder(lines, renderer, scripts, problems)
    policy = builder.build(parsed)
    if problems:
        raise PolicyError(problems)
    assert policy is not None
    return policy


class _Builder:
    """Semantic checks and conversion of the parsed file into a :class:`Policy`."""

    def __init__(self, lines: Lines, renderer: Renderer, scripts_dir: Path, problems: list[str]) -> None:
        self.lines = lines
        self.renderer = renderer
        self.scripts_dir = scripts_dir
        self.problems = problems
        self._checked: set[tuple[str, str, str]] = set()

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.lines.where(path)}: {message}")

    def build(self, parsed: _PolicyFile) -> Policy | None:
        locales = self._locales(parsed.locales)
        fallback = parsed.fallback_locale or (locales[0] if locales else "en-US")
        if parsed.fallback_locale is not None and parsed.fallback_locale not in locales:
            self.error(("fallback_locale",), "fallback_locale must be one of the policy's locales")

        arms: dict[str, Ladder] = {}
        experiment = None
        ladder_when: dict[str, RiskCondition | None] = {}
        if sum(x is not None for x in (parsed.steps, parsed.experiment, parsed.ladders)) != 1:
            self.error((), "give one of 'steps', 'experiment' (with two ladders a and b) or 'ladders'")
            return None
        if parsed.ladders is not None:
            ladder_when = self._ladders(parsed.ladders, arms, locales)
        elif parsed.steps is not None:
            arms[SINGLE_ARM] = self._ladder(SINGLE_ARM, parsed.steps, ("steps",), locales)
        else:
            exp = parsed.experiment
            assert exp is not None
            if not _EXPERIMENT_RE.match(exp.name):
                self.error(("experiment", "name"), "experiment.name: letters, digits, '.', '_' or '-' (at most 40)")
            if exp.end < exp.start:
                self.error(("experiment", "end"), f"experiment.end {exp.end} is before experiment.start {exp.start}")
            experiment = Experiment(exp.name, exp.split, exp.start, exp.end, exp.champion.upper(),
                                    exp.guardrail_margin)
            arms["A"] = self._ladder("A", exp.a.steps, ("experiment", "a", "steps"), locales)
            arms["B"] = self._ladder("B", exp.b.steps, ("experiment", "b", "steps"), locales)
        return Policy(
            source=self.lines.file,
            locales=tuple(locales),
            fallback_locale=fallback,
            horizon_days=parsed.horizon_days,
            arms=arms,
            experiment=experiment,
            ladder_when=ladder_when,
        )

    def _ladders(self, raw: list[_ChosenLadder], arms: dict[str, Ladder],
                 locales: list[str]) -> dict[str, RiskCondition | None]:
        """``ladders``: named ladders, each with an optional ``when``; the first that holds is the
        borrower's.  A ladder after one without ``when`` could never be chosen: an error."""
        chosen: dict[str, RiskCondition | None] = {}
        catch_all: int | None = None
        for index, ladder in enumerate(raw):
            path: Path_ = ("ladders", index)
            if not _NAME_RE.match(ladder.name):
                self.error((*path, "name"), f"ladders[{index}].name: lower-case letters, digits and _ only")
                continue
            if ladder.name in chosen:
                self.error((*path, "name"), f"ladders[{index}].name: '{ladder.name}' is used twice")
                continue
            if catch_all is not None:
                self.error(path, f"ladders[{index}] can never be chosen: ladders[{catch_all}] before it has no "
                                 "'when' and takes every borrower")
            when = None
            if ladder.when is not None:
                when = build_condition(ladder.when, lambda key, message, at=path: self.error(
                    (*at, "when", *key), message))
            if when is None:
                catch_all = index if catch_all is None else catch_all
            chosen[ladder.name] = when
            arms[ladder.name] = self._ladder(ladder.name, ladder.steps, (*path, "steps"), locales)
        return chosen

    def _locales(self, values: list[str]) -> list[str]:
        seen: list[str] = []
        for index, tag in enumerate(values):
            if not re.match(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", tag):
                self.error(("locales", index), f"locales[{index}]: not a BCP 47 tag such as en-US")
                continue
            try:
                babel_locale(tag)
            except ValueError:
                self.error(("locales", index), f"locales[{index}]: unknown locale")
                continue
            if tag in seen:
                self.error(("locales", index), f"locales[{index}]: listed twice")
                continue
            seen.append(tag)
        return seen

    def _ladder(self, arm: str, raw_steps: list[_Step], path: Path_, locales: list[str]) -> Ladder:
        steps: list[Step] = []
        first_on_day: dict[int, int] = {}
        for index, raw in enumerate(raw_steps):
            step_path = (*path, index)
            line = self.lines.at(step_path)
            if raw.day in first_on_day:
                self.error(
                    (*step_path, "day"),
                    f"step day {raw.day} overlaps the step at line {first_on_day[raw.day]}: "
                    "one day can have only one step",
                )
                continue
            first_on_day[raw.day] = line
            content = self._content(raw, step_path)
            served = self._served_locales(raw, step_path, locales)
            if content is not None:
                self._check_content(raw.channel, content, served, step_path)
            when = Conditions(
                min_outstanding_minor=raw.when.min_outstanding_minor,
                locales=frozenset(raw.when.locales) if raw.when.locales is not None else None,
                no_conversation_within_days=raw.when.no_conversation_within_days,
                risk=build_condition(raw.when, lambda key, message, at=step_path: self.error(
                    (*at, "when", *key), message)),
            )
            steps.append(Step(raw.day, raw.channel, content, when, line))
        steps.sort(key=lambda s: s.day)
        return Ladder(arm, tuple(steps))

    def _content(self, raw: _Step, path: Path_) -> str | None:
        """The template (sms, email) or script (voice) name; checks the right key is used."""
        wanted = {"sms": "template", "email": "template", "voice": "script"}.get(raw.channel)
        for key in ("template", "script"):
            if getattr(raw, key) is not None and key != wanted:
                why = "a human step opens a hand-off task and has no content" if wanted is None else \
                    f"a {raw.channel} step takes '{wanted}', not '{key}'"
                self.error((*path, key), f"{key}: {why}")
        if wanted is None:
            return None
        value = getattr(raw, wanted)
        if value is None:
            self.error(path, f"a {raw.channel} step needs '{wanted}'")
            return None
        if not _NAME_RE.match(value):
            self.error((*path, wanted), f"{wanted}: lower-case letters, digits and _ only")
            return None
        return value

    def _served_locales(self, raw: _Step, path: Path_, locales: list[str]) -> list[str]:
        if raw.when.locales is None:
            return locales
        served = []
        for index, tag in enumerate(raw.when.locales):
            if tag not in locales:
                self.error((*path, "when", "locales", index), f"when.locales[{index}]: not one of the policy's locales")
            else:
                served.append(tag)
        return served

    def _check_content(self, channel: str, name: str, locales: list[str], path: Path_) -> None:
        key_path = (*path, "script" if channel == "voice" else "template")
        if channel == "voice":
            self._check_script(name, locales, key_path)
            return
        for locale in locales:
            if (channel, name, locale) in self._checked:
                continue
            self._checked.add((channel, name, locale))
            try:
                self.renderer.validate(channel, name, locale)
            except TemplateProblem as problem:
                self.error(key_path, f"{channel} template '{name}' for {locale}: {problem}")

    def _check_script(self, name: str, locales: list[str], path: Path_) -> None:
        """The script must have a valid ``<scripts_dir>/<name>/<locale>.yaml`` for every
        locale the step serves; the script's own problems are listed with their file:line."""
        key = ("voice", name, ",".join(locales))
        if key in self._checked:
            return
        self._checked.add(key)
        try:
            validate_all(self.scripts_dir, names=[name], locales=locales)
        except ScriptError as exc:
            for problem in exc.problems:
                prefix = "" if problem.startswith("voice script") else f"voice script '{name}': "
                self.error(path, prefix + problem)

"""Check message templates before anything is sent: at start-up, in tests, in CI.

The policy loader (bot/policy.py) already renders every reminder template of the
policy with a sample context.  This adds what only the message layer knows: the
reply templates (``reply_<kind>``, their own variables), the SMS rules of
:mod:`bot.messages.checks` (opt-out instruction, segment limit) and the email's
visible unsubscribe link, on sample text.  :func:`validate_templates` runs all of
it; ``bot run``, ``bot tick`` and ``bot check`` call it when they start, so a
broken template stops them (exit status 2, every problem named with its file)
instead of failing each message at send time.  The sample amounts and names are
typical, not worst cases, so compose still checks every real message.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError
from bot.messages.checks import ComposeError, check_sms
from bot.messages.compose import DEFAULT_LOCALE, REPLY_FOOTER_KINDS, REPLY_KINDS, VERIFIED_KINDS
from bot.messages.locales import check_locale_file
from bot.rendering import Renderer, TemplateProblem, first_name, money, sample_context

__all__ = [
    "REPLY_LOCALES",
    "TemplateCheckError",
    "sample_reply_context",
    "validate_email_templates",
    "validate_reply_templates",
    "validate_sms_templates",
    "validate_templates",
]

#: Locales the reply templates ship in.
REPLY_LOCALES = ("en-US", "zh-CN", "ko-KR", "es-US")
_SAMPLE_NAMES = {"en": "Alex Sample", "zh": "张伟", "ko": "김민준", "es": "Ana García"}
_SAMPLE_PROMISE = date(2026, 1, 23)


class TemplateCheckError(ConfigError):
    """Templates that cannot be sent; ``problems`` are ``templates/PATH[:LINE]: message`` strings
    (``templates/`` standing for the templates directory, named in the message when given)."""

    def __init__(self, problems: list[str], *, directory: Any = None) -> None:
        self.problems = problems
        self.directory = directory
        where = f" (templates/ is {directory})" if directory is not None else ""
        super().__init__(f"message templates that cannot be sent{where}:\n  " + "\n  ".join(problems))


def sample_reply_context(locale: str, promise_date: date | None = _SAMPLE_PROMISE,
                         settings: Settings | None = None) -> dict[str, Any]:
    """A representative reply context (the lender from ``settings`` when given)."""
    name = _SAMPLE_NAMES.get(locale.split("-")[0], _SAMPLE_NAMES["en"])
    return {
        "lender_name": settings.lender_name if settings else "Example Lending",
        "lender_phone": settings.lender_phone if settings else "+18005550100",
        "lender_email": settings.lender_email if settings else "support@example.com",
        "first_name": first_name(name),
        "locale": locale,
        "promise_date": promise_date,
        "verified": False,
        "balances": [],
        "payment_url": "",
    }


def _reply_samples(kind: str, locale: str, settings: Settings | None) -> list[dict[str, Any]]:
    """The contexts a ``reply_<kind>`` is checked with: every branch its wording has."""
    if kind == "promise":
        return [sample_reply_context(locale, promise, settings) for promise in (_SAMPLE_PROMISE, None)]
    context = sample_reply_context(locale, None, settings)
    if kind == "payment_link":  # a short link (the long one's length depends on the lender's URL)
        return [dict(context, payment_url="https://bot.example.com/p/AQEBAgMEBQYHCA")]
    if kind in VERIFIED_KINDS:
        verified = dict(context, verified=True, balances=[money(123456, "USD", locale), money(50000, "USD", locale)])
        return [context, verified]
    return [context]


def _problem(problem: TemplateProblem) -> str:
    return f"templates/{problem.path}" + (f":{problem.line}" if problem.line else "") + f": {problem.message}"


def _last_line(file: Path) -> int | None:
    """The number of the file's last non-blank line (where an SMS template's ending is)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for number in range(len(lines), 0, -1):
        if lines[number - 1].strip():
            return number
    return None


def _check(renderer: Renderer, name: str, locale: str, context: dict[str, Any], max_segments: int,
           needs_opt_out: bool, problems: list[str]) -> None:
    path = f"templates/{renderer.sms_path(name, locale)}"
    try:
        renderer.validate("sms", name, locale, context)
        body = renderer.render_sms(name, locale, context)
        check_sms(body, template=name, locale=locale, max_segments=max_segments, needs_opt_out=needs_opt_out,
                  templates_dir=renderer.templates_dir)
    except TemplateProblem as problem:
        problems.append(_problem(problem))
    except ComposeError as exc:
        line = _last_line(renderer.templates_dir / renderer.sms_path(name, locale)) \
            if exc.reason == "no_opt_out" else None
        problems.append(f"{path}" + (f":{line}" if line else "") + f": {exc}")
    except ValueError as exc:  # a bad name or locale tag
        problems.append(f"{path}: {exc}")


def validate_reply_templates(renderer: Renderer, *, locales: Iterable[str] = REPLY_LOCALES,
                             max_segments: int = 4, settings: Settings | None = None) -> None:
    """Render every ``reply_<kind>`` for every locale (``promise_date`` set and
    ``None``); raise :class:`TemplateCheckError` listing every problem."""
    problems: list[str] = []
    for locale in locales:
        for kind in REPLY_KINDS:
            name = f"reply_{kind}"
            for context in _reply_samples(kind, locale, settings):
                before = len(problems)
                _check(renderer, name, locale, context, max_segments, kind in REPLY_FOOTER_KINDS, problems)
                if len(problems) > before:
                    break
    if problems:
        raise TemplateCheckError(problems)


def validate_sms_templates(renderer: Renderer, names: Iterable[str], locales: Iterable[str], *,
                           max_segments: int = 4) -> None:
    """Reminder SMS templates: render with the policy's sample context and apply
    the opt-out and segment rules; raise :class:`TemplateCheckError`."""
    problems: list[str] = []
    for name in names:
        for locale in locales:
            _check(renderer, name, locale, sample_context("sms", locale), max_segments, True, problems)
    if problems:
        raise TemplateCheckError(problems)


#: The link the sample email context carries (bot.rendering.sample_context).
_SAMPLE_UNSUBSCRIBE = sample_context("email", DEFAULT_LOCALE)["unsubscribe_url"]


def _check_email(renderer: Renderer, name: str, locale: str, problems: list[str]) -> None:
    """An email template renders and shows ``unsubscribe_url`` in both parts (as compose requires)."""
    subject_path, text_path, html_path = (f"templates/{p}" for p in renderer.email_paths(name, locale))
    try:
        renderer.validate("email", name, locale)
        content = renderer.render_email(name, locale, sample_context("email", locale))
    except TemplateProblem as problem:
        problems.append(_problem(problem))
        return
    except ValueError as exc:  # a bad name or locale tag
        problems.append(f"{text_path}: {exc}")
        return
    where = f"template '{name}' for locale {locale}"
    if not content.subject.strip():
        problems.append(f"{subject_path}: {where}: the subject is empty")
    if _SAMPLE_UNSUBSCRIBE not in content.text:
        problems.append(f"{text_path}: {where}: the plain-text part must show {{{{ unsubscribe_url }}}} "
                        "(the unsubscribe link)")
    if _SAMPLE_UNSUBSCRIBE not in content.html and html_lib.escape(_SAMPLE_UNSUBSCRIBE) not in content.html:
        problems.append(f"{html_path}: {where}: the HTML part must show {{{{ unsubscribe_url }}}} "
                        "(the unsubscribe link)")


def validate_email_templates(renderer: Renderer, names: Iterable[str], locales: Iterable[str]) -> None:
    """Reminder email templates: render with the sample context; the unsubscribe link must
    appear in the text and the HTML part; raise :class:`TemplateCheckError`."""
    problems: list[str] = []
    for name in names:
        for locale in locales:
            _check_email(renderer, name, locale, problems)
    if problems:
        raise TemplateCheckError(problems)


def _reply_locales(renderer: Renderer) -> list[tuple[str, tuple[str, ...]]]:
    """(locale, reply kinds to check): every kind in en-US (the last fallback, so it must be
    complete), and in every other locale directory the kinds it has files for (a kind
    missing there falls back to another locale of the language, then to en-US)."""
    out = [(DEFAULT_LOCALE, REPLY_KINDS)]
    root = renderer.templates_dir / "sms"
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != DEFAULT_LOCALE):
            kinds = tuple(k for k in REPLY_KINDS if (folder / f"reply_{k}.txt.j2").is_file())
            if kinds:
                out.append((folder.name, kinds))
    return out


def validate_templates(renderer: Renderer, *, policy: Any = None, settings: Settings | None = None) -> None:
    """Everything the bot will render, checked before anything is sent.

    * replies (``reply_<kind>``) in en-US (all of them) and in the other locales
      that have them, with ``promise_date`` set and ``None``;
    * the policy's SMS steps, in every locale a step serves: renders, ends with
      the opt-out instruction, at most ``sms_max_segments`` segments;
    * the policy's email steps: renders, a subject, the unsubscribe link in the
      text and the HTML part;
    * every SMS locale folder, and every locale a policy SMS step serves, has a
      usable ``locale.yaml`` with its opt-out wording (:mod:`bot.messages.locales`).

    Raises :class:`TemplateCheckError` listing every problem with its file.
    """
    max_segments = settings.sms_max_segments if settings is not None else 4
    problems: list[str] = []
    for locale, kinds in _reply_locales(renderer):
        for kind in kinds:
            for context in _reply_samples(kind, locale, settings):
                before = len(problems)
                _check(renderer, f"reply_{kind}", locale, context, max_segments, kind in REPLY_FOOTER_KINDS,
                       problems)
                if len(problems) > before:
                    break
    if policy is not None:
        seen: set[tuple[str, str, str]] = set()
        for _arm, step in policy.steps():
            if step.channel not in ("sms", "email") or not step.template:
                continue
            served = sorted(step.when.locales) if step.when.locales is not None else list(policy.locales)
            for locale in served:
                key = (step.channel, step.template, locale)
                if key in seen:
                    continue
                seen.add(key)
                if step.channel == "sms":
                    _check(renderer, step.template, locale, sample_context("sms", locale), max_segments, True,
                           problems)
                else:
                    _check_email(renderer, step.template, locale, problems)
    for locale in _sms_locales(renderer, policy):
        problems.extend(check_locale_file(renderer.templates_dir, locale))
    if problems:
        raise TemplateCheckError(list(dict.fromkeys(problems)), directory=renderer.templates_dir)


def _sms_locales(renderer: Renderer, policy: Any) -> list[str]:
    """Locales whose opt-out wording is checked: every folder under ``sms/`` and every
    locale a policy SMS step serves (it must have a folder, with its ``locale.yaml``)."""
    root = renderer.templates_dir / "sms"
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if policy is not None:
        for _arm, step in policy.steps():
            if step.channel == "sms":
                found.extend(sorted(step.when.locales) if step.when.locales is not None else policy.locales)
    return list(dict.fromkeys(found))

"""Check SMS templates before anything is sent: at start-up, in tests, in CI.

The policy loader (bot/policy.py) already renders every reminder template of the
policy with a sample context.  This adds what only the message layer knows: the
reply templates (``reply_<kind>``, their own variables) and the SMS rules of
:mod:`bot.messages.checks` (opt-out instruction, segment limit) on sample text.
The sample amounts and names are typical, not worst cases, so compose still
checks every real message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from bot.config import Settings
from bot.errors import ConfigError
from bot.messages.checks import ComposeError, check_sms
from bot.messages.compose import REPLY_FOOTER_KINDS, REPLY_KINDS
from bot.rendering import Renderer, TemplateProblem, first_name, sample_context

__all__ = [
    "REPLY_LOCALES",
    "TemplateCheckError",
    "sample_reply_context",
    "validate_reply_templates",
    "validate_sms_templates",
]

#: Locales the reply templates ship in.
REPLY_LOCALES = ("en-US", "zh-CN", "ko-KR")
_SAMPLE_NAMES = {"en": "Alex Sample", "zh": "张伟", "ko": "김민준"}
_SAMPLE_PROMISE = date(2026, 1, 23)


class TemplateCheckError(ConfigError):
    """Templates that cannot be sent; ``problems`` are ``templates/PATH[:LINE]: message`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("SMS templates with problems:\n  " + "\n  ".join(problems))


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
    }


def _check(renderer: Renderer, name: str, locale: str, context: dict[str, Any], max_segments: int,
           needs_opt_out: bool, problems: list[str]) -> None:
    path = f"templates/{renderer.sms_path(name, locale)}"
    try:
        renderer.validate("sms", name, locale, context)
        body = renderer.render_sms(name, locale, context)
        check_sms(body, template=name, locale=locale, max_segments=max_segments, needs_opt_out=needs_opt_out)
    except TemplateProblem as problem:
        problems.append(f"templates/{problem.path}" + (f":{problem.line}" if problem.line else "") +
                        f": {problem.message}")
    except ComposeError as exc:
        problems.append(f"{path}: {exc}")
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
            promises = (_SAMPLE_PROMISE, None) if kind == "promise" else (None,)
            for promise in promises:
                before = len(problems)
                _check(renderer, name, locale, sample_reply_context(locale, promise, settings), max_segments,
                       kind in REPLY_FOOTER_KINDS, problems)
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

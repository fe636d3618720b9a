"""Message rendering: one Jinja2 environment over ``templates/`` with Babel filters.

Why a module of its own: the treatment policy validates every template it refers
to when it is loaded (a typo must stop ``bot plan`` before anything is planned,
not fail at 09:00 while sending), and the dispatcher renders the same templates
later.  Both go through :class:`Renderer`, so what was validated is what is sent.

Rules of the environment:

* ``StrictUndefined``: a variable that is not in the context is an error, never an
  empty string in a borrower's message;
* autoescaping only for ``*.html.j2`` (SMS and plain-text email are not HTML);
* filters ``money(minor, currency, locale)`` and ``date(d, locale, format)`` use
  Babel's CLDR data, so ``12345 USD`` is ``$123.45`` in en-US and ``120000 KRW``
  is ``₩120,000`` in ko-KR.

Template files (``<locale>`` is a BCP 47 tag such as ``zh-CN``)::

    templates/sms/<locale>/<name>.txt.j2
    templates/email/<locale>/<name>.subject.j2
    templates/email/<locale>/<name>.txt.j2
    templates/email/<locale>/<name>.html.j2

The variables a template may use are listed in :data:`TEMPLATE_VARIABLES` (and in
docs/policy.md).  Rendered text goes to the borrower: it is never logged.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision

__all__ = [
    "TEMPLATE_VARIABLES",
    "EmailContent",
    "Renderer",
    "TemplateProblem",
    "babel_locale",
    "default_templates_dir",
    "first_name",
    "get_renderer",
    "render_email",
    "render_sms",
    "reminder_context",
    "sample_context",
]

#: Variables every reminder template may use, with what they hold.
TEMPLATE_VARIABLES: dict[str, str] = {
    "first_name": "the borrower's short name: first given name, or the whole name for CJK names",
    "lender_name": "the lender's name (setting lender_name)",
    "lender_phone": "the lender's phone number for questions and payment (setting lender_phone)",
    "lender_email": "the lender's support email (setting lender_email)",
    "amount_minor": "outstanding amount of the installment, integer minor units",
    "currency": "ISO 4217 currency of the loan, e.g. USD, CNY, KRW",
    "due_date": "the installment's due date (a date; format it with the date filter)",
    "days_to_due": "days until the due date (0 on the due date and after)",
    "days_late": "days past the due date (0 before and on the due date)",
    "loan_ref": "the last four characters of the loan id, to say which loan",
    "locale": "the message locale, e.g. en-US; pass it to money and date",
    "unsubscribe_url": "email only: the unsubscribe link the message must show",
    "payment_url": "the payment link ('' when the setting payment_url_template is not set): "
                   "{% if payment_url %}...{% endif %}",
}

EMAIL_ONLY_VARIABLES = frozenset({"unsubscribe_url"})

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
_LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def default_templates_dir() -> Path:
    """``templates/`` beside the package (a checkout) unless the settings say otherwise."""
    try:
        from bot.config import DEFAULT_TEMPLATES_DIR  # type: ignore[attr-defined]

        return Path(DEFAULT_TEMPLATES_DIR)
    except ImportError:  # pragma: no cover - older settings module
        return Path(__file__).resolve().parent.parent / "templates"


class EmailContent(NamedTuple):
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class TemplateProblem(Exception):
    """A template that is missing, does not parse, or uses an unknown variable.

    ``path`` is relative to the templates directory; ``line`` is the template line
    when Jinja knows it.  The message never contains rendered text.
    """

    path: str
    line: int | None
    message: str
    root: str = "templates"

    def __str__(self) -> str:
        where = f"{self.root}/{self.path}" + (f":{self.line}" if self.line else "")
        return f"{where}: {self.message}"


# --- Babel helpers -----------------------------------------------------------


@lru_cache(maxsize=64)
def babel_locale(locale: str) -> Locale:
    """``zh-CN`` / ``zh_CN`` → Babel's :class:`Locale`."""
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"unknown locale {locale!r}") from None


def money(minor: int, currency: str, locale: str) -> str:
    """Integer minor units as the locale writes money: ``money(12345, 'USD', 'en-US')`` → ``$123.45``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("money() needs an integer amount in minor units")
    precision = get_currency_precision(currency)
    return format_currency(Decimal(minor).scaleb(-precision), currency, locale=babel_locale(locale))


def format_day(value: date, locale: str, format: str = "medium") -> str:  # noqa: A002 - Babel's name
    """A calendar date in the locale's words (``format``: short/medium/long/full or a CLDR pattern)."""
    return format_date(value, format=format, locale=babel_locale(locale))


def first_name(full_name: str | None) -> str:
    """The short form a message may use to greet the borrower.

    Western names: the first word ("Jane Doe" → "Jane").  Chinese and Korean names
    are written family name first and greeting by the given name alone is too
    familiar, so the whole name is kept ("张伟", "김민준").
    """
    name = (full_name or "").strip()
    if not name:
        return ""
    if all(ch.isspace() or "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in name):
        return name.replace(" ", "")
    return name.split()[0]


# --- the environment -----------------------------------------------------------


class Renderer:
    """A Jinja2 environment over one templates directory."""

    def __init__(self, templates_dir: Path | str | None = None) -> None:
        self.templates_dir = Path(templates_dir) if templates_dir else default_templates_dir()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), disabled_extensions=(), default_for_string=False, default=False
            ),
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters["money"] = money
        self.env.filters["date"] = format_day

    # paths (relative to templates_dir, with forward slashes as Jinja wants)

    @staticmethod
    def sms_path(name: str, locale: str) -> str:
        return f"sms/{locale}/{name}.txt.j2"

    @staticmethod
    def email_paths(name: str, locale: str) -> tuple[str, str, str]:
        base = f"email/{locale}/{name}"
        return (f"{base}.subject.j2", f"{base}.txt.j2", f"{base}.html.j2")

    def paths_for(self, channel: str, name: str, locale: str) -> tuple[str, ...]:
        if channel == "sms":
            return (self.sms_path(name, locale),)
        if channel == "email":
            return self.email_paths(name, locale)
        raise ValueError(f"channel {channel!r} has no message templates")

    # rendering

    def _render(self, path: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(path).render(**context)

    def render_sms(self, template: str, locale: str, context: Mapping[str, Any]) -> str:
        _check_names(template, locale)
        return self._render(self.sms_path(template, locale), context).strip()

    def render_email(self, template: str, locale: str, context: Mapping[str, Any]) -> EmailContent:
        _check_names(template, locale)
        subject_path, text_path, html_path = self.email_paths(template, locale)
        subject = " ".join(self._render(subject_path, context).split())
        text = self._render(text_path, context).strip() + "\n"
        html = self._render(html_path, context).strip() + "\n"
        return EmailContent(subject, text, html)

    # validation

    def validate(self, channel: str, name: str, locale: str, context: Mapping[str, Any] | None = None) -> None:
        """Render ``name`` for ``channel`` and ``locale`` with :func:`sample_context`
        (or ``context``, for templates with other variables such as SMS replies).

        Raises :class:`TemplateProblem` naming the template file and line for a
        missing file, a syntax error or a variable the context does not have.
        """
        _check_names(name, locale)
        context = sample_context(channel, locale) if context is None else context
        root = str(self.templates_dir)
        for path in self.paths_for(channel, name, locale):
            if not (self.templates_dir / path).is_file():
                raise TemplateProblem(path, None, "template file does not exist", root)
            try:
                self._render(path, context)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateProblem(_relative(self.templates_dir, exc.filename, path), exc.lineno,
                                      f"syntax error: {exc.message}", root) from None
            except jinja2.UndefinedError as exc:
                file, line = _template_frame(exc, self.templates_dir, path)
                raise TemplateProblem(file, line, f"undefined variable: {exc.message}", root) from None
            except jinja2.TemplateNotFound as exc:  # an {% include %} / {% extends %} target
                raise TemplateProblem(path, None, f"included template {exc.name} does not exist", root) from None
            except (TypeError, ValueError, ArithmeticError) as exc:
                file, line = _template_frame(exc, self.templates_dir, path)
                raise TemplateProblem(file, line, f"{type(exc).__name__}: {exc}", root) from None


def _check_names(name: str, locale: str) -> None:
    """Template names and locales become path parts: refuse anything that could escape."""
    if not _NAME_RE.match(name):
        raise ValueError(f"template name {name!r} must be lower-case letters, digits and _")
    if not _LOCALE_RE.match(locale):
        raise ValueError(f"locale {locale!r} is not a BCP 47 tag such as en-US")


def _relative(root: Path, filename: str | None, fallback: str) -> str:
    if not filename:
        return fallback
    try:
        return Path(filename).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return fallback


def _template_frame(exc: BaseException, root: Path, fallback: str) -> tuple[str, int | None]:
    """The innermost template file and line of a render error.

    Jinja rewrites tracebacks so that frames of compiled templates carry the
    template's file name and source line; the innermost such frame is where the
    error is.
    """
    root_resolved = root.resolve()
    found: tuple[str, int | None] = (fallback, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            rel = Path(frame.filename).resolve().relative_to(root_resolved)
        except (ValueError, OSError):
            continue
        found = (rel.as_posix(), frame.lineno)
    return found


@lru_cache(maxsize=8)
def get_renderer(templates_dir: str | None = None) -> Renderer:
    """One shared :class:`Renderer` per templates directory (Jinja caches compiled templates)."""
    return Renderer(templates_dir)


def render_sms(
    template: str, locale: str, context: Mapping[str, Any], *, templates_dir: Path | str | None = None
) -> str:
    """The SMS body for ``template`` in ``locale``; surrounding whitespace removed."""
    return get_renderer(str(templates_dir) if templates_dir else None).render_sms(template, locale, context)


def render_email(
    template: str, locale: str, context: Mapping[str, Any], *, templates_dir: Path | str | None = None
) -> EmailContent:
    """``(subject, text, html)`` for ``template`` in ``locale``."""
    return get_renderer(str(templates_dir) if templates_dir else None).render_email(template, locale, context)


# --- contexts ------------------------------------------------------------------

_SAMPLE_BY_LANGUAGE: dict[str, tuple[str, str, int]] = {
    # language -> (sample full name, currency, outstanding minor units)
    "en": ("Alex Sample", "USD", 12345),
    "zh": ("张伟", "CNY", 123456),
    "ko": ("김민준", "KRW", 150000),
    "es": ("Ana García", "USD", 12345),
}


def sample_context(channel: str, locale: str) -> dict[str, Any]:
    """A representative context, used to validate templates when the policy loads.

    It holds exactly the documented variables (``unsubscribe_url`` for email only),
    so a template that uses anything else fails validation.
    """
    name, currency, amount = _SAMPLE_BY_LANGUAGE.get(locale.split("-")[0], _SAMPLE_BY_LANGUAGE["en"])
    return reminder_context(
        full_name=name,
        locale=locale,
        amount_minor=amount,
        currency=currency,
        due_date=date(2026, 1, 15),
        today=date(2026, 1, 18),
        loan_id="L-SAMPLE-1234",
        lender_name="Example Lending",
        lender_phone="+18005550100",
        lender_email="support@example.com",
        unsubscribe_url="https://example.invalid/unsubscribe/sample" if channel == "email" else None,
        payment_url="https://example.invalid/p/AwHiQOBkk92dTQ",
    ) | {"days_to_due": 3}


def reminder_context(
    *,
    full_name: str | None,
    locale: str,
    amount_minor: int,
    currency: str,
    due_date: date,
    today: date,
    loan_id: str,
    lender_name: str,
    lender_phone: str,
    lender_email: str,
    unsubscribe_url: str | None = None,
    payment_url: str = "",
) -> dict[str, Any]:
    """The context for a reminder about one installment (see :data:`TEMPLATE_VARIABLES`).

    ``today`` is the borrower's local date.  Pass ``unsubscribe_url`` for email;
    ``payment_url`` is empty when no payment link is configured.
    """
    context: dict[str, Any] = {
        "first_name": first_name(full_name),
        "lender_name": lender_name,
        "lender_phone": lender_phone,
        "lender_email": lender_email,
        "amount_minor": amount_minor,
        "currency": currency,
        "due_date": due_date,
        "days_to_due": max((due_date - today).days, 0),
        "days_late": max((today - due_date).days, 0),
        "loan_ref": loan_id[-4:],
        "locale": locale,
        "payment_url": payment_url,
    }
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    return context


"""What each message locale says to tell a borrower how to stop texts, read from its own files.

Every SMS locale folder holds a ``locale.yaml`` beside its templates
(``<templates_dir>/sms/<locale>/locale.yaml``, docs/locales.md)::

    # Opt-out wording of es-US texts.
    opt_out:
      - Responda ALTO para cancelar.     # the first: appended to a first text that lacks one
      - Responda STOP para cancelar.     # more endings the checks accept

An SMS that must carry the opt-out instruction ends with one of its locale's lines or
an en-US line (STOP is the keyword carriers act on everywhere); case, spaces and a
final ``.`` / ``。`` / ``!`` are ignored.  A locale without its own file uses another
locale of its language that has one, then en-US, then :data:`ENGLISH_LINE`.

The wording is configuration, not code: a locale added in a templates directory of
its own (the ``templates_dir`` setting) brings its wording with it.  The template
checks (:mod:`bot.messages.validation`) refuse a locale folder without a usable
``locale.yaml`` at start-up, naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.scripts.yamlmarks import Lines, read_yaml

__all__ = ["ENGLISH_LINE", "LOCALE_FILE", "OptOutWording", "check_locale_file", "locale_file", "opt_out_wording"]

LOCALE_FILE = "locale.yaml"
#: The last resort when no locale file gives a wording (an en-US folder without one).
ENGLISH_LINE = "Reply STOP to opt out."
FALLBACK_LOCALE = "en-US"
TRAILING = " \t\r\n.。!！"


@dataclass(frozen=True, slots=True)
class OptOutWording:
    """``line`` is appended when a text lacks an instruction; ``endings`` are accepted
    (normalised: trailing punctuation removed, case-folded)."""

    line: str
    endings: tuple[str, ...]


def normalise(text: str) -> str:
    return text.rstrip(TRAILING).casefold()


ENGLISH = OptOutWording(ENGLISH_LINE, (normalise(ENGLISH_LINE),))


def locale_file(templates_dir: Path | str, locale: str) -> Path:
    return Path(templates_dir) / "sms" / locale / LOCALE_FILE


def _parse(path: Path, label: str) -> tuple[OptOutWording | None, list[str]]:
    """The wording of one ``locale.yaml`` and its problems (``label:LINE: message``)."""
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [(f"{label}: missing: every SMS locale names its opt-out wording here "
                       "(opt_out: a list of lines, e.g. 'Reply STOP to opt out.'; docs/locales.md)")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{label}: cannot be read ({type(exc).__name__})"]
    lines = Lines(label)
    data = read_yaml(text, lines, problems, what="locale file")
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [f"{label}:1: the locale file must be a mapping with 'opt_out'"]
    for key in data:
        if key != "opt_out":
            problems.append(f"{lines.where((key,))}: {key}: unknown key (expected opt_out)")
    values = data.get("opt_out")
    if values is None:
        problems.append(f"{label}:1: opt_out: missing: the lines that tell the borrower how to stop texts")
    elif not isinstance(values, list) or not values:
        problems.append(f"{lines.where(('opt_out',))}: opt_out: must be a non-empty list of lines")
    else:
        for index, value in enumerate(values):
            if not isinstance(value, str) or not normalise(value):
                problems.append(f"{lines.where(('opt_out', index))}: opt_out[{index}]: must be a non-empty line")
    if problems:
        return None, problems
    return OptOutWording(values[0].strip(), tuple(dict.fromkeys(normalise(v) for v in values))), []


@lru_cache(maxsize=256)
def _cached(path: str, stamp: tuple[int, int]) -> tuple[OptOutWording | None, tuple[str, ...]]:
    wording, problems = _parse(Path(path), path)
    return wording, tuple(problems)


def _read(path: Path) -> OptOutWording | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _cached(str(path), (stat.st_mtime_ns, stat.st_size))[0]


def _candidates(root: Path, locale: str) -> list[str]:
    tag = locale.replace("_", "-")
    language = tag.split("-")[0].lower()
    siblings: list[str] = []
    sms = root / "sms"
    if sms.is_dir():
        siblings = sorted(p.name for p in sms.iterdir()
                          if p.is_dir() and p.name != tag and p.name.split("-")[0].lower() == language)
    return list(dict.fromkeys([tag, *siblings, FALLBACK_LOCALE]))


def opt_out_wording(templates_dir: Path | str, locale: str) -> OptOutWording:
    """The opt-out wording of ``locale``: its own ``locale.yaml``, else another locale of its
    language, else en-US's, else :data:`ENGLISH` (files re-read when they change)."""
    root = Path(templates_dir)
    for candidate in _candidates(root, locale):
        wording = _read(locale_file(root, candidate))
        if wording is not None:
            return wording
    return ENGLISH


def accepted_endings(templates_dir: Path | str, locale: str) -> tuple[str, ...]:
    """Endings an SMS of ``locale`` may close with: the locale's own and en-US's."""
    own = opt_out_wording(templates_dir, locale).endings
    return tuple(dict.fromkeys(own + opt_out_wording(templates_dir, FALLBACK_LOCALE).endings))


def check_locale_file(templates_dir: Path | str, locale: str, *, label_root: str = "templates") -> list[str]:
    """Problems of ``sms/<locale>/locale.yaml`` (``templates/…:LINE: message``); [] when usable."""
    path = locale_file(templates_dir, locale)
    label = f"{label_root}/sms/{locale}/{LOCALE_FILE}"
    return _parse(path, label)[1]

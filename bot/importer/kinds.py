"""The kinds of import file, their columns, and recognising a file from its header.

A header is recognised when every column it names (trimmed, case-insensitive)
belongs to one kind and every required column of that kind is there.  Columns
whose name starts with ``_`` (the ``_line,_column,_reason`` of a rejects file)
and columns with an empty name (a trailing comma) are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import StrEnum


class Kind(StrEnum):
    """File kinds, in dependency order: the order files are imported in."""

    BORROWERS = "borrowers"
    LOANS = "loans"
    INSTALLMENTS = "installments"
    PAYMENTS = "payments"
    CONTACTS = "contacts"

    @property
    def order(self) -> int:
        return list(Kind).index(self)


@dataclass(frozen=True)
class FileFormat:
    kind: Kind
    columns: tuple[str, ...]
    # Columns that may be left out of the header (their values then count as empty).
    optional: frozenset[str] = frozenset()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.optional)


FORMATS: dict[Kind, FileFormat] = {
    f.kind: f
    for f in (
        FileFormat(
            Kind.BORROWERS,
            (
                "borrower_id",
                "full_name",
                "phone",
                "email",
                "locale",
                "timezone",
                "region",
                "country",
                "consent_sms",
                "consent_voice",
                "consent_email",
                "risk_score",
                "segment",
            ),
            # Consent columns are required on purpose: leaving them out would
            # silently withdraw every consent on re-import.
            optional=frozenset({"locale", "timezone", "region", "risk_score", "segment"}),
        ),
        FileFormat(
            Kind.LOANS,
            ("loan_id", "borrower_id", "product", "principal", "currency", "opened_on", "risk_score", "segment"),
            optional=frozenset({"product", "risk_score", "segment"}),
        ),
        FileFormat(
            Kind.INSTALLMENTS,
            ("installment_id", "loan_id", "due_date", "amount_due", "amount_paid"),
            optional=frozenset({"amount_paid"}),
        ),
        FileFormat(Kind.PAYMENTS, ("payment_id", "loan_id", "paid_at", "amount")),
        FileFormat(
            Kind.CONTACTS,
            ("borrower_id", "loan_id", "channel", "occurred_at", "outcome"),
            optional=frozenset({"loan_id"}),
        ),
    )
}

_ALL_COLUMNS = frozenset(c for f in FORMATS.values() for c in f.columns)


class HeaderError(ValueError):
    """The header names no known kind of file; the message says why."""


@dataclass(frozen=True)
class Layout:
    """Where each column of a recognised file is.

    ``index[name]`` is the position of a contract column in each record, or
    ``None`` for an optional column the file leaves out.  ``kept`` are the
    positions of the columns copied into a rejects file (all but the ignored
    ``_`` columns).
    """

    format: FileFormat
    width: int
    names: tuple[str, ...]
    index: dict[str, int | None]
    kept: tuple[int, ...]

    @property
    def kind(self) -> Kind:
        return self.format.kind


def _ignored(name: str) -> bool:
    return not name or name.startswith("_")


def recognise(header: Sequence[str], forced: Kind | None = None) -> Layout:
    """The layout of a file with this header row, or :class:`HeaderError`."""
    names = tuple(cell.strip().lower() for cell in header)
    used = [n for n in names if not _ignored(n)]
    if not used:
        raise HeaderError("no header: the first line names no columns")
    twice = sorted(name for name, count in Counter(used).items() if count > 1)
    if twice:
        raise HeaderError(f"column(s) named twice in the header: {', '.join(twice)}")
    present = set(used)
    fmt = FORMATS[forced] if forced else _guess(present)
    unknown = sorted(present - set(fmt.columns))
    if unknown:
        raise HeaderError(
            f"header not recognised: column(s) {', '.join(unknown)} are not part of a {fmt.kind} file"
        )
    missing = [c for c in fmt.required if c not in present]
    if missing:
        raise HeaderError(
            f"header of a {fmt.kind} file lacks required column(s): {', '.join(missing)}"
        )
    index = {c: (names.index(c) if c in present else None) for c in fmt.columns}
    kept = tuple(i for i, n in enumerate(names) if not n.startswith("_"))
    return Layout(fmt, len(names), names, index, kept)


def _guess(present: set[str]) -> FileFormat:
    unknown = sorted(present - _ALL_COLUMNS)
    if unknown:
        raise HeaderError(f"header not recognised: unknown column(s) {', '.join(unknown)}")
    candidates = [f for f in FORMATS.values() if present <= set(f.columns)]
    if not candidates:
        raise HeaderError(
            "header not recognised: its columns belong to different kinds of file "
            f"({', '.join(k.value for k in Kind)})"
        )
    # The candidate missing the fewest required columns; exact matches first.
    return min(candidates, key=lambda f: (len(set(f.required) - present), f.kind.order))

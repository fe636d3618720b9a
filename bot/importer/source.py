"""Reading one input CSV file: checks before the import, then a stream of records.

:func:`inspect` runs before anything is imported: the file exists, is
readable, is not empty, is valid UTF-8 from start to end (checked in chunks,
so memory stays flat) and has a header that names a kind of file.
:meth:`CsvSource.records` then streams the data rows with the physical line
each starts on, counting lines the way ``csv.reader.line_num`` does, so a
quoted field containing newlines does not shift later line numbers.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bot.errors import InputFileError
from bot.importer.kinds import HeaderError, Kind, Layout, recognise

_CHUNK = 1 << 20


@dataclass(frozen=True)
class CsvSource:
    """An input file that passed :func:`inspect`."""

    path: Path
    label: str  # the path as the user gave it, for messages
    size: int
    header: tuple[str, ...]  # as written in the file (for the rejects file)
    layout: Layout

    @property
    def kind(self) -> Kind:
        return self.layout.kind

    def records(self, on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[int, list[str]]]:
        """Data rows as ``(line, cells)``; blank lines are skipped.

        ``on_bytes`` is called now and then with the number of bytes read so
        far (for a progress bar).
        """
        with self.path.open("rb") as raw, _text(raw) as text:
            reader = csv.reader(text)
            try:
                next(reader, None)  # the header, already recognised
                last = reader.line_num
                for count, cells in enumerate(reader):
                    line, last = last + 1, reader.line_num
                    if on_bytes is not None and count % 4096 == 0:
                        on_bytes(raw.tell())
                    if not cells or (len(cells) == 1 and not cells[0].strip()):
                        continue
                    yield line, cells
            except csv.Error as exc:
                raise InputFileError(f"{self.label}:{reader.line_num}: not valid CSV: {exc}") from None
            except UnicodeDecodeError:
                raise InputFileError(
                    f"{self.label}: is not UTF-8 (did it change while being imported?)"
                ) from None
            if on_bytes is not None:
                on_bytes(self.size)


def _text(raw: BinaryIO) -> io.TextIOWrapper:
    """UTF-8 text, BOM dropped, line endings kept as they are (what csv wants)."""
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="", errors="strict")


def inspect(path: Path, label: str, forced: Kind | None = None) -> CsvSource:
    """Check a file before the import; :class:`InputFileError` says what is wrong."""
    try:
        if path.is_dir():
            raise InputFileError(f"{label}: is a directory, not a CSV file")
        size = path.stat().st_size
        with path.open("rb") as raw:
            _check_utf8(raw, label)
            raw.seek(0)
            header = _first_record(raw, label)
    except FileNotFoundError:
        raise InputFileError(f"{label}: no such file") from None
    except PermissionError:
        raise InputFileError(f"{label}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise InputFileError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if header is None:
        raise InputFileError(f"{label}: is empty (expected a header line and data rows)")
    try:
        layout = recognise(header, forced)
    except HeaderError as exc:
        hint = "" if forced else " (or use --kind to say which kind of file it is)"
        raise InputFileError(f"{label}:1: {exc}{hint}") from None
    return CsvSource(path, label, size, tuple(h.strip() for h in header), layout)


def _check_utf8(raw: BinaryIO, label: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    lines = 0
    while chunk := raw.read(_CHUNK):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad = offset + exc.start
            line = lines + chunk.count(b"\n", 0, exc.start) + 1
            raise InputFileError(
                f"{label}: is not UTF-8: invalid byte 0x{chunk[exc.start]:02x} at byte offset {bad} "
                f"(line {line}); save the file as UTF-8 and try again"
            ) from None
        offset += len(chunk)
        lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InputFileError(
            f"{label}: is not UTF-8: the file ends in the middle of a character "
            f"(byte offset {offset}, line {lines + 1})"
        ) from None


def _first_record(raw: BinaryIO, label: str) -> list[str] | None:
    """The header row, or None when the file holds nothing but blank lines."""
    with _text(raw) as text:
        reader = csv.reader(text)
        try:
            first = next(reader, None)
            if first is not None and any(cell.strip() for cell in first):
                return first
            if any(any(cell.strip() for cell in cells) for cells in reader):
                raise InputFileError(f"{label}:1: no header: the first line must name the columns")
        except csv.Error as exc:
            raise InputFileError(f"{label}:{reader.line_num}: not valid CSV: {exc}") from None
    return None

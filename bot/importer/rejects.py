"""The ``<file>.rejects.csv`` written beside an input file.

Columns: ``_line,_column,_reason`` then the input's own columns with the
original values, each passed through :func:`bot.privacy.csv_safe` so that a
spreadsheet does not run a value as a formula.  Because the importer ignores
``_`` columns and undoes ``csv_safe``, a corrected rejects file can be
imported as it is.

Rows are streamed into a temporary file in the same directory while the
import runs; only after the database commit does :meth:`RejectsFile.commit`
move it into place (``os.replace``, atomic).  A stale rejects file from an
earlier run is removed when the input now has no rejects.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from bot.privacy import csv_safe


def rejects_path(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.csv")


class RejectsFile:
    def __init__(self, source: Path, header: tuple[str, ...], kept: tuple[int, ...]) -> None:
        self.final = rejects_path(source)
        self._header = header
        self._kept = kept
        self._temp: Path | None = None
        self._fh: IO[str] | None = None
        self._writer: Any = None  # a csv writer
        self.count = 0

    def add(self, line: int, column: str | None, reason: str, cells: list[str]) -> None:
        if self._writer is None:
            self._open()
        assert self._writer is not None
        values = [cells[i] if i < len(cells) else "" for i in self._kept]
        extra = cells[len(self._header) :]
        cells_out = [*map(csv_safe, values), *map(csv_safe, extra)]
        self._writer.writerow([line, column or "", csv_safe(reason), *cells_out])
        self.count += 1

    def _open(self) -> None:
        fd, name = tempfile.mkstemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent)
        self._temp = Path(name)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        names = [self._header[i] for i in self._kept]
        self._writer.writerow(["_line", "_column", "_reason", *map(csv_safe, names)])

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._writer = None

    def commit(self) -> Path | None:
        """After the database commit: put the rejects in place, or remove a stale file."""
        self._close()
        if self._temp is not None:
            os.replace(self._temp, self.final)
            self._temp = None
            return self.final
        with contextlib.suppress(FileNotFoundError):
            self.final.unlink()
        return None

    def discard(self) -> None:
        """The import failed: forget the rows, leave any earlier rejects file alone."""
        self._close()
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            self._temp = None

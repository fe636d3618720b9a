"""The CSV portfolio importer behind ``bot import``.

Modules, in the order the data flows:

* :mod:`~bot.importer.kinds`   the file kinds, their columns, header recognition
* :mod:`~bot.importer.source`  checking a file up front, streaming its rows
* :mod:`~bot.importer.values`  parsing one cell (phone, amount, date...)
* :mod:`~bot.importer.rows`    validating a row of each kind, set-based look-ups
* :mod:`~bot.importer.store`   batched upserts with SQLAlchemy Core
* :mod:`~bot.importer.rejects` the ``<file>.rejects.csv`` beside each input
* :mod:`~bot.importer.run`     one run: all files, one transaction

The formats are documented in docs/formats.md.
"""

from bot.importer.kinds import FORMATS, Kind
from bot.importer.rows import RowError, RowWrite, write_row
from bot.importer.run import FileReport, ImportFailed, Rejection, import_files, inspect_all, write_transaction

__all__ = [
    "FORMATS",
    "FileReport",
    "ImportFailed",
    "Kind",
    "Rejection",
    "RowError",
    "RowWrite",
    "import_files",
    "inspect_all",
    "write_row",
    "write_transaction",
]

"""A parsed morning-check file's rows kept out of memory (issue 20 item 3: memory flat with the row count).

The parse (``store.ingest.attendance_files.parse_attendance``) hands each usable row to a
:class:`MarkSpool`; every :data:`CHUNK_ROWS` rows the spool writes what it holds to a temporary file,
one block per school (``marshal``: compact and fast), and keeps only each block's offset. A school's rows
are read back when asked for (:meth:`MarkSpool.load`), in file order, as ``MarkIn`` tuples: the vet and
the record steps take schools a batch at a time (:func:`batches`), so the process holds at most one
chunk being parsed plus one batch of schools, whatever the file's length. The temporary file is
unlinked on creation (it disappears with the process) and closed by :meth:`MarkSpool.close`.
"""
from __future__ import annotations

import marshal
from array import array
import tempfile
from collections.abc import Iterator, Mapping

from store.cases.intake import MarkIn

CHUNK_ROWS = 20_000   # rows held while parsing before they go to the spool file
BATCH_ROWS = 50_000   # rows of whole schools vetted or recorded together (one set-based pass each)


class MarkSpool(Mapping):
    """school code → its rows (a list of ``MarkIn``, read back from the spool file on each access)."""

    def __init__(self, chunk_rows: int | None = None):
        self._chunk_rows = chunk_rows or CHUNK_ROWS
        self._file = None
        self._blocks: dict[str, array] = {}  # per school: offset, size, offset, size, … (16 B a block, not 40 B)
        self._counts: dict[str, int] = {}
        self._buffer: dict[str, list[tuple]] = {}
        self._held = 0

    # -- writing (the parse) --------------------------------------------------------------------------
    def add(self, code: str, mark: tuple) -> None:
        """One usable row (student_no, status, reason, row number) of school ``code``."""
        held = self._buffer.get(code)
        if held is None:
            held = self._buffer[code] = []
            if code not in self._counts:
                self._counts[code] = 0
                self._blocks[code] = array("q")
        held.append(tuple(mark))
        self._counts[code] += 1
        self._held += 1
        if self._held >= self._chunk_rows:
            self.flush()

    def declare(self, code: str) -> None:
        """A school the file names even without rows (kept for the keys, as ``dict.setdefault`` did)."""
        if code not in self._counts:
            self._counts[code] = 0
            self._blocks[code] = array("q")

    def flush(self) -> None:
        if not self._held:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="baoxue-spool-")
        f = self._file
        f.seek(0, 2)
        for code, rows in self._buffer.items():
            body = marshal.dumps(rows)
            self._blocks[code].extend((f.tell(), len(body)))
            f.write(body)
        self._buffer = {}
        self._held = 0

    # -- reading (vet, record) ------------------------------------------------------------------------
    def load(self, code: str) -> list[MarkIn]:
        rows: list[MarkIn] = []
        blocks = self._blocks[code]
        if blocks:
            f = self._file
            f.flush()
            for i in range(0, len(blocks), 2):
                f.seek(blocks[i])
                rows += map(MarkIn._make, marshal.loads(f.read(blocks[i + 1])))
        rows += map(MarkIn._make, self._buffer.get(code, ()))
        return rows

    def size(self, code: str) -> int:
        return self._counts[code]

    @property
    def rows(self) -> int:
        return sum(self._counts.values())

    def __getitem__(self, code: str) -> list[MarkIn]:
        if code not in self._counts:
            raise KeyError(code)
        return self.load(code)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, code: object) -> bool:
        return code in self._counts

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):  # the spool file is unlinked already; this only returns its descriptor early
        try:
            self.close()
        except Exception:
            pass


class SheetView(Mapping):
    """The schools ``codes`` of ``sheets`` (a spool or a dict), read lazily: a filter that holds no rows."""

    def __init__(self, sheets: Mapping, codes):
        self._sheets = sheets
        self._codes = [c for c in codes if c in sheets]

    def __getitem__(self, code: str):
        if code not in self._codes:
            raise KeyError(code)
        return self._sheets[code]

    def __iter__(self):
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)

    def size(self, code: str) -> int:
        return size_of(self._sheets, code)


def size_of(sheets: Mapping, code: str) -> int:
    """Rows of school ``code`` without reading them (a spool knows; a dict's list is measured)."""
    size = getattr(sheets, "size", None)
    return size(code) if size is not None else len(sheets[code])


def batches(sheets: Mapping, codes=None, *, rows: int | None = None) -> Iterator[dict[str, list[MarkIn]]]:
    """``sheets`` (every school, or those of ``codes`` in that order) as dicts of whole schools of about
    ``rows`` rows at most (a larger school is a batch of its own): one batch's rows held at a time."""
    rows = rows or BATCH_ROWS
    batch: dict[str, list[MarkIn]] = {}
    held = 0
    for code in (sheets if codes is None else codes):
        n = size_of(sheets, code)
        if batch and held + n > rows:
            yield batch
            batch, held = {}, 0
        batch[code] = sheets[code]
        held += n
    if batch:
        yield batch

"""metrics.csv that survives a kill and a resume: the whole history, as if the run never stopped.

Lightning's CSVLogger deletes metrics.csv when a run starts and writes rows in batches, so a
resumed run loses the first part's rows and a killed run the unflushed ones. Here rows reach the
file at least every ``WRITE_SECONDS``, before each checkpoint is written and at each epoch's
start (``write_rows``: a kill never loses a row that the resumed run would not log again; an
epoch's training row comes after its checkpoint) and at the end; a resumed run starts from the
rows of the file it continues.
Rows that the resumed run logs again (the steps between its checkpoint and the kill replay
exactly) replace the old ones with the same step and columns; the others are kept. The file is
rewritten whole at each write (a kill leaves the previous file whole), the earlier rows from text
made once: a resume of a long history costs its length once, not at every write.
"""

from __future__ import annotations

import array
import bisect
import csv
import io
import itertools
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

Row = dict[str, Any]
WRITE_SECONDS = 5.0  # Lightning asks for a write after every row (~0.5 ms each): at most this often


def read_history(path: Path) -> list[Row]:
    """The complete rows of a metrics.csv (none if it is missing, or not CSV); a half-written last
    line is dropped."""
    try:
        return list(history_rows(path))
    except csv.Error:  # not a CSV file (or a field beyond csv's limit): nothing to keep
        return []


def history_rows(path: Path) -> Iterator[Row]:
    """:func:`read_history`'s rows one at a time (the curves of a long history need no list of
    them); raises ``csv.Error`` for a file that is not CSV."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # killed while writing a row
    records = csv.reader(text.splitlines())
    header = next(records, [])
    unique = len(set(header)) == len(header)  # else the last cell of a name counts, as in DictReader
    for record in records:  # csv.DictReader's rows, less its per-row Python overhead
        pairs = zip(header, record, strict=False)
        if not unique:
            pairs = dict(pairs).items()
        cells: Row = {k: v for k, v in pairs if v}
        try:
            cells["step"] = int(cells.get("step", ""))
        except ValueError:
            continue
        yield cells


class EarlierRows:
    """A resumed run's earlier rows, held as their CSV lines (a dict per row cost ~1 KB: a
    2,000,000-row history took 2.7 GB): the rows the resumed run logs again are left out (once
    replaced, a row stays replaced), and a new column writes the lines again, once."""

    def __init__(self, rows: list[Row]):
        self.columns = sorted(set().union(*{tuple(row) for row in rows}))
        kinds: dict[tuple, int] = {}
        self._kinds: list[frozenset] = []  # each kind of row's columns, once
        self._kind = array.array("i")  # each row's kind
        for row in rows:
            names = tuple(row)
            kind = kinds.get(names)
            if kind is None:
                kind = kinds[names] = len(self._kinds)
                self._kinds.append(frozenset(names))
            self._kind.append(kind)
        steps = [row["step"] for row in rows]
        self._order = sorted(range(len(rows)), key=steps.__getitem__)  # a sorted index: no per-row objects
        self._steps = [steps[i] for i in self._order]
        self._lines = _lines(rows, self.columns)
        self._replaced: set[int] = set()
        self._text: tuple[int, str] | None = None  # (replaced count, the rows kept)

    def replace(self, rows: list[Row]) -> None:
        """Leave out the earlier rows with the step and columns of one of ``rows``."""
        for row in rows:
            step = row["step"]
            first, end = bisect.bisect_left(self._steps, step), bisect.bisect_right(self._steps, step)
            self._replaced.update(
                i for i in self._order[first:end] if self._kinds[self._kind[i]] == row.keys()
            )

    def kept(self) -> list[Row]:
        """The rows not replaced, read back from their lines as :func:`read_history` reads them."""
        return list(
            _parsed(self.columns, (line for i, line in enumerate(self._lines) if i not in self._replaced))
        )

    def text(self, columns: list[str]) -> str:
        """The kept rows as CSV lines under ``columns`` (a superset of theirs)."""
        if columns != self.columns:
            self._lines = _lines(_parsed(self.columns, self._lines), columns)
            self.columns, self._text = columns, None
        if self._text is None or self._text[0] != len(self._replaced):
            kept = (line for i, line in enumerate(self._lines) if i not in self._replaced)
            self._text = (len(self._replaced), "".join(kept))
        return self._text[1]


def _lines(rows: Iterable[Row], columns: list[str]) -> list[str]:
    """Each row as one CSV line (csv.DictWriter's dialect, as Lightning writes) under ``columns``."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    ends = []
    for row in rows:
        out.writerow([row.get(column, "") for column in columns])
        ends.append(buffer.tell())
    text = buffer.getvalue()
    return [text[a:b] for a, b in itertools.pairwise([0, *ends])]


def _parsed(columns: list[str], lines: Iterable[str]) -> Iterator[Row]:
    """Rows back from lines :func:`_lines` wrote (one at a time: never all of them as dicts)."""
    for record in csv.reader(lines):
        row: Row = {k: v for k, v in zip(columns, record, strict=False) if v}
        row["step"] = int(row["step"])
        yield row


def merge(history: list[Row], rows: list[Row]) -> list[Row]:
    """The old rows that ``rows`` does not log again, then ``rows``."""
    earlier = EarlierRows(history)
    earlier.replace(rows)
    return earlier.kept() + rows


class HistoryCSVLogger(CSVLogger):
    """A CSVLogger that writes each row at once and keeps a resumed run's earlier rows."""

    def __init__(self, run_dir: Path, history: list[Row]):
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=1)
        self._earlier = EarlierRows(history) if history else None
        self._rows: list[Row] = []
        self._written = time.monotonic()

    @rank_zero_only
    def save(self) -> None:
        if time.monotonic() - self._written >= WRITE_SECONDS:
            self.write()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self.write()

    @rank_zero_only
    def write(self) -> None:
        """The rows logged so far, to the file."""
        self._written = time.monotonic()
        if self._earlier is None:  # a fresh run: Lightning appends the new rows
            super().save()
            return
        writer = self.experiment
        self._earlier.replace(writer.metrics)
        self._rows.extend(writer.metrics)
        writer.metrics = []
        columns = sorted(set(self._earlier.columns).union(*self._rows))
        writer.metrics_keys = columns
        target = Path(writer.metrics_file_path)
        partial = target.with_suffix(".csv.partial")
        with open(partial, "w", newline="", encoding="utf-8") as file:
            out = csv.writer(file)  # csv.DictWriter's dialect, as Lightning writes
            out.writerow(columns)
            file.write(self._earlier.text(columns))
            out.writerows([row.get(column, "") for column in columns] for row in self._rows)
        os.replace(partial, target)  # a kill while writing leaves the previous file whole


def write_rows(loggers) -> None:
    """The rows logged until now, on disk: before a checkpoint and at an epoch's start (a run killed
    later resumes from that checkpoint and logs only the rows after it again)."""
    for logger in loggers:
        if isinstance(logger, HistoryCSVLogger):
            logger.write()

"""metrics.csv that survives a kill and a resume: the whole history, as if the run never stopped.

Lightning's CSVLogger deletes metrics.csv when a run starts and writes rows in batches, so a
resumed run loses the first part's rows and a killed run the unflushed ones. Here rows reach the
file at least every ``WRITE_SECONDS``, before each checkpoint is written and at each epoch's
start (``write_rows``: a kill never loses a row that the resumed run would not log again; an
epoch's training row comes after its checkpoint) and at the end; a resumed run starts from the
rows of the file it continues.
Rows that the resumed run logs again (the steps between its checkpoint and the kill replay
exactly) replace the old ones with the same step and columns; the others are kept.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

Row = dict[str, Any]
WRITE_SECONDS = 5.0  # Lightning asks for a write after every row (~0.5 ms each): at most this often


def read_history(path: Path) -> list[Row]:
    """The complete rows of a metrics.csv (none if it is missing); a half-written last line is dropped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # killed while writing a row
    rows = []
    try:
        for row in csv.DictReader(text.splitlines()):
            try:
                step = int(row.get("step") or "")
            except (TypeError, ValueError):
                continue
            cells = {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str) and v}
            rows.append({**cells, "step": step})
    except csv.Error:  # not a CSV file (or a field beyond csv's limit): nothing to keep
        return []
    return rows


def _key(row: Row) -> tuple:
    return row["step"], frozenset(row)


def merge(history: list[Row], rows: list[Row]) -> list[Row]:
    """The old rows that ``rows`` does not log again, then ``rows``."""
    again = {_key(row) for row in rows}
    return [row for row in history if _key(row) not in again] + rows


class HistoryCSVLogger(CSVLogger):
    """A CSVLogger that writes each row at once and keeps a resumed run's earlier rows."""

    def __init__(self, run_dir: Path, history: list[Row]):
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=1)
        self._history = history
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
        if not self._history:  # a fresh run: Lightning appends the new rows
            super().save()
            return
        writer = self.experiment
        self._rows.extend(writer.metrics)
        writer.metrics = []
        rows = merge(self._history, self._rows)
        columns = sorted(set().union(*rows)) if rows else []
        writer.metrics_keys = columns
        target = Path(writer.metrics_file_path)
        partial = target.with_suffix(".csv.partial")
        with open(partial, "w", newline="", encoding="utf-8") as file:
            out = csv.DictWriter(file, fieldnames=columns)
            out.writeheader()
            out.writerows(rows)
        os.replace(partial, target)  # a kill while writing leaves the previous file whole


def write_rows(loggers) -> None:
    """The rows logged until now, on disk: before a checkpoint and at an epoch's start (a run killed
    later resumes from that checkpoint and logs only the rows after it again)."""
    for logger in loggers:
        if isinstance(logger, HistoryCSVLogger):
            logger.write()

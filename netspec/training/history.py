"""metrics.csv that survives a kill and a resume: the whole history, as if the run never stopped.

Lightning's CSVLogger deletes metrics.csv when a run starts and writes rows in batches, so a
resumed run loses the first part's rows and a killed run the unflushed ones. Here every row is
written when it is logged, and a resumed run starts from the rows of the file it continues.
Rows that the resumed run logs again (the steps between its checkpoint and the kill replay
exactly) replace the old ones with the same step and columns; the others are kept.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

Row = dict[str, Any]


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

    @rank_zero_only
    def save(self) -> None:
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

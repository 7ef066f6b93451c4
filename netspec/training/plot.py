"""The PNG of loss, metric and learning-rate curves left in every run directory.

Read at a glance: one colour per split in every panel (train, validation, test), the
learning rate on its own axis, the epoch of the best checkpoint (lowest validation loss)
marked, and the test result drawn where it was measured. Redrawn from the whole
``metrics.csv``, so a resumed run's picture holds its whole history.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from netspec.chart import Key, Line, Note, Panel, draw_chart
from netspec.training.history import history_rows

SPLIT_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
BEST_MONITOR = "val_loss"  # what best.ckpt keeps (ModelCheckpoint(monitor="val_loss", mode="min"))


def curve_series(rows: Iterable[dict]) -> dict[str, list[tuple[float, float]]]:
    """Each logged column as (step, value) points, in step order, empty cells skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "step") or value in ("", None):
                continue
            try:
                series.setdefault(key, []).append((float(row["step"]), float(value)))
            except (TypeError, ValueError):  # a half-written value: leave it out of the picture
                continue
    return {key: sorted(points) for key, points in series.items()}


def split_of(key: str) -> str | None:
    return next((split for split in SPLIT_COLOURS if key.startswith(f"{split}_")), None)


def plot_curves(metrics_csv: Path, out: Path, title: str = "") -> Path | None:
    """Loss, metrics and learning rate against the optimizer step, from the run's CSV."""
    try:
        series = curve_series(history_rows(metrics_csv))
    except csv.Error:  # not a CSV file: no curves
        return None
    if not series:
        return None
    metric_names = sorted({key.split("_", 1)[1] for key in series if split_of(key) and "loss" not in key})
    panels = [_panel(series, name) for name in ["loss", *metric_names]]
    if "lr" in series:
        panels.append(Panel("learning rate", lines=[Line(series["lr"], "#555555")]))
    best = min(series.get(BEST_MONITOR, []), key=lambda p: p[1], default=None)
    for panel in panels:
        panel.xlabel, panel.whole_x = "optimizer step", True
        if best is not None:
            panel.marks.append(best[0])
    if best is not None:
        panels[0].notes.append(Note(best, "best"))
    keys = [Key(SPLIT_NAMES[s], c, marker="o" if s != "test" else "*") for s, c in SPLIT_COLOURS.items()]
    if best is not None:
        keys.append(Key("best checkpoint", "#999999", dotted=True))
    return draw_chart(out, panels, title=title, keys=keys)


def _panel(series: dict, name: str) -> Panel:
    """One quantity (loss, accuracy, …) for every split, each split in its own colour."""
    panel = Panel(name.replace("_", " "))
    if name == "loss":
        keys = {"train": "train_loss_epoch", "val": "val_loss", "test": "test_loss"}
        if "train_loss_step" in series:
            panel.lines.append(Line(series["train_loss_step"], SPLIT_COLOURS["train"], alpha=0.25))
    else:
        keys = {split: f"{split}_{name}" for split in SPLIT_COLOURS}
    for split, key in keys.items():
        if key not in series:
            continue
        points = series[key]
        if split == "test":  # measured once, after training: a star where it was measured
            panel.lines.append(Line(points, SPLIT_COLOURS[split], marker="*", marker_size=17, joined=False))
            panel.notes.append(
                Note(points[-1], f"{points[-1][1]:.4g}", SPLIT_COLOURS[split], (-6, 8), right=True)
            )
        else:
            panel.lines.append(Line(points, SPLIT_COLOURS[split], marker="o"))
    return panel

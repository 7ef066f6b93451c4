"""The PNG of loss and metric curves left in every run directory."""

from __future__ import annotations

import csv
from pathlib import Path


def plot_curves(metrics_csv: Path, out: Path, title: str = "") -> Path | None:
    """Loss (per step and per epoch) and metrics (per epoch) against the step, from Lightning's CSV."""
    if not metrics_csv.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with metrics_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "step") or value in ("", None):
                continue
            series.setdefault(key, []).append((float(row["step"]), float(value)))
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train_loss_step",):
        if key in series:
            steps = series[key]
            ax_loss.plot(*zip(*steps, strict=True), alpha=0.3, label="train loss (step)")
    for key in ("train_loss_epoch", "val_loss"):
        if key in series:
            ax_loss.plot(
                *zip(*series[key], strict=True), marker="o", label=key.replace("_epoch", "").replace("_", " ")
            )
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_title("loss")
    ax_loss.legend()
    for key, points in series.items():
        if key.startswith(("val_", "train_")) and "loss" not in key:
            ax_metric.plot(*zip(*points, strict=True), marker="o", label=key.replace("_", " "))
    ax_metric.set_xlabel("optimizer step (one point per epoch)")
    ax_metric.set_title("metrics")
    if ax_metric.lines:
        ax_metric.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

"""The PNG of loss, metric and learning-rate curves left in every run directory.

Read at a glance: one colour per split in every panel (train, validation, test), the
learning rate on its own axis, the epoch of the best checkpoint (lowest validation loss)
marked, and the test result drawn where it was measured. Redrawn from the whole
``metrics.csv``, so a resumed run's picture holds its whole history.
"""

from __future__ import annotations

from pathlib import Path

from netspec.training.history import read_history

SPLIT_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
BEST_MONITOR = "val_loss"  # what best.ckpt keeps (ModelCheckpoint(monitor="val_loss", mode="min"))
FIGURE_HEIGHT, TOP, BOTTOM = 3.8, 0.72, 0.55  # inches: the figure, the margins above and below the axes
AXES_HEIGHT = FIGURE_HEIGHT - TOP - BOTTOM
LABEL_BELOW = 0.31  # inches from the axes' bottom to the middle of the x-axis label


def curve_series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
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
    series = curve_series(read_history(metrics_csv))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric_names = sorted({key.split("_", 1)[1] for key in series if split_of(key) and "loss" not in key})
    panels = ["loss", *metric_names] + (["lr"] if "lr" in series else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), FIGURE_HEIGHT), squeeze=False)
    best = min(series.get(BEST_MONITOR, []), key=lambda p: p[1], default=None)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "lr":
            ax.plot(*zip(*series["lr"], strict=True), color="#555555")
            ax.set_title("learning rate", y=1.0)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        else:
            _draw_panel(ax, series, panel)
        if best is not None:
            ax.axvline(best[0], color="#999999", linestyle=":", linewidth=1)
        ax.set_xlabel("optimizer step")
        # the axis label at a fixed place (as the titles, set with y=): placing them automatically
        # measures every tick label again, ~30% of the drawing time; the margins are fixed anyway
        ax.xaxis.set_label_coords(0.5, -LABEL_BELOW / AXES_HEIGHT)
        ax.grid(alpha=0.25)
    if best is not None:
        axes[0][0].annotate(
            "best", (best[0], best[1]), textcoords="offset points", xytext=(4, 8), fontsize=8, color="#555555"
        )
    handles = {
        SPLIT_NAMES[s]: plt.Line2D([], [], color=c, marker="o" if s != "test" else "*", markersize=7)
        for s, c in SPLIT_COLOURS.items()
    }
    if best is not None:
        handles["best checkpoint"] = plt.Line2D([], [], color="#999999", linestyle=":")
    fig.legend(handles.values(), handles.keys(), loc="upper right", ncol=len(handles), frameon=False)
    fig.suptitle(title, x=0.01, ha="left")
    # fixed margins, in inches (tight_layout measured every tick label: ~40% of the drawing time)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.62 / width, right=1 - 0.18 / width, bottom=BOTTOM / height, top=1 - TOP / height, wspace=0.32
    )
    fig.savefig(out, dpi=100, pil_kwargs={"compress_level": 1})  # the same pixels; 8% larger, 6 ms faster
    plt.close(fig)
    return out


def _draw_panel(ax, series: dict, panel: str) -> None:
    """One quantity (loss, accuracy, …) for every split, each split in its own colour."""
    if panel == "loss":
        keys = {"train": "train_loss_epoch", "val": "val_loss", "test": "test_loss"}
        if "train_loss_step" in series:
            ax.plot(*zip(*series["train_loss_step"], strict=True), color=SPLIT_COLOURS["train"], alpha=0.25)
    else:
        keys = {split: f"{split}_{panel}" for split in SPLIT_COLOURS}
    for split, key in keys.items():
        if key not in series:
            continue
        steps, values = zip(*series[key], strict=True)
        if split == "test":  # measured once, after training: a star where it was measured
            ax.plot(steps, values, linestyle="", marker="*", markersize=12, color=SPLIT_COLOURS[split])
            ax.annotate(
                f"{values[-1]:.4g}",
                (steps[-1], values[-1]),
                textcoords="offset points",
                xytext=(-6, 8),
                ha="right",
                fontsize=8,
                color=SPLIT_COLOURS[split],
            )
        else:
            ax.plot(steps, values, marker="o", markersize=3, color=SPLIT_COLOURS[split])
    ax.set_title(panel.replace("_", " "), y=1.0)

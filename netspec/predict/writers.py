"""What every output's writer shares: the output directory, a file name per input, the stdout
table, and the stacked ``.npy`` with PNGs and ``overview.png`` of outputs that are pictures.

One writer per output of the network (see :data:`netspec.predict.WRITERS`) takes the batches as
they come; a file that cannot be written is exit 2 naming it.
"""

from __future__ import annotations

import contextlib
import csv
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec.predict.images import IMAGE_SUFFIXES
from netspec.predict.problems import refuse
from netspec.predict.tasks import OutputTask
from netspec.shapes import describe

TABLE_ROWS = 20  # rows of the table printed to stdout; the files have every row
OVERVIEW = 16  # inputs pictured in overview.png


def make_out_dir(path: str | Path) -> Path:
    """``--out``, created and checked to be writable before anything is predicted."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".netspec-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise refuse(
            f"cannot write to the output directory {out}: {exc.strerror or exc}",
            out,
            hint="choose a writable --out directory",
        ) from None
    return out


@contextlib.contextmanager
def writing(out: Path):
    """A file that cannot be written (disk full, permissions) is exit 2 naming it."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or out
        raise refuse(f"cannot write {where}: {exc.strerror or exc}", where, hint="check --out") from None


def safe_name(text: str) -> str:
    """``text`` with every run of characters unsafe in a file name made one ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


@dataclass
class Context:
    """What the writers of one run share: where, how many inputs, their shape and normalization."""

    out: Path
    total: int
    normalization: Any
    input_shape: tuple[int, ...]
    several: bool
    top_k: int

    def stem(self, index: int, label: str) -> str:
        """``00042-cat``: the input's number (sorting like the inputs) and a safe form of its name."""
        width = len(str(max(self.total - 1, 0)))
        name = Path(label).stem if Path(label).suffix.lower() in IMAGE_SUFFIXES else Path(label).name
        name = safe_name(name).strip("._")[:60]
        return f"{index:0{width}d}-{name}" if name else f"{index:0{width}d}"

    def directory(self, task: OutputTask) -> Path:
        """Where an output's files go: ``--out`` itself, or a directory per output when several."""
        if not self.several:
            return self.out
        path = self.out / safe_name(task.output)
        path.mkdir(exist_ok=True)
        return path

    @property
    def image_input(self) -> bool:
        return len(self.input_shape) == 3 and self.input_shape[0] in (1, 3)

    @property
    def stats(self) -> tuple[list[float], list[float]] | None:
        """The normalization as per-channel lists (pictures.image_to_rgb's form), if known."""
        if not isinstance(self.normalization, tuple):
            return None
        return self.normalization[0].flatten().tolist(), self.normalization[1].flatten().tolist()

    def pixels(self, x):
        """A network-unit image [C, H, W] as uint8 [H, W, 3] in the input's pixels: the normalization
        undone, then clipped to [0, 1] (a reconstruction's PNG)."""
        import numpy as np

        if isinstance(self.normalization, tuple):
            mean, std = self.normalization
            x = x * std + mean
        values = np.rint(x.clamp(0, 1).numpy() * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(values, 3 // len(values), axis=0).transpose(1, 2, 0))

    def overview(self, path: Path, inputs: list, column: str, pictures: list) -> Path | None:
        """``overview.png``: the first inputs next to what the network made of them."""
        from netspec.training.pictures import image_to_rgb, save_comparison

        if not pictures:
            return None
        columns = [("input", [image_to_rgb(x, self.stats) for x in inputs])] if self.image_input else []
        return save_comparison(path, [*columns, (column, pictures)])


class Writer(ABC):
    """Writes one output's predictions as batches come; ``close`` returns the files written."""

    def __init__(self, task: OutputTask, context: Context):
        self.task, self.context = task, context
        self.dir = context.directory(task)
        self.files: list[Path] = []
        self.rows: list[list[str]] = []  # the first TABLE_ROWS rows of the stdout table
        self.open_files = contextlib.ExitStack()

    @abstractmethod
    def add(self, index: int, labels: list[str], names: list[str], x, y) -> None:
        """One batch: its first input's number, labels, file stems, inputs and this output."""

    def close(self) -> list[Path]:
        self.open_files.close()
        return self.files

    def title(self) -> str:
        shown = f"{self.task.output} {describe(self.task.shape)}"
        note = "" if self.task.trained else " (not trained by this checkpoint)"
        return f"{shown}: {self.task.task}{note}"

    def report(self) -> str:
        lines = [self.title()]
        if self.rows:
            lines.append(table(self.header(), self.rows))
            if self.context.total > len(self.rows):
                lines.append(f"... {self.context.total - len(self.rows)} more")
        lines += [f"  {path}" for path in self.files]
        return "\n".join(lines)

    def header(self) -> list[str]:
        return []

    def keep(self, row: list[str]) -> None:
        if len(self.rows) < TABLE_ROWS:
            self.rows.append(row)

    def open_csv(self, header: list[str]):
        """predictions.csv, opened until ``close``, with its header written."""
        path = self.dir / "predictions.csv"
        handle = self.open_files.enter_context(path.open("w", newline="", encoding="utf-8"))
        self.files.append(path)
        writer = csv.writer(handle)
        writer.writerow(header)
        return writer


class StackWriter(Writer):
    """An output stacked into one ``.npy`` [N, *shape], written as batches come (memory-mapped);
    when ``pngs``, also one PNG per input in ``picture_dir`` and ``overview.png`` captioned ``column``."""

    column = ""

    def __init__(self, task, context, npy_name: str, dtype, shape, picture_dir: str, pngs: bool):
        import numpy as np

        super().__init__(task, context)
        self.pngs = pngs
        self.picture_dir = self.dir / picture_dir
        if pngs:
            self.picture_dir.mkdir(exist_ok=True)
        self.npy_path = self.dir / npy_name
        self.npy = np.lib.format.open_memmap(
            self.npy_path, mode="w+", dtype=dtype, shape=(context.total, *shape)
        )
        self.files.append(self.npy_path)
        self.inputs: list = []
        self.pictures: list = []

    @property
    def overview_has_room(self) -> bool:
        return len(self.pictures) < OVERVIEW

    def picture(self, x, picture) -> None:
        """An input and the network's picture of it, for ``overview.png``."""
        self.inputs.append(x)
        self.pictures.append(picture)

    def close(self) -> list[Path]:
        self.open_files.close()
        self.npy.flush()
        del self.npy
        if self.pngs:
            self.files.append(self.picture_dir)
            overview = self.context.overview(
                self.dir / "overview.png", self.inputs, self.column, self.pictures
            )
            if overview is not None:
                self.files.append(overview)
        return self.files


def short(label: str, width: int = 40) -> str:
    """A label cut to ``width`` for the stdout table, keeping its end (the file name)."""
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )

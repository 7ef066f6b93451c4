"""Writes a reconstruction or regression output: its values, and reconstructions as pictures."""

from __future__ import annotations

import math

from netspec.predict.tasks import RECONSTRUCTION
from netspec.predict.writers import Context, StackWriter, safe_name, short

CSV_VALUES = 16  # regression outputs with at most this many values also go to predictions.csv


class ValueWriter(StackWriter):
    """Float outputs: <output>.npy stacked [N, *out]; image-shaped reconstructions also as PNGs
    (images/<input>.png, in the input's pixel units) and overview.png; predictions.csv holds
    small outputs' values, or each reconstruction's mean squared error against its input."""

    column = "reconstructed"

    def __init__(self, task, context: Context):
        import numpy as np

        shape = task.shape
        self.reconstruction = task.task == RECONSTRUCTION and shape == context.input_shape
        pngs = self.reconstruction and context.image_input
        super().__init__(task, context, f"{safe_name(task.output)}.npy", np.float32, shape, "images", pngs)
        self.values = math.prod(shape) if math.prod(shape) <= CSV_VALUES else 0
        extra = (["image"] if self.pngs else []) + (["mse"] if self.reconstruction else [])
        self.columns = ["input", *extra, *(f"v{i}" for i in range(self.values))]
        self.shown = 1 + len(extra) + min(self.values, 6)  # columns of the stdout table
        self.csv = self.open_csv(self.columns)

    def header(self) -> list[str]:
        return self.columns[: self.shown]

    def add(self, index, labels, names, x, y) -> None:
        from PIL import Image

        self.npy[index : index + len(labels)] = y.numpy()
        for i, (label, name) in enumerate(zip(labels, names, strict=True)):
            row = [label]
            if self.pngs:
                png = self.picture_dir / f"{name}.png"
                picture = self.context.pixels(y[i])
                image = Image.fromarray(picture)
                (image.convert("L") if self.task.shape[0] == 1 else image).save(png, format="PNG")
                row.append(str(png.relative_to(self.dir)))
                if self.overview_has_room:
                    self.picture(x[i], picture)
            if self.reconstruction:
                row.append(f"{float(((y[i] - x[i]) ** 2).mean()):.6g}")
            row += [f"{v:.6g}" for v in y[i].flatten().tolist()[: self.values]]
            self.csv.writerow(row)
            self.keep([short(row[0]), *row[1 : self.shown]])

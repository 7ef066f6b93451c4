"""Writes a segmentation output: a class-index mask per input."""

from __future__ import annotations

from netspec.predict.writers import Context, StackWriter, short


class MaskWriter(StackWriter):
    """A class-index mask per input: masks/<input>.png (netspec.training.pictures.save_mask_png: a
    palette PNG whose pixel values are the classes), masks.npy [N, *spatial], overview.png and
    predictions.csv with each mask's file and its largest classes' share of the pixels."""

    column = "predicted"

    def __init__(self, task, context: Context):
        import numpy as np

        spatial = task.shape[1:]
        self.classes = task.num_classes or task.shape[0]
        self.dtype = np.uint8 if self.classes <= 256 else np.int32
        pngs = len(spatial) == 2  # 1-D and 3-D masks: masks.npy only
        super().__init__(task, context, "masks.npy", self.dtype, spatial, "masks", pngs)
        self.csv = self.open_csv(["input", "mask", "classes"])

    def header(self) -> list[str]:
        return ["input", "mask", "classes (share of pixels)"]

    def add(self, index, labels, names, x, y) -> None:
        from netspec.training.pictures import mask_to_rgb, save_mask_png

        masks = y.argmax(dim=1)
        self.npy[index : index + len(labels)] = masks.numpy().astype(self.dtype)
        for i, (label, name) in enumerate(zip(labels, names, strict=True)):
            mask = masks[i]
            shares = mask.flatten().bincount(minlength=self.classes).double() / max(1, mask.numel())
            top = sorted(((s, c) for c, s in enumerate(shares.tolist()) if s > 0), reverse=True)[:5]
            text = " ".join(f"{c}:{s:.3f}" for s, c in top)
            shown = ""
            if self.pngs:
                ignore = self.task.ignore_index
                png = save_mask_png(self.picture_dir / f"{name}.png", mask, self.classes, ignore)
                shown = str(png.relative_to(self.dir))
                if self.overview_has_room:
                    self.picture(x[i], mask_to_rgb(mask, self.classes, ignore))
            self.csv.writerow([label, shown, text])
            self.keep([short(label), shown or "masks.npy", text])

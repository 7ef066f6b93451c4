"""``netspec show``: push one input through the network and picture what its layers see.

For each chosen layer (by default every conv and pool layer) a PNG holds a grid of the layer's
output channels, each min-max normalised on its own, as in the tutorials' classic exercise; with
TensorBoard installed the same pictures also go to ``OUT/tensorboard`` as image summaries.
The input is an image file, or a sample of the spec's dataset (``train.data``, default digits).
Imports torch; the pictures are drawn with Pillow (``netspec.chart``). ``netspec build`` never imports this.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netspec
from netspec.data import DataError
from netspec.errors import Problem, SpecError, exception_line
from netspec.shapes import describe
from netspec.spec import Spec

MAX_CHANNELS = 64  # tiles in one picture; the title says how many channels there are
TILE = 125  # pixels a side of a channel's tile (its height follows the map's aspect)
LINE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
# the plugin modules whose layer types are pictured by default: conv and pool families
DEFAULT_FAMILIES = (
    "netspec.layers.conv",
    "netspec.layers.tconv",
    "netspec.layers.pool",
    "netspec.layers.unpool",
)


@dataclass
class ShowResult:
    """What ``show`` wrote: the input picture, one PNG per layer, and the layers it skipped."""

    out_dir: Path
    input_png: Path
    pictures: dict[str, Path] = field(default_factory=dict)  # layer name → PNG
    skipped: dict[str, str] = field(default_factory=dict)  # layer name → why
    tensorboard: Path | None = None


def show(
    source: Any,
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    image: str | Path | None = None,
    sample: int | None = None,
    layers: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    overrides: Sequence[str] = (),
    data_dir: str | Path | None = None,
    log=None,
) -> ShowResult:
    """Write ``input.png`` and one feature-map PNG per chosen layer into ``out_dir``.

    ``image`` (a PNG/JPEG file, converted to the spec's input) and ``sample`` (an index into the
    test split of the spec's dataset) are alternatives; with neither, sample 0 is shown. Without
    ``checkpoint`` the weights are a seeded random init. Every mistake is a :class:`SpecError`.
    """
    if image is not None and sample is not None:
        raise SpecError([Problem("give an image or a sample, not both", "netspec show")])
    log = log or (lambda text: print(text, file=sys.stderr))
    spec = netspec.load(source, input_shape=input_shape, overrides=list(overrides))
    chosen = _chosen_layers(spec, layers)
    if image is not None:
        x, caption = read_image(image, spec.input_shape), f"{Path(image).name}"
    else:
        x, caption = dataset_sample(spec, sample or 0, data_dir)
    model, content, plain = _model(spec, checkpoint, log)
    if image is not None and checkpoint is not None:
        x = _standardised(spec, x, (content, plain, checkpoint), log)
    captured = _capture(model, chosen, x)
    skipped = {name: why for name in chosen if (why := _not_pictured(captured[name]))}
    if layers and len(skipped) == len(chosen):  # named, and not one can be drawn: nothing to show
        raise SpecError(
            [
                Problem(
                    "none of the layers named can be pictured: "
                    + "; ".join(f"{n}: {w}" for n, w in skipped.items()),
                    "--layers",
                    hint="name layers whose outputs are [C, L], [C, H, W] or [C, D, H, W]",
                )
            ]
        )
    out = _out_dir(out_dir)
    result = ShowResult(out, out / "input.png", skipped=skipped)
    images: dict[str, Any] = {}
    picture = input_picture(x, f"input: {caption}  {describe(spec.input_shape)}")
    images["input"] = _save(picture, result.input_png)
    for name in chosen:
        if name in skipped:
            continue
        output, layer = captured[name], spec.layer(name)
        picture = feature_picture(output, f"{name} ({layer.type})")
        path = out / f"{name}.png"
        images[name] = _save(picture, path)
        result.pictures[name] = path
    for name, why in result.skipped.items():
        log(f"netspec: skipped {name}: {why}")
    result.tensorboard = _to_tensorboard(out / "tensorboard", images)
    return result


def _not_pictured(output) -> str | None:
    """Why a layer's output [C, *spatial] gets no picture, if it gets none."""
    shape = describe(tuple(output.shape))
    if output.dim() < 2:
        return f"output {shape} has no spatial dims"
    if output.dim() > 4:
        dims = output.dim() - 1
        return f"output {shape} has {dims} spatial dims; pictures show [C, L], [C, H, W] or [C, D, H, W]"
    if output[0].numel() == 1:
        return f"output {shape} holds one value per channel: nothing to picture"
    return None


def _standardised(spec: Spec, x, loaded, log):
    """An image for a trained network: standardised as its training inputs were (the checkpoint
    records how), as ``netspec predict`` does. ``loaded``: (checkpoint, plain state_dict?, path)."""
    from netspec.predict.inputs import unknown_normalization
    from netspec.predict.model import read_normalization

    content, plain, checkpoint = loaded
    normalization = read_normalization(spec, content, checkpoint, plain)
    if normalization == "unknown":
        log(unknown_normalization(checkpoint, "pictures"))
        return x
    if normalization is None:
        return x
    mean, std = normalization
    return (x - mean) / std


def _chosen_layers(spec: Spec, layers: Sequence[str] | None) -> list[str]:
    """The named layers (checked), or every conv/pool layer by its type's family."""
    names = [layer.name for layer in spec.layers]
    if not layers:
        owners = spec.registry.owners
        chosen = [layer.name for layer in spec.layers if owners.get(layer.type) in DEFAULT_FAMILIES]
        if not chosen:
            spatial = [layer.name for layer in spec.layers if len(layer.output_shape) >= 2]  # [C, ...]
            hint = (
                "name the layers to show with --layers, e.g. --layers " + ",".join(spatial[:2])
                if spatial
                else "its layers' outputs have no spatial dims: there are no feature maps to draw"
            )
            raise SpecError(
                [
                    Problem(
                        f"{spec.name} has no conv or pool layer to show",
                        spec.source,
                        hint=hint,
                    )
                ]
            )
        return chosen
    problems = [spec.no_such_layer(name) for name in layers if name not in names]
    if problems:
        raise SpecError(problems)
    return list(dict.fromkeys(layers))


def read_image(path: str | Path, input_shape: Sequence[int]):
    """An image file as a batch [1, C, H, W] in [0, 1]: grey or RGB as the spec's input, resized."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from netspec.datasets import _common

    path = Path(path)
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise SpecError(
            [
                Problem(
                    f"an image gives [1 or 3, H, W], but the network's input is {describe(input_shape)}",
                    str(path),
                    hint="show a sample of the spec's dataset instead (--sample N)",
                )
            ]
        )
    c, h, w = input_shape
    try:
        with Image.open(path) as opened:
            picture = ImageOps.exif_transpose(opened).convert("L" if c == 1 else "RGB")
    except Exception as exc:  # missing, a directory, not an image, truncated, a decompression bomb
        reason = exception_line(exc)
        raise SpecError(
            [Problem(f"cannot read the image {path}: {reason}", str(path), hint="give a PNG or JPEG file")]
        ) from None
    pixels = torch.from_numpy(np.array(picture, dtype=np.uint8))
    pixels = pixels.unsqueeze(0) if c == 1 else pixels.permute(2, 0, 1)
    return _common.fit_images(pixels.unsqueeze(0), (c, h, w), scale=255.0)


def dataset_sample(spec: Spec, index: int, data_dir: str | Path | None = None):
    """Sample ``index`` of the test split (else validation) of the spec's dataset, batched, and a caption."""
    import torch

    from netspec.data import DataContext
    from netspec.training.config import data_problem, train_settings

    cfg = train_settings(spec, hint="set train.data.name, or pass --image")

    record = spec.registry.datasets[cfg.data.name]
    own = {k: v for k, v in cfg.data.model_dump().items() if k in record.params.model_fields}
    context = DataContext(tuple(spec.input_shape), cfg.seed, Path(data_dir or "data"))
    try:
        splits = record.load(record.params(**own), context)
    except DataError as exc:
        raise SpecError([data_problem(spec, exc)]) from None
    split, which = (splits.test, "test") if splits.test is not None else (splits.val, "validation")
    if not len(split):
        raise SpecError(
            [
                spec.document.problem(
                    f"dataset {cfg.data.name!r} has no test or validation sample to show (both are empty)",
                    ("train", "data"),
                    hint="pass --image, or give the dataset a test_fraction or val_fraction above 0",
                )
            ]
        )
    if not 0 <= index < len(split):
        raise SpecError(
            [
                Problem(
                    f"--sample {index} is out of range: the {which} split of {cfg.data.name!r} has "
                    f"{len(split)} samples",
                    spec.source,
                    hint=f"give --sample 0 to {len(split) - 1}",
                )
            ]
        )
    x, y = split[index]
    x = torch.as_tensor(x, dtype=torch.float32)
    if tuple(x.shape) != tuple(spec.input_shape):
        raise SpecError(
            [
                spec.document.problem(
                    f"dataset {cfg.data.name!r} gives samples of shape {describe(tuple(x.shape))} but the "
                    f"network's input is {describe(spec.input_shape)}",
                    ("input",),
                    hint="pass --image, or choose a dataset that fits",
                )
            ]
        )
    label = f", label {int(y)}" if torch.as_tensor(y).numel() == 1 else ""
    return x.unsqueeze(0), f"{cfg.data.name} {which} sample {index}{label}"


def _model(spec: Spec, checkpoint: str | Path | None, log):
    """The network in eval mode: a checkpoint's weights (read weights-only, checked), else a seeded
    init; and the checkpoint's content and whether it was a plain state_dict (({}, True) without)."""
    import torch

    if checkpoint is None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = spec.build()
        log("netspec: note: no --checkpoint: the weights are a random initialisation (seed 0)")
        return model.eval(), {}, True
    from netspec.training.checkpoint import load_network_weights

    model = spec.build()
    content, plain = load_network_weights(model, checkpoint, spec.source)
    return model.eval(), content, plain


def _capture(model, names: Sequence[str], x) -> dict:
    """Each named layer's output for input ``x`` (first sample): the graph's nodes run one by one
    (a layer_scale is a multiply by its block's γ, with no module to hook)."""
    import torch
    from torch import fx

    from netspec.builder import LAYER

    wanted = set(names)
    captured: dict[str, Any] = {}

    class Capture(fx.Interpreter):
        def run_node(self, node):
            output = super().run_node(node)
            layer = node.meta.get(LAYER)
            if layer in wanted:
                first = output[0] if isinstance(output, tuple | list) else output  # (output, *aux)
                captured[layer] = first.detach()[0].float().cpu()
            return output

    with torch.no_grad():
        Capture(model).run(x)
    return captured


def _out_dir(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot create the output directory {out}: {exc.strerror or exc}", str(out))]
        ) from None
    return out


def _normalise(x):
    """Min-max to [0, 1] over the last dims of each channel; a constant channel becomes 0."""
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    span = (hi - lo).clamp_min(1e-12)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return ((x - lo.view(shape)) / span.view(shape)).where((hi > lo).view(shape), x.new_zeros(()))


def feature_picture(output, label_text: str):
    """A grid of the channels of one sample's layer output [C, *spatial] (1-D lines, 2-D/3-D images)."""
    from PIL import Image

    from netspec.chart import Canvas
    from netspec.colormap import viridis_table

    shape = describe(tuple(output.shape))
    channels = output.shape[0]
    notes = []
    if output.dim() == 4:  # [C, D, H, W]: the middle depth slice
        depth = output.shape[1] // 2
        notes.append(f"middle depth slice {depth} of {output.shape[1]}")
        output = output[:, depth]
    shown = min(channels, MAX_CHANNELS)
    if shown < channels:
        notes.append(f"first {shown} of {channels} channels")
    notes.append("each channel min-max normalised")
    # a NaN or infinite activation (a diverged network) is drawn, not a crash: NaN 0, ±inf the ends
    data = _normalise(output[:shown].float()).nan_to_num(0.0, 1.0, 0.0).clamp(0, 1).numpy()
    cols = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / cols)
    aspect = min(max(data.shape[1] / data.shape[2], 0.25), 4.0) if data.ndim == 3 else 0.6
    tile_w, tile_h = TILE, round(TILE * aspect)
    gap, label, margin, header = 10, 20, 20, 75  # pixels
    grid_w = cols * tile_w + (cols - 1) * gap
    width = max(grid_w + 2 * margin, 450)
    canvas = Canvas(width, header + rows * (label + tile_h) + (rows - 1) * gap + margin)
    canvas.text(width / 2, 12, f"{label_text}  output {shape}", align="mt")
    canvas.text(width / 2, 32, "; ".join(notes), align="mt")
    colours = viridis_table()
    left0 = (width - grid_w) / 2
    for i in range(shown):
        row, col = divmod(i, cols)
        left = left0 + col * (tile_w + gap)
        top = header + row * (label + tile_h + gap) + label
        canvas.text(left + tile_w / 2, top - 3, str(i), size=10, align="mb")
        if data.ndim == 3:
            levels = (data[i] * 255).round().astype("uint8")
            canvas.paste(Image.fromarray(colours[levels]), left, top, tile_w, tile_h)
        else:
            _lines_in_a_box(canvas, [data[i].tolist()], left, top, tile_w, tile_h)
    return canvas


def _lines_in_a_box(canvas, series, left: float, top: float, width: float, height: float) -> None:
    """1-D channels with values in [0, 1] as lines in a framed box (5 % room above and below)."""
    box = [(left, top), (left + width, top), (left + width, top + height), (left, top + height), (left, top)]
    canvas.line(box, (0, 0, 0), 0.8)
    for colour, values in zip(LINE_COLOURS, series, strict=False):
        steps = max(len(values) - 1, 1)
        points = [(left + k / steps * width, top + (1.05 - v) / 1.1 * height) for k, v in enumerate(values)]
        canvas.line(points if len(points) > 1 else [*points, (left + width, points[0][1])], colour, 1.0)


def input_picture(x, title: str):
    """The input sample as a picture (grey, RGB, a line per channel or a middle depth slice)."""
    from PIL import Image

    from netspec.chart import Canvas

    sample = x[0].float()
    lo, hi = sample.min(), sample.max()
    sample = (sample - lo) / (hi - lo) if hi > lo else sample * 0
    sample = sample.nan_to_num(0.0, 1.0, 0.0).clamp(0, 1)
    if sample.dim() == 4:
        sample = sample[:, sample.shape[1] // 2]
        title += f"  middle depth slice {x.shape[2] // 2}"
    if sample.dim() == 3 and sample.shape[0] not in (1, 3):
        title += f"  channel 0 of {sample.shape[0]}"
        sample = sample[:1]
    canvas = Canvas(450, 480)
    canvas.text(225, 14, title, align="mt")
    left, top, width, height = 25, 45, 400, 410  # the box the picture fits into
    if sample.dim() == 3:
        pixels = (sample.permute(1, 2, 0) * 255).round().to(dtype=_uint8()).numpy()
        picture = Image.fromarray(pixels if pixels.shape[2] == 3 else pixels[..., 0])
        scale = min(width / picture.width, height / picture.height)
        w, h = picture.width * scale, picture.height * scale
        canvas.paste(picture.convert("RGB"), left + (width - w) / 2, top + (height - h) / 2, w, h)
    else:
        _lines_in_a_box(canvas, sample.reshape(sample.shape[0], -1)[:8].tolist(), left, top, width, height)
    return canvas


def _uint8():
    import torch

    return torch.uint8


def _save(canvas, path: Path):
    """Write the PNG and return its pixels [H, W, 3] (for TensorBoard)."""
    import numpy as np

    picture = canvas.picture()
    try:
        picture.save(path, format="PNG", compress_level=1)
    except OSError as exc:
        raise SpecError([Problem(f"cannot write {path}: {exc.strerror or exc}", str(path))]) from None
    return np.asarray(picture).copy()


def _to_tensorboard(log_dir: Path, images: dict[str, Any]) -> Path | None:
    """The same pictures as TensorBoard image summaries, when tensorboard is installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for tag, pixels in images.items():
            writer.add_image(f"feature_maps/{tag}", pixels, 0, dataformats="HWC")
    finally:
        writer.close()
    return log_dir

"""``netspec predict``: run a trained network on new inputs and write what it predicts.

Inputs are image files (PNG/JPEG, made grey or RGB, resized and standardised exactly as the
built-in datasets do for training), directories of such images, arrays of samples (``.npy``,
``.npz``, ``.pt``; fed to the network as they are) or a split of the spec's own dataset.

What each output of the network predicts comes from the checkpoint: training records every
output's task (classification, segmentation, reconstruction, regression) with its class count,
and the normalization of the inputs. An older checkpoint, or a plain ``state_dict``, has neither:
the tasks are then inferred from the output shapes and the spec's ``train:`` losses, and stderr
says so. Everything a user can get wrong (an unreadable image, arrays of another sample shape,
a checkpoint of another network, an output directory that cannot be written) is a
:class:`~netspec.errors.SpecError` naming the file: exit 2.

Files are read without trusting them: checkpoints and ``.pt`` weights-only, ``.npy``/``.npz``
without pickle (an ``.npz`` member's shape is checked before it is decompressed), images only up
to :data:`MAX_IMAGE_PIXELS`. Torch, numpy and PIL are imported inside the functions.

The modules: :mod:`.model` (spec, checkpoint, device), :mod:`.tasks` (what each output
predicts), :mod:`.inputs` with :mod:`.images`, :mod:`.arrays` and :mod:`.sources` (what is read),
:mod:`.writers` with :mod:`.classification`, :mod:`.segmentation` and :mod:`.values` (what is
written), :mod:`.limits` and :mod:`.problems`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netspec.heap import frozen_while
from netspec.predict.arrays import ARRAY_SUFFIXES, INPUT_KEYS, read_samples
from netspec.predict.classification import ClassWriter
from netspec.predict.images import IMAGE_SUFFIXES, read_image
from netspec.predict.inputs import SPLITS, batches, gather_sources, notice_scaling
from netspec.predict.limits import MAX_DIR_FILES, MAX_IMAGE_PIXELS, MAX_INPUTS, MAX_TOP_K
from netspec.predict.model import (
    DEVICES,
    build_model,
    forward,
    load_spec,
    pick_device,
    read_normalization,
)
from netspec.predict.problems import WHERE, Log, refuse, to_stderr
from netspec.predict.segmentation import MaskWriter
from netspec.predict.tasks import (
    CLASSIFICATION,
    RECONSTRUCTION,
    REGRESSION,
    SEGMENTATION,
    OutputTask,
    output_tasks,
)
from netspec.predict.values import ValueWriter
from netspec.predict.writers import Context, make_out_dir, writing

WRITERS = {
    CLASSIFICATION: ClassWriter,
    SEGMENTATION: MaskWriter,
    RECONSTRUCTION: ValueWriter,
    REGRESSION: ValueWriter,
}


@dataclass
class PredictResult:
    """What ``predict`` wrote: the directory, how many inputs, every file and the stdout report."""

    out_dir: Path
    count: int
    files: list[Path] = field(default_factory=list)
    report: str = ""


@frozen_while("torch")
def predict(
    source: Any,
    checkpoint: str | Path,
    inputs: Sequence[str | Path] = (),
    *,
    split: str | None = None,
    out_dir: str | Path = "predictions",
    batch_size: int = 64,
    top_k: int = 5,
    device: str = "auto",
    overrides: Sequence[str] = (),
    data_dir: str | Path | None = None,
    log: Log | None = None,
) -> PredictResult:
    """Predict every input with the network of ``source`` and the weights of ``checkpoint``.

    ``inputs``: image files, directories of images, ``.npy``/``.npz``/``.pt`` arrays; ``split``
    (test, val or train) adds that split of the spec's ``train.data``. Writes into ``out_dir``
    (see the README's "Using a trained model") and returns the files and a short report.
    Notices (inferred tasks, unknown normalization) go to ``log`` (default: stderr).
    """
    import torch

    log = log or to_stderr
    if not inputs and split is None:
        raise refuse(
            "no inputs: nothing to predict",
            hint="give image files, directories of images, .npy/.npz/.pt arrays, or --split test",
        )
    if split is not None and split not in SPLITS:
        raise refuse(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    if not 1 <= top_k <= MAX_TOP_K:
        raise refuse(f"--top-k {top_k}: expected 1 to {MAX_TOP_K}")
    if batch_size < 1:
        raise refuse(f"--batch-size {batch_size}: expected a positive number")
    spec, cfg = load_spec(source, overrides, split is not None)
    dev = pick_device(device)
    model, content, plain = build_model(spec, checkpoint)
    tasks = output_tasks(spec, cfg, content, checkpoint, plain, log)
    normalization = read_normalization(spec, content, checkpoint, plain)
    # the pixel limit is read here, at call time, so that it can be lowered (the tests do)
    sources = gather_sources(spec, cfg, inputs, split, normalization, data_dir, MAX_IMAGE_PIXELS)
    notice_scaling(sources, normalization, checkpoint, log)
    total = sum(len(s) for s in sources)
    if total == 0:
        raise refuse("no inputs: the inputs given hold no samples")
    if total > MAX_INPUTS:
        raise refuse(
            f"{total} inputs: more than {MAX_INPUTS} in one run", hint="predict them in several runs"
        )
    _refuse_inputs_in_out(sources, Path(out_dir))
    out = make_out_dir(out_dir)
    context = Context(out, total, normalization, tuple(spec.input_shape), len(tasks) > 1, top_k)
    model = model.to(dev).eval()
    with writing(out), contextlib.ExitStack() as cleanup:  # an error mid-way closes every file
        writers = []
        for task in tasks:
            writers.append(WRITERS[task.task](task, context))
            cleanup.enter_context(writers[-1].open_files)
        index = 0
        nonfinite: dict[str, tuple[int, str]] = {}  # output → (inputs it is NaN or inf for, the first)
        with torch.inference_mode():
            for labels, x in batches(sources, batch_size):
                outs = forward(model, x, dev)
                outs = outs if isinstance(outs, tuple | list) else (outs,)
                names = [context.stem(index + i, label) for i, label in enumerate(labels)]
                for writer in writers:
                    y = outs[writer.task.index].float().cpu()
                    bad = (~torch.isfinite(y).flatten(1).all(dim=1)).nonzero().flatten().tolist()
                    if bad:
                        count, first = nonfinite.get(writer.task.output, (0, labels[bad[0]]))
                        nonfinite[writer.task.output] = (count + len(bad), first)
                    writer.add(index, labels, names, x, y)
                index += len(labels)
        files = [path for writer in writers for path in writer.close()]
    for output, (count, first) in nonfinite.items():
        log(
            f"netspec: warning: output {output!r} is NaN or infinite for {count} of {total} inputs "
            f"(the first: {first}); its predictions for them mean nothing"
        )
    report = "\n\n".join(writer.report() for writer in writers)
    report += f"\n\npredictions for {total} input{'s' if total != 1 else ''} written to {out}"
    return PredictResult(out, total, files, report.strip("\n"))


def _refuse_inputs_in_out(sources: list, out_dir: Path) -> None:
    """An input inside ``--out`` may be one of the files predict writes there (``reconstruction.npy``
    fed back to an autoencoder): it would be cut and rewritten while it is still being read."""
    out = out_dir.resolve()
    for source in sources:
        for path in source.files():
            if path.resolve().is_relative_to(out):
                raise refuse(
                    f"the input {path} is inside the output directory {out_dir}, where the "
                    "predictions could replace it while it is being read",
                    path,
                    hint="write the predictions to another directory (--out)",
                )


__all__ = [
    "ARRAY_SUFFIXES",
    "CLASSIFICATION",
    "DEVICES",
    "IMAGE_SUFFIXES",
    "INPUT_KEYS",
    "MAX_DIR_FILES",
    "MAX_IMAGE_PIXELS",
    "MAX_INPUTS",
    "MAX_TOP_K",
    "RECONSTRUCTION",
    "REGRESSION",
    "SEGMENTATION",
    "SPLITS",
    "WHERE",
    "WRITERS",
    "OutputTask",
    "PredictResult",
    "predict",
    "read_image",
    "read_samples",
]

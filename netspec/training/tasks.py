"""What each output of a network is trained for: its task, loss, target and metrics.

A *head* is one trained output. The ``train:`` section gives defaults for every output
(``task``, ``loss``, ``metrics``, …) and ``train.outputs`` overrides them per output. ``auto``
(the default) reads the task off the output's shape and the data:

- class labels of shape ``L`` and an output ``[classes, *L]``: classification (``L`` empty) or
  segmentation (``L`` = the spatial size, one class per pixel);
- float targets with as many values as the output: regression;
- an output shaped like the input: reconstruction (the target is the input).

Every pairing is checked here, before a module is built, and a wrong one names the output, its
shape, the target's shape and the loss. Torch-free (the losses live in ``losses.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass

from netspec.errors import Problem, SpecError
from netspec.shapes import describe

CLASSIFICATION, SEGMENTATION = "classification", "segmentation"
RECONSTRUCTION, REGRESSION = "reconstruction", "regression"
TASKS = (CLASSIFICATION, SEGMENTATION, RECONSTRUCTION, REGRESSION)
INPUT = "input"  # the target name that stands for the network's input

LOSSES = {  # the first is the default
    CLASSIFICATION: ("cross_entropy",),
    SEGMENTATION: ("cross_entropy", "dice", "cross_entropy_dice"),
    RECONSTRUCTION: ("mse", "l1", "huber", "bce_with_logits"),
    REGRESSION: ("mse", "l1", "huber", "bce_with_logits"),
}
METRICS = {  # (allowed, default)
    CLASSIFICATION: (("accuracy", "top3_accuracy", "top5_accuracy"), ("accuracy",)),
    SEGMENTATION: (("miou", "pixel_accuracy", "dice", "accuracy"), ("miou", "pixel_accuracy")),
    RECONSTRUCTION: (("psnr", "mse", "mae", "r2"), ("psnr",)),
    REGRESSION: (("mae", "mse", "r2"), ("mae", "r2")),
}
CLASS_LOSSES = ("cross_entropy", "dice", "cross_entropy_dice")  # losses that score classes
SHORT = {
    "accuracy": "acc",
    "top3_accuracy": "top3_acc",
    "top5_accuracy": "top5_acc",
    "pixel_accuracy": "pixel_acc",
}


@dataclass(frozen=True)
class Head:
    """One trained output: where it is in the network's outputs and how it is trained."""

    output: str  # the output layer's name
    index: int  # its position in spec.outputs (the module returns a tuple when there are several)
    task: str
    loss: str
    metrics: tuple[str, ...]
    target: str | None  # a named target of the data, INPUT, or None: the data's only target
    weight: float = 1.0
    num_classes: int | None = None
    ignore_index: int | None = None
    class_weights: tuple[float, ...] | None = None
    label_smoothing: float = 0.0
    huber_delta: float = 1.0
    value_range: tuple[float, float] | None = None  # of the targets (PSNR's data range)
    prefix: str = ""  # logged names: "" for a single head, "<output>_" when there are several
    chosen: tuple[str, ...] = ()  # which of task/loss/metrics were picked by default (for the notice)

    def logged(self, stage: str, metric: str) -> str:
        """The name a metric is logged under: val_acc, val_aux_miou, …"""
        return f"{stage}_{self.prefix}{SHORT.get(metric, metric)}"

    def record(self) -> dict:
        """What a checkpoint keeps, so ``predict`` knows the task without the data."""
        return {
            "output": self.output,
            "task": self.task,
            "loss": self.loss,
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
        }


def target_of(head: Head, x, y):
    """A head's target among a batch's or a sample's (input, targets): the input (reconstruction),
    a named target, or the only one."""
    if head.target == INPUT:
        return x
    return y[head.target] if isinstance(y, dict) else y


@dataclass(frozen=True)
class TargetInfo:
    """One target of the data: its per-sample shape and class count (None: float values)."""

    shape: tuple[int, ...]
    num_classes: int | None


def data_targets(splits) -> dict[str | None, TargetInfo]:
    """The data's targets by name (the key None for a dataset with one unnamed target)."""
    import torch

    _, y = splits.train[0]
    if isinstance(y, dict):
        counts = splits.targets or {}
        return {
            name: TargetInfo(tuple(torch.as_tensor(value).shape), counts.get(name))
            for name, value in y.items()
        }
    return {None: TargetInfo(tuple(torch.as_tensor(y).shape), splits.num_classes)}


def resolve_heads(spec, cfg, splits) -> list[Head]:
    """The heads of a run, every pairing checked against the output shapes and the data."""
    targets = data_targets(splits)
    problems: list[Problem] = []
    heads = []
    listed = cfg.outputs or {}
    for name in listed:
        if name not in spec.outputs:
            close = difflib.get_close_matches(name, spec.outputs, n=1)
            problems.append(
                spec.document.problem(
                    f"train.outputs names {name!r}, which is not an output of the network "
                    f"(outputs: {', '.join(spec.outputs)})",
                    ("train", "outputs", name),
                    hint=f"did you mean {close[0]!r}?"
                    if close
                    else "list the network's outputs in `outputs:`",
                )
            )
    trained = [n for n in spec.outputs if n in listed] if listed else list(spec.outputs)
    several = len(trained) > 1
    unfit = []
    for name in trained:
        index = spec.outputs.index(name)
        before = len(problems)
        head = _head(spec, cfg, listed.get(name), name, index, targets, splits, several, problems)
        if head is not None:
            heads.append(head)
        elif len(problems) > before:
            unfit.append(len(problems) - 1)
    if heads and unfit and not listed:  # e.g. `outputs: [c1, fc]` for a summary, trained on labels
        problems = _offer_fewer_outputs(problems, unfit, [head.output for head in heads])
    if not trained and not problems:
        problems.append(
            spec.document.problem("train.outputs lists no output of the network", ("train", "outputs"))
        )
    if heads and not problems and not any(head.weight > 0 for head in heads):
        problems.append(
            spec.document.problem(
                "every trained output has weight 0: the loss would be 0 at every step, nothing would "
                "train, and best.ckpt would be chosen by a loss that never changes",
                ("train", "outputs"),
                hint="give at least one output a positive weight",
            )
        )
    if problems:
        raise SpecError(problems)
    return heads


def _written(document, path) -> bool:
    """Whether the spec's file (not only a --set) writes ``path``: a place to point a problem at."""
    origin, where = document.origin(path)
    return tuple(where) in origin.positions


def _offer_fewer_outputs(problems: list[Problem], unfit: list[int], fitting: list[str]) -> list[Problem]:
    """An output the data cannot train may simply be one to look at: say how to train the others."""
    chosen = ", ".join(f"{name}: {{}}" for name in fitting)
    extra = (
        f"; or train only {', '.join(map(repr, fitting))}: --set 'train.outputs={{{chosen}}}' "
        "(an output left out of train.outputs gets no loss)"
    )
    return [
        dataclasses.replace(p, hint=(p.hint or "") + extra) if i in unfit else p
        for i, p in enumerate(problems)
    ]


def _head(spec, cfg, own, name, index, targets, splits, several, problems) -> Head | None:
    """One output's head, or None after adding what is wrong with it to ``problems``."""

    def setting(key):
        value = getattr(own, key, None) if own is not None else None
        return value if value is not None else getattr(cfg, key, None)

    def where(key):
        if own is not None and getattr(own, key, None) is not None:
            return ("train", "outputs", name, key)
        if getattr(cfg, key, None) is not None:
            return ("train", key)
        if not _written(spec.document, ("train",)) and isinstance(spec.document.data.get("outputs"), list):
            return ("outputs", index)  # no train: section to point at: the output itself
        return ("train",)

    def refuse(message, key, hint):
        problems.append(spec.document.problem(message, where(key), hint=hint))

    out = tuple(spec.output_shapes()[index])
    label = f"output '{name}' {describe(out)}"
    target_name = own.target if own is not None and own.target is not None else None
    task = setting("task")
    task = None if task == "auto" else task
    chosen = []
    as_input = INPUT, TargetInfo(tuple(spec.input_shape), None)
    if target_name == INPUT or (target_name is None and task == RECONSTRUCTION):
        offered = _pick_target(None, name, targets) if target_name is None else as_input
        data_target = offered if isinstance(offered, tuple) else as_input  # for hints only
        target_name, info = as_input
    else:
        found = _pick_target(target_name, name, targets)
        if isinstance(found, str):
            refuse(found, "target", "name one of the dataset's targets in train.outputs.<output>.target")
            return None
        target_name, info = data_target = found
    if task is None:
        chosen.append("task")
        task = _auto_task(out, info, tuple(spec.input_shape), target_name)
        if task is None:
            loss = setting("loss")
            refuse(
                f"{label} does not fit the data's {_target_text(info)}"
                + (f" (loss {loss})" if loss not in (None, "auto") else ""),
                "loss" if setting("loss") not in (None, "auto") else "task",
                _shape_hint(out, info),
            )
            return None
    if task == RECONSTRUCTION and target_name != INPUT:
        target_name, info = as_input
    problem = _task_problem(task, out, info, tuple(spec.input_shape))
    if problem:
        fits = _auto_task(out, data_target[1], tuple(spec.input_shape), data_target[0])
        hint = (
            f"leave task: out ({fits} fits this output and data)"
            if fits and fits != task
            else _shape_hint(out, info)
        )
        refuse(f"task {task}: {label} {problem}", "task", hint)
        return None
    loss = setting("loss")
    if loss in (None, "auto"):
        chosen.append("loss")
        loss = LOSSES[task][0]
    elif loss not in LOSSES[task]:
        refuse(
            f"loss {loss} does not fit {label}: it is trained for {task} on the data's {_target_text(info)}",
            "loss",
            f"{task} takes loss " + ", ".join(LOSSES[task]),
        )
        return None
    allowed, default = METRICS[task]
    metrics = setting("metrics")
    if metrics is None:
        chosen.append("metrics")
        metrics = default
    bad = [m for m in metrics if m not in allowed]
    if bad:
        refuse(
            f"metric {', '.join(bad)} does not fit {task} ({label})",
            "metrics",
            f"{task} has metrics " + ", ".join(allowed),
        )
        return None
    classes = info.num_classes if task in (CLASSIFICATION, SEGMENTATION) else None
    if classes is not None and out[0] != classes:
        problems.append(
            spec.document.problem(
                f"the dataset has {classes} classes but the network outputs {out[0]} "
                f"('{name}' gives {describe(out)})",
                ("layers", spec.layer(name).index),
                layer=spec.layer(name).label,
                hint=f"make '{name}' output {classes} channels/features"
                + (
                    f", or draw {out[0]} classes: --set train.data.num_classes={out[0]}"
                    if cfg.data.name == "synthetic" and len(out) == 1
                    else ""
                ),
            )
        )
        return None
    weights = setting("class_weights")
    if weights is not None and (classes is None or len(weights) != classes):
        refuse(
            f"class_weights has {len(weights)} weights but {label} "
            + (f"scores {classes} classes" if classes is not None else f"is trained for {task}, not classes"),
            "class_weights",
            "give one weight per class" if classes is not None else "leave class_weights out",
        )
        return None
    if weights is not None and not any(weights):  # every class weighted 0: the loss is 0/0 = NaN
        refuse(
            "class_weights are all 0: no class would count, and the loss is NaN from the first step",
            "class_weights",
            "give at least one class a positive weight",
        )
        return None
    uses = {
        "label_smoothing": "cross_entropy" in loss,
        "class_weights": "cross_entropy" in loss,
        "huber_delta": loss == "huber",
        "ignore_index": classes is not None,
    }
    for key, used in uses.items():  # a setting written for this head (or the only head) that does nothing
        written = getattr(own, key, None) is not None if own is not None else False
        if not used and (written or (not several and getattr(cfg, key, None) is not None)):
            refuse(
                f"{key} does nothing for {label}: it is trained for {task} with loss {loss}",
                key,
                f"leave {key} out"
                + (
                    ", or use a cross_entropy loss"
                    if key in ("label_smoothing", "class_weights") and classes
                    else ""
                ),
            )
            return None
    ignore = setting("ignore_index")
    if ignore is None and classes is not None:
        ignore = splits.ignore_index
    return Head(
        output=name,
        index=index,
        task=task,
        loss=loss,
        metrics=tuple(dict.fromkeys(metrics)),
        target=target_name,
        weight=own.weight if own is not None else 1.0,
        num_classes=classes,
        ignore_index=ignore if classes is not None else None,
        class_weights=tuple(weights) if weights is not None else None,
        label_smoothing=setting("label_smoothing") or 0.0,
        huber_delta=setting("huber_delta") or 1.0,
        prefix=f"{name}_" if several else "",
        chosen=tuple(chosen),
    )


def _pick_target(wanted: str | None, output: str, targets: dict) -> tuple[str | None, TargetInfo] | str:
    """(name, info) of the target an output is trained on, or the reason there is none."""
    named = [n for n in targets if n is not None]
    if wanted is not None:
        if wanted in targets:
            return wanted, targets[wanted]
        have = ", ".join(named) if named else "one unnamed target"
        return f"target {wanted!r} is not in the data (it has {have}; `input` reconstructs the input)"
    if None in targets:
        return None, targets[None]
    if output in targets:
        return output, targets[output]
    if len(named) == 1:
        return named[0], targets[named[0]]
    return f"output '{output}' has no target: the data has the targets {', '.join(named)}"


def _auto_task(out, info: TargetInfo, input_shape, target_name) -> str | None:
    if target_name == INPUT:
        return RECONSTRUCTION
    if info.num_classes is not None:
        if len(out) >= 1 and out[1:] == info.shape:
            return SEGMENTATION if info.shape else CLASSIFICATION
    elif math.prod(out) == math.prod(info.shape):
        return REGRESSION
    if out == input_shape:
        return RECONSTRUCTION
    return None


def _task_problem(task: str, out, info: TargetInfo, input_shape) -> str | None:
    """Why ``task`` cannot train this output on this target (None: it can)."""
    if task in (CLASSIFICATION, SEGMENTATION):
        if info.num_classes is None:
            return f"needs class labels, but the data gives {_target_text(info)}"
        if task == CLASSIFICATION and info.shape:
            return (
                f"needs one label per sample, but the data gives {_target_text(info)} (that is segmentation)"
            )
        if task == SEGMENTATION and not info.shape:
            return "needs a label per pixel, but the data gives one class per sample (that is classification)"
        if out[1:] != info.shape:
            want = "[classes" + "".join(f", {s}" for s in info.shape) + "]"
            return f"should be {want} to score {_target_text(info)}"
        return None
    if task == RECONSTRUCTION:
        return None if out == input_shape else f"should have the input's shape {describe(input_shape)}"
    if info.num_classes is not None:
        return f"needs float targets, but the data gives {_target_text(info)}"
    if math.prod(out) != math.prod(info.shape):
        return f"should have as many values as the targets {describe(info.shape)}"
    return None


def _target_text(info: TargetInfo) -> str:
    if info.num_classes is None:
        return f"float targets of shape {describe(info.shape)}"
    if not info.shape:
        return f"class labels ({info.num_classes} classes, one per sample)"
    return f"class masks of shape {describe(info.shape)} ({info.num_classes} classes)"


def _shape_hint(out, info: TargetInfo) -> str:
    if info.num_classes is not None and not info.shape:
        return (
            "end the network with a layer giving one score per class (e.g. global_avgpool + linear), "
            "or train it on float targets with loss: mse"
        )
    if info.num_classes is not None:
        return f"end the network with {info.num_classes} channels at the masks' size {describe(info.shape)}"
    # one float per sample ([N] targets) is an output of one value: [1], not the unbuildable []
    shape = info.shape or (1,)
    return f"make the output {describe(shape)}, or set task: reconstruction to reproduce the input"


def notice(heads: list[Head], dataset: str) -> str:
    """One line per head saying what it is trained for, and which parts were defaults."""
    lines = []
    for head in heads:
        what = f"{head.task}, loss {head.loss}, metrics {', '.join(head.metrics)}"
        if head.target == INPUT:
            target = "inputs as targets"
        elif head.target:
            target = f"target {head.target!r}"
        else:
            target = "labels" if head.num_classes is not None else "targets"
        if head.num_classes is not None:
            target += f" ({head.num_classes} classes" + (
                f", ignoring label {head.ignore_index})" if head.ignore_index is not None else ")"
            )
        weight = f", weight {head.weight:g}" if len(heads) > 1 else ""
        auto = f" (chosen from the shapes: {', '.join(head.chosen)})" if head.chosen else ""
        lines.append(f"  output '{head.output}': {what}; trained on {dataset} {target}{weight}{auto}")
    return "netspec: training\n" + "\n".join(lines)


def logged_metrics(heads: list[Head]) -> list[str]:
    """Every metric a run logs (what early stopping may monitor)."""
    names = ["val_loss", "train_loss_epoch"]
    for head in heads:
        if head.prefix:
            names += [f"val_{head.prefix}loss", f"train_{head.prefix}loss"]
        names += [head.logged(stage, m) for stage in ("val", "train") for m in head.metrics]
    return names


def heads_from_checkpoint(records) -> list[dict] | None:
    """The heads a checkpoint recorded (None when it predates them or is malformed)."""
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and "task" in r and isinstance(r.get("output"), str) for r in records
    ):
        return None
    return [r for r in records if r.get("task") in TASKS]

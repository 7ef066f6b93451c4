"""What each output of the network predicts: as the checkpoint recorded it, else inferred.

Training records every output's task with its class count; an older checkpoint, or a plain
``state_dict``, has none, so the tasks come from the output shapes and the spec's ``train:``
losses, and a notice says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from netspec.predict.problems import Log, refuse
from netspec.shapes import describe
from netspec.spec import Spec
from netspec.training.tasks import (  # torch-free: what training records is what predict reads
    CLASS_LOSSES,
    CLASSIFICATION,
    RECONSTRUCTION,
    REGRESSION,
    SEGMENTATION,
)

OF_THIS_SPEC = "use a checkpoint of a run of this spec (its spec.yaml is in the run directory)"


@dataclass(frozen=True)
class OutputTask:
    """What one output of the network predicts."""

    output: str
    index: int  # position in spec.outputs
    shape: tuple[int, ...]
    task: str
    num_classes: int | None = None
    ignore_index: int | None = None
    loss: str | None = None
    trained: bool = True  # False: the checkpoint trained no loss on it (its values are written raw)


def output_tasks(spec: Spec, cfg, content: dict, path, plain: bool, log: Log) -> list[OutputTask]:
    """Each output's task: as the checkpoint recorded it, else inferred (with a notice)."""
    from netspec.training.tasks import heads_from_checkpoint

    shapes = [tuple(s) for s in spec.output_shapes()]
    records = heads_from_checkpoint(content.get("netspec_heads"))
    if records is not None:
        return _recorded_tasks(spec, shapes, records, path, log)
    tasks = [_inferred_task(spec, cfg, name, i, shapes[i]) for i, name in enumerate(spec.outputs)]
    what = "is a plain state_dict" if plain else "records no tasks (it predates them)"
    inferred = "; ".join(f"{t.output} {describe(t.shape)}: {t.task}" for t in tasks)
    log(f"netspec: note: {path} {what}: inferred from the output shapes and train: losses: {inferred}")
    return tasks


def _recorded_tasks(spec: Spec, shapes, records: list[dict], path, log: Log) -> list[OutputTask]:
    by_name = {r.get("output"): r for r in records}
    foreign = [str(name) for name in by_name if name not in spec.outputs]
    if foreign:
        raise refuse(
            f"checkpoint {path} was trained for the outputs {', '.join(foreign)}, which the network of "
            f"{spec.source} does not have (outputs: {', '.join(spec.outputs)})",
            path,
            hint=OF_THIS_SPEC,
        )
    tasks, untrained = [], []
    for index, name in enumerate(spec.outputs):
        shape, record = shapes[index], by_name.get(name)
        if record is None:
            untrained.append(name)
            tasks.append(OutputTask(name, index, shape, REGRESSION, trained=False))
            continue
        task, classes = record["task"], record.get("num_classes")
        if task in (CLASSIFICATION, SEGMENTATION):
            rank_fits = (len(shape) == 1) == (task == CLASSIFICATION)
            if not (isinstance(classes, int) and classes == shape[0] and rank_fits):
                raise refuse(
                    f"checkpoint {path} trained output '{name}' for {task} with {classes} classes, but "
                    f"the network of {spec.source} gives {describe(shape)}",
                    path,
                    hint=OF_THIS_SPEC,
                )
        ignore = record.get("ignore_index")
        loss = record.get("loss")
        tasks.append(
            OutputTask(
                name,
                index,
                shape,
                task,
                classes if task in (CLASSIFICATION, SEGMENTATION) else None,
                ignore if isinstance(ignore, int) and not isinstance(ignore, bool) else None,
                loss if isinstance(loss, str) else None,
            )
        )
    if untrained:
        log(
            f"netspec: note: {path} trained no loss on {', '.join(untrained)}: "
            "their values are written as they are (.npy)"
        )
    return tasks


def _inferred_task(spec: Spec, cfg, name: str, index: int, shape: tuple[int, ...]) -> OutputTask:
    """An output's task from its shape and the spec's ``train:`` loss/task (for old checkpoints).

    An unset loss counts as cross_entropy, the default before checkpoints recorded their tasks,
    except on an output shaped like the input (an autoencoder's).
    """
    own = (getattr(cfg, "outputs", None) or {}).get(name)

    def setting(key):  # the output's own value, else the run's (like training's heads)
        value = getattr(own, key, None)
        return value if value is not None else getattr(cfg, key, None)

    loss, task = setting("loss"), setting("task")
    loss = None if loss == "auto" else loss
    like_input = shape == tuple(spec.input_shape)
    if task in (None, "auto"):
        if like_input and loss in (None, "mse", "l1", "huber"):
            task = RECONSTRUCTION
        elif len(shape) == 1 and loss in (None, "cross_entropy", "bce_with_logits"):
            task = CLASSIFICATION
        elif len(shape) >= 2 and loss in (None, *CLASS_LOSSES):
            task = SEGMENTATION
        else:
            task = REGRESSION
    elif task in (CLASSIFICATION, SEGMENTATION) and (len(shape) == 1) != (task == CLASSIFICATION):
        task = REGRESSION  # a class task this shape cannot have: its values, as they are
    classes = shape[0] if task in (CLASSIFICATION, SEGMENTATION) else None
    ignore = setting("ignore_index") if classes else None
    return OutputTask(name, index, shape, task, classes, ignore, loss)

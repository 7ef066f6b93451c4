"""Using a trained model: continue a finished run, start from other weights, freeze layers.

- **Continue** (``--resume RUN_DIR`` with a changed spec): the spec may differ from the run's
  ``spec.yaml`` only in :data:`CONTINUABLE` (when to stop, how progress shows, and bookkeeping
  that does not touch training); anything else is refused, naming each differing path with its
  old and new value. A limit below what the run has already done is refused too.
- **Init** (``--init FILE`` or ``train.init:``): tensors of the same name and shape are copied
  from a netspec ``.ckpt`` or a plain ``state_dict`` file (torchvision's ``resnet18-….pth``),
  read weights-only; the rest is reported, and a file of which nothing fits is an error.
- **Freeze** (``train.freeze:``): the named layers, block instances or parameters get
  ``requires_grad=False`` (the optimizer leaves them out) and their batch-norm layers keep
  their running statistics (eval mode, whatever ``model.train()`` says).
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netspec.errors import Problem, SpecError, exception_line

# What a continued run may change. The stopping criteria and the progress display; the run
# directory is --resume's, the weights come from last.ckpt (not train.init), and `expect:`
# contracts are checked by the build, not the run.
CONTINUABLE = (
    "train.max_epochs",
    "train.max_steps",
    "train.early_stopping",
    "train.progress",
    "train.loop",
    "train.run_dir",
    "train.init",
    "expect",
)
SHOWN = 12  # differing paths named in a refusal (the count says how many there are)
LISTED = 8  # names listed per kind in the --init report
_ABSENT = object()

ProblemAt = Callable[..., Problem]  # (message, hint=..., details=...) -> a located Problem


# --- continue a run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Continuation:
    """A resumed run: its checkpoint, how far it got, and the ``train:`` it was started with."""

    checkpoint: Path
    epochs_done: int
    steps_done: int
    saved_train: dict | None  # None: the run directory has no spec.yaml

    def limits_changed(self, cfg) -> bool:
        if self.saved_train is None:
            return False
        return (self.saved_train.get("max_epochs"), self.saved_train.get("max_steps")) != (
            cfg.max_epochs,
            cfg.max_steps,
        )


def differences(old: Any, new: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """Every leaf path where ``old`` and ``new`` (plain YAML data) differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            found += differences(old.get(key, _ABSENT), new.get(key, _ABSENT), (*path, key))
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else _ABSENT
            b = new[i] if i < len(new) else _ABSENT
            found += differences(a, b, (*path, i))
        return found
    if type(old) is type(new) and old == new:
        return []
    return [(path, old, new)]


def dotted(path: tuple) -> str:
    return ".".join(map(str, path))


def show_value(value: Any, limit: int = 60) -> str:
    """A value as the user would write it in YAML, on one line."""
    if value is _ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a path: what tells two apart is often its end
        text = value
        limit = max(limit, 400)
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        import yaml

        text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _continuable(path: tuple) -> bool:
    name = dotted(path)
    return any(name == allowed or name.startswith(allowed + ".") for allowed in CONTINUABLE)


def _label(path: tuple, old: dict, new: dict) -> str:
    """``layers.3.out_channels (layer 'c3')``: a layer's name next to its index."""
    text = dotted(path)
    if len(path) > 1 and path[0] == "layers" and isinstance(path[1], int):
        for spec in (new, old):
            layers = spec.get("layers") if isinstance(spec, dict) else None
            if isinstance(layers, list) and path[1] < len(layers) and isinstance(layers[path[1]], dict):
                name = layers[path[1]].get("name")
                if name:
                    return f"{text} (layer '{name}')"
    return text


def continuation(
    spec, old: dict | None, new: dict, checkpoint: dict, ckpt_path: Path, saved: Path
) -> Continuation:
    """Check that ``new`` (the resolved spec) may continue the run whose spec was ``old``."""
    if old is not None:
        changed = [(p, a, b) for p, a, b in differences(old, new) if not _continuable(p)]
        if changed:
            lines = [
                f"{_label(p, old, new)}: {show_value(a)} → {show_value(b)}" for p, a, b in changed[:SHOWN]
            ]
            if len(changed) > SHOWN:
                lines.append(f"… and {len(changed) - SHOWN} more")
            allowed = ", ".join(CONTINUABLE[:4]) + " (and the bookkeeping " + ", ".join(CONTINUABLE[4:]) + ")"
            raise SpecError(
                [
                    Problem(
                        f"the spec differs from the one this run was started with ({saved}) in "
                        f"{len(changed)} value{'s' if len(changed) != 1 else ''}; a resumed run may change "
                        f"only {allowed}",
                        spec.source,
                        hint=f"resume with the run's own spec: `netspec train {saved} --resume "
                        f"{ckpt_path.parent.parent}` (plus --set for the limits), or start a new run "
                        "from its weights with --init",
                        details=tuple(lines),
                    )
                ]
            )
    from netspec.training.resumable import counters

    epochs, steps = counters(checkpoint, ckpt_path)
    cfg = spec.model.train
    _same_optimizer_as_saved(spec, cfg, checkpoint, ckpt_path, saved)
    if cfg.max_steps is not None and cfg.max_steps < steps:
        raise SpecError(
            [
                spec.document.problem(
                    f"max_steps {cfg.max_steps} is fewer than the {steps} steps the run has already done",
                    ("train", "max_steps"),
                    hint=f"to continue the run, raise train.max_steps above {steps}",
                )
            ]
        )
    if cfg.max_steps is None and cfg.max_epochs < epochs:
        raise SpecError(
            [
                spec.document.problem(
                    f"max_epochs {cfg.max_epochs} is fewer than the {epochs} epochs the run has already done",
                    ("train", "max_epochs"),
                    hint=f"to continue the run, raise train.max_epochs above {epochs}",
                )
            ]
        )
    train = old.get("train") if isinstance(old, dict) else None
    return Continuation(ckpt_path, epochs, steps, train if isinstance(train, dict) else None)


def _same_optimizer_as_saved(spec, cfg, checkpoint: dict, ckpt_path: Path, saved: Path) -> None:
    """A resumed run's optimizer comes back from last.ckpt, rate and decay included: a spec.yaml
    edited to another rate would claim one the run never used (the edit resumed in silence)."""
    states = checkpoint.get("optimizer_states")
    groups = (
        states[0].get("param_groups")
        if isinstance(states, list) and states and isinstance(states[0], dict)
        else None
    )
    if not isinstance(groups, list) or not groups or not isinstance(groups[0], dict):
        return
    group = groups[0]
    # the rate the schedule started from (LambdaLR keeps it), else the optimizer's own
    trained = {"lr": group.get("initial_lr", group.get("lr")), "weight_decay": group.get("weight_decay")}
    wanted = {"lr": cfg.optimizer.lr, "weight_decay": cfg.optimizer.weight_decay}
    differ = [
        f"train.optimizer.{key}: {wanted[key]:g} in the spec, {trained[key]:g} in {ckpt_path}"
        for key in wanted
        if isinstance(trained[key], (int, float))
        and not math.isclose(trained[key], wanted[key], rel_tol=1e-9)
    ]
    if differ:
        raise SpecError(
            [
                spec.document.problem(
                    "the run trained with another optimizer setting than the spec says, and a resumed run "
                    "continues with the checkpoint's",
                    ("train", "optimizer"),
                    hint=f"resume with the spec the run started with ({saved}, as netspec wrote it), or "
                    "start a new run from its weights with --init",
                    details=tuple(differ),
                )
            ]
        )


def counted(n: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def continuation_notes(cont: Continuation, cfg, run_dir: Path, totals: tuple[int, int]) -> list[str]:
    """What a continued run will do differently from the run it continues (for stderr)."""
    notes = []
    done = f"{counted(cont.epochs_done, 'epoch')} ({counted(cont.steps_done, 'step')})"
    if cfg.max_steps is not None or (cont.saved_train or {}).get("max_steps") is not None:
        # stopped by a step count, maybe mid-epoch: Lightning then counts that epoch as done
        done = counted(cont.steps_done, "step")
    limit = f"max_steps {cfg.max_steps}" if cfg.max_steps is not None else f"max_epochs {cfg.max_epochs}"
    finished = (
        cont.steps_done >= cfg.max_steps if cfg.max_steps is not None else cont.epochs_done >= cfg.max_epochs
    )
    if cont.limits_changed(cfg):
        notes.append(f"continuing {run_dir} after {done} up to {limit}")
    elif finished:
        notes.append(
            f"nothing left to train: {run_dir} has done {done}; raise {limit.split()[0]} to continue"
        )
    else:  # an interrupted run, picked up where its last checkpoint left it
        notes.append(f"resuming {run_dir} after {done} up to {limit}")
    old_total, new_total = totals
    sched = cfg.scheduler
    if old_total != new_total and sched.name in ("cosine", "onecycle"):
        from netspec.training.module import lr_lambda

        lr, step = cfg.optimizer.lr, cont.steps_done
        before = lr * lr_lambda(sched, lr, old_total)(step)
        after = lr * lr_lambda(sched, lr, new_total)(step)
        notes.append(
            f"the {sched.name} schedule is recomputed for {new_total} steps (was {old_total}): "
            f"at step {step} the learning rate goes from {before:.3g} to {after:.3g}"
        )
    return notes


# --- initial weights -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InitWeights:
    """Where to take initial weights from, and where that was said (for located errors)."""

    path: Path
    problem: ProblemAt


def resolve_init(spec, cli_path: str | Path | None) -> InitWeights | None:
    """``--init`` (relative to the working directory) or ``train.init`` (relative to the file it
    is written in; to the working directory when it came from ``--set``)."""
    if cli_path is not None:
        given = str(cli_path)
        return InitWeights(
            Path(os.path.abspath(Path(cli_path).expanduser())),
            lambda message, **kw: Problem(message, given, **kw),
        )
    raw = spec.model.train.init
    if raw is None:
        return None
    path = Path(raw).expanduser()
    document = spec.document
    where = ("train", "init")
    if not path.is_absolute() and not any(where[: len(p)] == p for p in document.overrides):
        origin, _ = document.origin(where)
        written_in = Path(origin.source)
        if written_in.is_file():
            path = written_in.parent / path
    return InitWeights(
        Path(os.path.abspath(path)), lambda message, **kw: document.problem(message, where, **kw)
    )


def read_weights(init: InitWeights) -> dict:
    """The tensors of a netspec checkpoint (``model.`` keys of its ``state_dict``) or of a plain
    ``state_dict`` file, loaded weights-only: a file that would run code is refused, not run."""
    import torch

    from netspec.training.checkpoint import run_checkpoint

    path = run_checkpoint(init.path)  # a run directory: its best.ckpt
    hint = "pass a netspec .ckpt or a file written by torch.save(model.state_dict(), path)"
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise SpecError([init.problem(f"initial weights {path} {what}", hint=hint)])
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip/EOF errors, ...: not a weights file
        reason = exception_line(exc)
        raise SpecError(
            [
                init.problem(
                    f"{path} is not a weights file (refused by the weights-only loader): {reason}", hint=hint
                )
            ]
        ) from None
    state = content
    if isinstance(content, dict):
        for key in ("state_dict", "model"):  # Lightning/netspec checkpoints; {"model": ..., "optimizer": ...}
            if isinstance(content.get(key), dict):
                state = content[key]
                break
    if isinstance(state, dict) and any(isinstance(k, str) and k.startswith("model.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    tensors = (
        {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise SpecError([init.problem(f"{path} holds no state_dict of named tensors", hint=hint)])
    from netspec.filetensors import layout_problem

    for name, tensor in tensors.items():  # sparse, meta, quantized: load_state_dict fails on them (exit 1)
        problem = layout_problem(tensor)
        if problem:
            raise SpecError([init.problem(f"{path} holds {problem} as {name}", hint=hint)])
    return tensors


def _listed(names: list[str]) -> str:
    more = f", … and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def load_init(model, init: InitWeights, spec_source: str) -> str:
    """Copy the file's tensors of matching name and shape into ``model``; returns the report.

    Nothing matching is an error (exit 2). Batch-norm ``num_batches_tracked`` counters missing
    from the file (torchvision's files have none) are not reported: they start at 0.
    """
    state = read_weights(init)
    expected = model.state_dict()
    from netspec.training.checkpoint import not_floats

    wrong_type = not_floats(state, expected)
    matched = {
        k: v
        for k, v in state.items()
        if k in expected and k not in wrong_type and tuple(v.shape) == tuple(expected[k].shape)
    }
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {list(state[k].shape)}, network {list(expected[k].shape)}"
        for k in expected
        if k in state and k not in matched and k not in wrong_type
    ]
    types = [f"{k}: file {dtype}" for k, dtype in wrong_type.items()]
    kept = "" if not matched else ", left as initialised"
    details = []
    if missing:
        details.append(f"not in the file{kept} ({len(missing)}): {_listed(missing)}")
    if shapes:
        details.append(f"shape differs{kept} ({len(shapes)}): {_listed(shapes)}")
    if types:
        details.append(f"non-float values for float weights{kept} ({len(types)}): {_listed(types)}")
    if unexpected:
        ignored = "" if not matched else ", ignored"
        details.append(f"in the file, not in the network{ignored} ({len(unexpected)}): {_listed(unexpected)}")
    if not matched:
        raise SpecError(
            [
                init.problem(
                    f"no tensor of {init.path} fits the network of {spec_source} "
                    f"({len(state)} in the file, {len(expected)} in the network)",
                    hint="names must match the network's (`netspec build SPEC` lists the layers; "
                    "a block instance's parameters are named like layer1.0.conv1.weight)",
                    details=tuple(details),
                )
            ]
        )
    model.load_state_dict(matched, strict=False)
    head = f"initial weights from {init.path}: {len(matched)} of {len(expected)} tensors loaded"
    return "\n".join([head, *(f"  {line}" for line in details)])


# --- freezing ------------------------------------------------------------------------------------


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _keeps_running_stats(module) -> bool:
    from torch.nn.modules.batchnorm import _NormBase

    return isinstance(module, _NormBase) and module.track_running_stats


def _train_as_eval(self, mode: bool = True):
    """``train()`` of a frozen batch-norm layer: it stays in eval mode (keeps its statistics)."""
    import torch

    return torch.nn.Module.train(self, False)


def freeze(model, names: list[str], problem_at: Callable[[int, str, str], Problem]) -> str:
    """Freeze the parameters under ``names`` (layer, block instance or parameter names); their
    batch-norm layers stay in eval mode. Unknown names are located errors with close matches."""
    modules = {name: m for name, m in model.named_modules() if name}
    params = dict(model.named_parameters())
    problems, chosen, norms = [], set(), set()
    for i, name in enumerate(names):
        hit = [p for p in params if _under(p, name)]
        stats = [m for m in modules if _under(m, name) and _keeps_running_stats(modules[m])]
        if name not in modules and name not in params:
            close = difflib.get_close_matches(name, [*modules, *params], n=3, cutoff=0.6)
            top = [n for n in modules if "." not in n]
            hint = (
                "did you mean " + ", ".join(repr(c) for c in close) + "?"
                if close
                else "layers: " + ", ".join(top[:12]) + (", …" if len(top) > 12 else "")
            )
            problems.append(problem_at(i, f"freeze: no layer or parameter {name!r} in the network", hint))
        elif not hit and not stats:
            problems.append(
                problem_at(i, f"freeze: {name!r} has no parameters to freeze", "name a layer with weights")
            )
        chosen.update(hit)
        norms.update(stats)
    if not problems and params and len(chosen) == len(params):
        problems.append(
            problem_at(
                -1,
                "freeze: every parameter of the network is frozen; nothing would train",
                "leave some layers out of train.freeze (e.g. the last one)",
            )
        )
    if problems:
        raise SpecError(problems)
    for name in chosen:
        params[name].requires_grad_(False)
    for name in norms:
        module = modules[name]
        module.train = types.MethodType(_train_as_eval, module)
        module.eval()
    if norms:  # intended (fit and tune put the warning filters back afterwards)
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode at the start of training.*")
    count = sum(params[n].numel() for n in chosen)
    total = sum(p.numel() for p in params.values())
    extra = f"; {len(norms)} batch-norm layer{'s' if len(norms) != 1 else ''} in eval mode" if norms else ""
    return f"frozen: {', '.join(names)} ({count:,} of {total:,} parameters{extra})"


# --- both, for fit and tune ----------------------------------------------------------------------


def prepare_weights(spec, model, init: InitWeights | None, *, rank_zero: bool = True) -> None:
    """Load ``init`` into ``model``, then freeze ``train.freeze``; report both on stderr."""
    notes = []
    if init is not None:
        notes.append(load_init(model, init, spec.source))
    names = spec.model.train.freeze
    if names:
        where = ("train", "freeze")

        def problem_at(i: int, message: str, hint: str) -> Problem:
            return spec.document.problem(message, (*where, i) if i >= 0 else where, hint=hint)

        notes.append(freeze(model, list(names), problem_at))
    if rank_zero:
        for note in notes:
            print(f"netspec: note: {note}", file=sys.stderr)


def early_stopping_callback(es):
    """Lightning's EarlyStopping, except that a resumed run keeps the spec's patience (Lightning
    would restore the checkpoint's, so raising it to continue an early-stopped run did nothing)."""
    from pytorch_lightning.callbacks import EarlyStopping

    class SpecEarlyStopping(EarlyStopping):
        def _generate_state_key(self, **kwargs: Any) -> str:
            return f"EarlyStopping{kwargs!r}"  # the plain callback's key: checkpoints of either load

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            patience = self.patience
            super().load_state_dict(state_dict)
            self.patience = patience

    return SpecEarlyStopping(monitor=es.monitor, patience=es.patience, mode=es.mode, min_delta=es.min_delta)

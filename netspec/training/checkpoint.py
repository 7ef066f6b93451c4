"""Reading checkpoints without trusting them: weights only, and checked against the network.

A ``.ckpt`` is a pickle, and unpickling runs whatever code the file names. netspec therefore
loads every checkpoint with ``torch.load(weights_only=True)``: only tensors, plain containers,
numbers and strings come back, plus the globals in :data:`ALLOWED_GLOBALS`. The checkpoints
netspec writes hold nothing else (Lightning's loop, callback, optimizer and scheduler states are
plain dicts; tests/test_checkpoint.py loads a checkpoint of every feature this way), so the list is
empty: a file that needs more is not a netspec checkpoint and is refused, never executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netspec.errors import Problem, SpecError, exception_line

# Globals a netspec checkpoint may name beyond what weights_only allows by default: none.
ALLOWED_GLOBALS: tuple = ()
HINT = "pass a .ckpt from a netspec run's checkpoints/ directory"


def _refuse(path: Path, message: str, hint: str = HINT) -> SpecError:
    return SpecError([Problem(message, str(path), hint=hint)])


def run_checkpoint(path: Path) -> Path:
    """A run directory stands for its best checkpoint (``RUN/checkpoints/best.ckpt``)."""
    best = path / "checkpoints" / "best.ckpt"
    return best if path.is_dir() and best.is_file() else path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict with a ``state_dict`` of tensors, loaded weights-only.

    A run directory means its ``checkpoints/best.ckpt``. Raises :class:`SpecError` naming the file
    for anything else: a missing file, another directory,
    random bytes, a pickle that would run code, or a dict without a tensor ``state_dict``.
    """
    import torch

    path = run_checkpoint(Path(path))
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise _refuse(path, f"checkpoint {path} {what}")
    if not _looks_saved_by_torch(path):  # torch's own message would be a byte value ("101")
        raise _refuse(
            path,
            f"{path} is not a netspec checkpoint: it is not a file torch.save wrote (a zip archive, or "
            "the older pickle format)",
        )
    try:
        content = _load_weights_only(path)
    except Exception as exc:  # UnpicklingError, zip/EOF errors, ...: all mean "not a checkpoint"
        reason = exception_line(exc)
        raise _refuse(
            path, f"{path} is not a netspec checkpoint (refused by the weights-only loader): {reason}"
        ) from None
    state = content.get("state_dict") if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _refuse(path, f"{path} is not a netspec checkpoint: it has no 'state_dict' of tensors")
    _check_layouts(state, path)
    return content


def _load_weights_only(path: Path) -> Any:
    """torch.load that runs no code: tensors, containers and netspec's few allowed types only."""
    import torch

    with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
        return torch.load(path, map_location="cpu", weights_only=True)


def _looks_saved_by_torch(path: Path) -> bool:
    """torch.save writes a zip archive; before torch 1.6, a pickle (protocol 2 or later: 0x80)."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError:
        return True  # torch.load reports it
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _check_layouts(state: dict, path: Path) -> None:
    from netspec.filetensors import layout_problem

    for key, tensor in state.items():
        problem = layout_problem(tensor)
        if problem:
            raise _refuse(path, f"weight {key} in {path} is {problem}")


def network_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(the checkpoint, the network's weights, whether the file was a plain ``state_dict``).

    A netspec (Lightning) checkpoint keeps the network under ``model.`` in its ``state_dict``;
    a plain ``state_dict`` (``torch.save(model.state_dict(), path)``, torchvision's files) is
    taken as it is, with an empty checkpoint: it has no heads or normalization to offer.
    """
    try:
        content = read_checkpoint(path)
    except SpecError:
        plain = _plain_state_dict(run_checkpoint(Path(path)))
        if plain is None:
            raise
        return {}, plain, True
    state = content["state_dict"]
    if any(key.startswith("model.") for key in state):
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return content, state, False


def load_network_weights(model: Any, path: str | Path, spec_source: str) -> tuple[dict[str, Any], bool]:
    """The file's weights into ``model`` (the spec's network), checked to fit first; returns
    ``network_weights``' checkpoint and plain flag."""
    import sys

    import torch

    content, weights, plain = network_weights(path)
    check_fits(weights, model.state_dict(), path, spec_source)
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # training never saves these; a plugin's buffer may hold an infinity on purpose
        which = f"{bad[0]} and {len(bad) - 1} more hold" if len(bad) > 1 else f"{bad[0]} holds"
        print(f"netspec: warning: {path}: {which} NaN or infinite values", file=sys.stderr)
    model.load_state_dict(weights)
    return content, plain


def _plain_state_dict(path: Path) -> dict | None:
    """The file as a flat dict of tensors (loaded weights-only), or None when it is not one."""
    import torch

    if not path.is_file() or not _looks_saved_by_torch(path):
        return None
    try:
        content = _load_weights_only(path)
    except Exception:  # not a weights-only file: read_checkpoint's message says so
        return None
    if (
        isinstance(content, dict)
        and content
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())
    ):
        _check_layouts(content, path)
        return dict(content)
    return None


def not_floats(state: dict[str, Any], expected: dict[str, Any]) -> dict[str, str]:
    """Names whose file values are integers, bools or complex where the network keeps floats, with
    the file's dtype: ``load_state_dict`` would cast them in silence, and they are not the weights
    meant (a state_dict cast to int64 holds 0 and ±1)."""
    return {
        k: str(state[k].dtype).removeprefix("torch.")
        for k in expected
        if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()
    }


def check_fits(state: dict[str, Any], expected: dict[str, Any], path: str | Path, spec_source: str) -> None:
    """``state`` must have exactly the keys and shapes of ``expected`` (a module's state_dict)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: checkpoint {list(state[k].shape)}, network {list(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    wrong += [
        f"{k}: checkpoint {dtype} values, network {str(expected[k].dtype).removeprefix('torch.')}"
        for k, dtype in not_floats(state, expected).items()
    ]
    if not (missing or unexpected or wrong):
        return
    details = [*(f"missing: {k}" for k in missing[:5]), *(f"unexpected: {k}" for k in unexpected[:5])]
    details += wrong[:5]
    raise SpecError(
        [
            Problem(
                f"checkpoint {path} does not fit the network of {spec_source}: {len(missing)} missing, "
                f"{len(unexpected)} unexpected and {len(wrong)} mismatching tensors",
                str(path),
                hint="use a checkpoint of a run of this spec (its spec.yaml is in the run directory)",
                details=tuple(details),
            )
        ]
    )

"""The network ``netspec predict`` runs: its spec, the checkpoint's weights and normalization, the device.

Checkpoints are read weights-only; one of another network is exit 2, naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import netspec
from netspec.errors import SpecError
from netspec.predict.problems import refuse
from netspec.spec import Spec

DEVICES = ("auto", "cpu", "cuda")


def load_spec(source: Any, overrides: Sequence[str], needs_data: bool) -> tuple[Spec, Any]:
    """The spec and its ``train:`` section (None when absent; with every default for --split)."""
    if needs_data:
        from netspec.training.run import prepare

        return prepare(source, overrides)
    spec = netspec.load(source, overrides=list(overrides))
    return spec, spec.model.train


def pick_device(name: str):
    """The torch device ``--device`` names; cuda without a GPU is exit 2."""
    import torch

    if name not in DEVICES:
        raise refuse(f"--device {name!r}: expected one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise refuse(
            "--device cuda: no CUDA GPU is available on this machine", hint="use --device auto or cpu"
        )
    return torch.device(name)


def read_weights(path: str | Path) -> tuple[dict, dict, bool]:
    """(checkpoint dict, the network's weights, whether it was a plain state_dict), weights-only.

    A netspec/Lightning checkpoint keeps the network under ``model.`` in its ``state_dict``; a
    plain ``state_dict`` (``torch.save(model.state_dict(), path)``) is accepted as it is.
    """
    from netspec.training.checkpoint import read_checkpoint

    try:
        content = read_checkpoint(path)
    except SpecError:
        plain = _plain_state_dict(Path(path))
        if plain is None:
            raise
        return {}, plain, True
    state = content["state_dict"]
    if any(key.startswith("model.") for key in state):
        state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return content, state, False


def _plain_state_dict(path: Path) -> dict | None:
    """The file as a flat dict of tensors (loaded weights-only), or None when it is not one."""
    import torch

    from netspec.training.checkpoint import ALLOWED_GLOBALS

    if not path.is_file():
        return None
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a weights-only file: read_checkpoint's message says so
        return None
    if (
        isinstance(content, dict)
        and content
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())
    ):
        return dict(content)
    return None


def build_model(spec: Spec, weights: dict, path: str | Path):
    """The network with the checkpoint's weights, checked to fit (exit 2 for another network)."""
    from netspec.training.checkpoint import check_fits

    model = spec.build()
    check_fits(weights, model.state_dict(), path, spec.source)
    model.load_state_dict(weights)
    return model


def read_normalization(spec: Spec, content: dict, path, plain: bool):
    """(mean, std) per input channel as tensors [C, 1, …], None for none, or "unknown"."""
    import torch

    if plain or "netspec_normalization" not in content:
        return "unknown"
    value = content["netspec_normalization"]
    if value is None:
        return None
    channels = spec.input_shape[0]
    try:
        mean, std = (torch.tensor([float(v) for v in part], dtype=torch.float32) for part in value)
        ok = (
            len(mean) == len(std) == channels
            and bool(torch.isfinite(mean).all() and torch.isfinite(std).all())
            and bool((std > 0).all())
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise refuse(
            f"checkpoint {path} records a normalization that does not fit the network's "
            f"{channels} input channel(s): {str(value)[:200]}",
            path,
            hint="use a checkpoint of a run of this spec",
        )
    view = (channels,) + (1,) * (len(spec.input_shape) - 1)
    return mean.view(view), std.view(view)


def forward(model, x, dev):
    """The network's outputs for one batch; a GPU out of memory is exit 2 asking for smaller batches."""
    import torch

    try:
        return model(x.to(dev))
    except torch.cuda.OutOfMemoryError:
        raise refuse(f"the GPU ran out of memory on a batch of {len(x)}", hint="lower --batch-size") from None

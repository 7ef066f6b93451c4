"""The network ``netspec predict`` runs: its spec, the checkpoint's weights and normalization, the device.

Checkpoints are read weights-only; one of another network is exit 2, naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import netspec
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


def build_model(spec: Spec, path: str | Path) -> tuple[Any, dict, bool]:
    """The network with the file's weights, checked to fit (exit 2 for another network), with
    the checkpoint (empty for a plain ``state_dict``) and whether it was one."""
    from netspec.training.checkpoint import load_network_weights

    model = spec.build()
    content, plain = load_network_weights(model, path, spec.source)
    return model, content, plain


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

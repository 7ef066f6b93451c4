"""Training with PyTorch Lightning. Importing this package does not import Lightning or torch.

Python API::

    from netspec.training import fit
    result = fit("specs/lenet.yaml", overrides=["train.max_epochs=2"])
    result.metrics["val_acc"], result.best_checkpoint
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunResult", "evaluate", "export_onnx", "fit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from netspec.training import run

        return getattr(run, name)
    raise AttributeError(name)

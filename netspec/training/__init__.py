"""Training with PyTorch Lightning. Importing this package does not import Lightning or torch.

Python API::

    from netspec.training import find_lr, fit
    result = fit("specs/lenet.yaml", overrides=["train.max_epochs=2"])
    result.metrics["val_acc"], result.best_checkpoint
    fit("specs/resnet18.yaml", init="resnet18-f37072fd.pth", overrides=["train.freeze=[conv1, layer1]"])
    find_lr("specs/lenet.yaml").suggestion   # the learning-rate finder (netspec tune)
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunResult", "TuneResult", "evaluate", "export_onnx", "find_lr", "fit"]


def __getattr__(name: str) -> Any:
    if name in ("TuneResult", "find_lr"):
        from netspec.training import tune

        return getattr(tune, name)
    if name in __all__:
        from netspec.training import run

        return getattr(run, name)
    raise AttributeError(name)

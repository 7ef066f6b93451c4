"""The ResNet and MobileNetV2 specs against torchvision's models, key by key.

torchvision cannot be imported in the test environment (its wheel is CUDA-linked against a
CPU torch, and merely installing it breaks Lightning's imports), so the references are
torchvision 0.28.0's state_dict keys, shapes and parameter counts, pinned in
tests/golden/torchvision/ from the real models (built on the meta device). Where a working
torchvision is importable, the logits are compared too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import netspec
from netspec.yamlio import read_spec_file

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests/golden/torchvision"
MODELS = sorted(p.stem for p in GOLDEN.glob("*.json"))  # every pinned reference, the gallery's too


def _spec_of(model: str) -> tuple[Path, list[str]]:
    """specs/MODEL.yaml, else the family file with a variant named MODEL (efficientnet_b3)."""
    path = REPO / f"specs/{model}.yaml"
    if path.exists():
        return path, []
    for family in sorted((REPO / "specs").glob("*.yaml")):
        data = read_spec_file(family).data
        variants = data.get("variants") if isinstance(data, dict) else None
        for variant, body in (variants or {}).items():
            if isinstance(body, dict) and body.get("name") == model:
                return family, [f"variant={variant}"]
    raise LookupError(f"no spec or variant named {model}")


@pytest.mark.parametrize("model", MODELS)
def test_state_dict_keys_shapes_and_parameters_equal_torchvision(model):
    reference = json.loads((GOLDEN / f"{model}.json").read_text())
    with torch.device("meta"):
        path, overrides = _spec_of(model)
        built = netspec.load(path, overrides=overrides).build()
    state = {k: list(v.shape) for k, v in built.state_dict().items()}
    assert list(state) == list(reference["state_dict"])  # same keys, in the same order
    assert state == reference["state_dict"]
    assert sum(p.numel() for p in built.parameters()) == reference["params"]


def _torchvision_models():
    try:
        import torchvision.models as models
    except Exception:  # not installed, or a build that does not match this torch
        pytest.skip("no importable torchvision here; keys and shapes are checked against pinned files")
    return models


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_torchvision_weights_load_strictly_and_give_the_same_logits(model):
    models = _torchvision_models()
    torch.manual_seed(0)
    reference = getattr(models, model)().eval()
    ours = netspec.load(REPO / f"specs/{model}.yaml", input_shape=[3, 64, 64]).build().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x))


def test_one_family_file_gives_every_resnet_variant():
    counts = {
        variant: sum(
            p.numel()
            for p in netspec.load(REPO / "specs/resnet.yaml", overrides=[f"variant={variant}"])
            .build()
            .parameters()
        )
        for variant in ("resnet18", "resnet101")
    }
    assert counts == {"resnet18": 11_689_512, "resnet101": 44_549_160}  # torchvision's published counts

"""The gallery: every spec in specs/ (a glob, so new specs are covered) end to end, and the
reference networks against their originals.

For each spec: it loads, builds and summarises; the summary agrees with the built module
(parameters to the unit per layer and in total, every layer's output shape as forward hooks
see it on a batch of 2); it exports to ONNX and onnxruntime gives the same outputs (networks
up to 20 M parameters; test_export.py covers SegNet's unpooling); one optimizer step trains
it on random data. Its `expect:` contract holds at its own input size.
The big ImageNet networks and the YOLO run at a reduced input (their adaptive or global
pooling, or all-convolutional design, accepts it) to keep the file fast on CI.

torchvision cannot be imported in the test environment (see test_torchvision_parity.py), so
the gallery's torchvision networks are checked against state_dict keys, shapes and parameter
counts pinned from torchvision 0.28.0 in tests/golden/torchvision/; where a working torchvision
is importable, its weights are loaded strictly and the logits compared too (they were, from
torchvision 0.28.0 installed outside the venv, when the references were pinned).
"""

from __future__ import annotations

import importlib.util
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import REPO, real_shapes
from torch import nn

import netspec
from netspec.modules import layer_module
from netspec.summary import summarize
from netspec.yamlio import read_spec_file

SPECS = sorted((REPO / "specs").glob("*.yaml"))
NO_EXPECT = "expect=null"  # an override for runs at another input size than the contract's
GOLDEN = REPO / "tests/golden/torchvision"

# Test inputs smaller than the spec's own, where the architecture allows it (the contract at
# the spec's own input is checked separately, analytically): the classifiers end in global or
# adaptive pooling, the YOLO and the ASPP head are fully convolutional.
SMALL_INPUT = {
    "alexnet": [3, 64, 64],
    "aspp": [2048, 5, 5],
    "convnext": [3, 32, 32],  # its smallest input (the stem and three downsamplings: 32 → 1)
    "convnext_tiny": [3, 32, 32],
    "densenet": [3, 32, 32],
    "densenet121": [3, 32, 32],
    "efficientnet": [3, 32, 32],
    "efficientnet_b0": [3, 32, 32],
    "efficientnet_v2": [3, 32, 32],
    "efficientnet_v2_s": [3, 32, 32],
    "googlenet": [3, 32, 32],
    "inception_v3": [3, 75, 75],  # its smallest input, as torchvision's min_size
    "mnasnet": [3, 32, 32],
    "mnasnet1_0": [3, 32, 32],
    "mobilenet_v3": [3, 32, 32],
    "mobilenet_v3_large": [3, 32, 32],
    "mobilenet_v3_small": [3, 32, 32],
    "regnet": [3, 32, 32],
    "regnet_y_400mf": [3, 32, 32],
    "mobilenet_v2": [3, 32, 32],
    "resnet": [3, 32, 32],
    "resnet18": [3, 32, 32],
    "resnet34": [3, 32, 32],
    "resnet50": [3, 32, 32],
    "shufflenet_v2": [3, 32, 32],
    "shufflenet_v2_x1_0": [3, 32, 32],
    "squeezenet1_1": [3, 64, 64],
    "vgg": [3, 32, 32],
    "vgg16": [3, 32, 32],
    "vgg16_bn": [3, 32, 32],
    "yolo": [3, 64, 64],
}
# ONNX export serialises every weight: above this many parameters (AlexNet, the VGGs,
# ResNet-34 and deeper, DenseNet-161) it alone takes seconds, longer than the rest of a spec's
# test, and exercises no operator that a smaller gallery network does not.
ONNX_MAX_PARAMS = 20_000_000
# Specs written before the gallery, whose `expect:` lacks the output shape or the parameter
# count (resnet.yaml's entry files carry it; lenet has none).
PARTIAL_CONTRACT: set[str] = set()  # every spec states output, parameters and MACs

# MACs per image as torchvision's model docs publish them ("GFLOPS": conv and linear
# multiply-accumulates, by torchvision's own counter), at the input of the spec, which is the
# crop of torchvision's weights: 224x224, Inception v3 299x299, EfficientNetV2-S 384x384.
TORCHVISION_GFLOPS = {
    "alexnet": 0.71,
    "vgg16": 15.47,
    "vgg16_bn": 15.47,
    "resnet18": 1.81,
    "resnet34": 3.66,
    "resnet50": 4.09,
    "mobilenet_v2": 0.30,
    "densenet121": 2.83,
    "squeezenet1_1": 0.35,
    "googlenet": 1.5,
    "mnasnet1_0": 0.31,
    "shufflenet_v2_x1_0": 0.14,
    "efficientnet_b0": 0.39,
    "mobilenet_v3_large": 0.22,
    "mobilenet_v3_small": 0.06,
    "regnet_y_400mf": 0.4,
    "inception_v3": 5.71,
    "convnext_tiny": 4.46,
    "efficientnet_v2_s": 8.37,
}
# Every variant's parameter count, as the original implementations publish or build them:
# torchvision 0.28 for VGG, DenseNet, ResNet/ResNeXt/Wide ResNet, MobileNetV3, ShuffleNetV2,
# EfficientNet B0-B7, EfficientNetV2, MNASNet, ConvNeXt and RegNetY/RegNetX;
# Ultralytics' yolov8.yaml `scales:` comments less the 16 fixed weights of its DFL decoder,
# which the spec leaves out.
VARIANT_PARAMS = {
    "vgg": {
        "vgg11": 132_863_336,
        "vgg11_bn": 132_868_840,
        "vgg13": 133_047_848,
        "vgg13_bn": 133_053_736,
        "vgg16": 138_357_544,
        "vgg16_bn": 138_365_992,
        "vgg19": 143_667_240,
        "vgg19_bn": 143_678_248,
    },
    "densenet": {
        "densenet121": 7_978_856,
        "densenet161": 28_681_000,
        "densenet169": 14_149_480,
        "densenet201": 20_013_928,
    },
    "resnet": {
        "resnet18": 11_689_512,
        "resnet34": 21_797_672,
        "resnet50": 25_557_032,
        "resnet101": 44_549_160,
        "resnet152": 60_192_808,
        "resnext50_32x4d": 25_028_904,
        "resnext101_32x8d": 88_791_336,
        "resnext101_64x4d": 83_455_272,
        "wide_resnet50_2": 68_883_240,
        "wide_resnet101_2": 126_886_696,
    },
    "mobilenet_v3": {"large": 5_483_032, "small": 2_542_856},
    "shufflenet_v2": {
        "x0_5": 1_366_792,
        "x1_0": 2_278_604,
        "x1_5": 3_503_624,
        "x2_0": 7_393_996,
    },
    "efficientnet": {
        "b0": 5_288_548,
        "b1": 7_794_184,
        "b2": 9_109_994,
        "b3": 12_233_232,
        "b4": 19_341_616,
        "b5": 30_389_784,
        "b6": 43_040_704,
        "b7": 66_347_960,
    },
    "efficientnet_v2": {"s": 21_458_488, "m": 54_139_356, "l": 118_515_272},
    "convnext": {"tiny": 28_589_128, "small": 50_223_688, "base": 88_591_464, "large": 197_767_336},
    "mnasnet": {
        "mnasnet0_5": 2_218_512,
        "mnasnet0_75": 3_170_208,
        "mnasnet1_0": 4_383_312,
        "mnasnet1_3": 6_282_256,
    },
    "regnet": {
        "y_400mf": 4_344_144,
        "y_800mf": 6_432_512,
        "y_1_6gf": 11_202_430,
        "y_3_2gf": 19_436_338,
        "y_8gf": 39_381_472,
        "y_16gf": 83_590_140,
        "y_32gf": 145_046_770,
        "y_128gf": 644_812_894,
        "x_400mf": 5_495_976,
        "x_800mf": 7_259_656,
        "x_1_6gf": 9_190_136,
        "x_3_2gf": 15_296_552,
        "x_8gf": 39_572_648,
        "x_16gf": 54_278_536,
        "x_32gf": 107_811_560,
    },
    "yolo": {"n": 3_157_200 - 16, "s": 11_166_560 - 16, "m": 25_902_640 - 16, "l": 43_691_520 - 16},
}


def _raw(path: Path) -> dict:
    data = read_spec_file(path).data
    return data if isinstance(data, dict) else {}


def _variant_under_test(path: Path) -> list[str]:
    """A family file's default variant is tested through its entry file: test another one."""
    variants = _raw(path).get("variants")
    if not isinstance(variants, dict):
        return []
    entries = {_raw(p).get("variant") for p in SPECS if _raw(p).get("extends") == path.name}
    untested = [v for v in variants if v not in entries]
    return [f"variant={untested[0]}"] if untested else []


def _load(path: Path) -> netspec.Spec:
    overrides = _variant_under_test(path)
    small = SMALL_INPUT.get(path.stem)
    if small is None:
        return netspec.load(path, overrides=overrides)
    # the contract describes the spec's own input; at another size its output shape differs
    return netspec.load(path, input_shape=small, overrides=[*overrides, NO_EXPECT])


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _randomise_batch_norm(model: nn.Module) -> None:
    """What torchvision starts at constants, made random, so that a wrong key or placement shows:
    BatchNorm's statistics, and ConvNeXt's layer_scale (1e-6 would hide its blocks)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("layer_scale"):
                parameter.uniform_(0.5, 1.5)


def _exported_by_test_export() -> set[str]:
    from test_export import SPEC_FILES

    return {path.stem for path in SPEC_FILES}


def _onnx_matches(stem: str, model: nn.Module, x: torch.Tensor, expected: tuple[torch.Tensor, ...]) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecations inside the exporters
        try:  # the TorchScript-based exporter: several times faster than the dynamo one
            torch.onnx.export(model, (x,), buffer, dynamo=False)
        except torch.onnx.errors.UnsupportedOperatorError:  # e.g. max_unpool2d (SegNet)
            if stem in _exported_by_test_export():
                return  # test_export.py exports it with the dynamo exporter, every path checked
            buffer = io.BytesIO()
            torch.onnx.export(model, (x,), buffer, dynamo=True, verbose=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    outputs = session.run(None, {feed.name: x.numpy()})
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected, strict=True):
        assert isinstance(got, np.ndarray)
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)


def _train_one_step(spec: netspec.Spec, model: nn.Module) -> None:
    """One SGD step on random data: cross-entropy for [classes] outputs, MSE otherwise."""
    model.train()
    x = torch.randn(2, *spec.input_shape)
    outputs = _as_tuple(model(x))
    loss = torch.zeros(())
    for out, shape in zip(outputs, spec.output_shapes(), strict=True):
        if len(shape) == 1:
            loss = loss + nn.functional.cross_entropy(out, torch.randint(shape[0], (2,)))
        else:
            loss = loss + nn.functional.mse_loss(out, torch.randn_like(out))
    params = [p for p in model.parameters() if p.requires_grad]
    watched = [params[0], params[-1]]  # the first layer's and the last layer's (copying all is slow)
    before = [p.detach().clone() for p in watched]
    optimizer = torch.optim.SGD(params, lr=0.01)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in params), "every parameter takes part in the loss"
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, watched, strict=True))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_builds_summarises_exports_and_trains(path):
    torch.manual_seed(0)
    spec = _load(path)
    summary = summarize(spec)
    model = spec.build()
    # parameters: to the unit, per layer and in total
    rows = {row.name: row for row in summary.rows}
    for layer in spec.layers:
        module = layer_module(model, layer.name)
        assert rows[layer.name].params == sum(p.numel() for p in module.parameters()), layer.name
    assert summary.totals.params == sum(p.numel() for p in model.parameters())
    assert summary.totals.buffers == sum(b.numel() for b in model.buffers())
    # shapes: every layer's output exactly as a forward pass on a batch of 2 produces it
    assert {name: row.output for name, row in rows.items()} == real_shapes(spec, model)
    # a forward pass in eval mode (batch-norm running statistics in use), then ONNX
    _randomise_batch_norm(model)
    model.eval()
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        expected = _as_tuple(model(x))
    assert [tuple(o.shape[1:]) for o in expected] == [tuple(s) for s in spec.output_shapes()]
    if summary.totals.params <= ONNX_MAX_PARAMS:
        _onnx_matches(path.stem, model, x, expected)
    _train_one_step(spec, model)


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_large_networks_export_to_onnx_too(path):
    """The networks the quick run does not export (over ONNX_MAX_PARAMS), at their own input
    (torch's TorchScript-based exporter needs adaptive pools whose output divides the input)."""
    spec = netspec.load(path)
    if summarize(spec).totals.params <= ONNX_MAX_PARAMS:
        pytest.skip("exported by test_spec_builds_summarises_exports_and_trains")
    torch.manual_seed(0)
    model = spec.build().eval()
    x = torch.randn(2, *spec.input_shape)
    with torch.no_grad():
        expected = _as_tuple(model(x))
    _onnx_matches(path.stem, model, x, expected)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_contract_holds_at_the_spec_own_input(path):
    """Loading checks expect.output; building (on the meta device: nothing allocated) the rest."""
    spec = netspec.load(path)
    with torch.device("meta"):
        spec.build()
    if path.stem not in PARTIAL_CONTRACT:
        expect = spec.model.expect
        assert expect is not None and expect.output is not None and expect.params is not None, path.name


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_cites_its_source(path):
    """A header comment citing the paper or reference implementation (a year or a reference)."""
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert header, f"{path.name} has no header comment"
    assert any(s in header for s in ("19", "20", "torchvision", "Ultralytics")), header


@pytest.mark.parametrize("family", sorted(VARIANT_PARAMS))
def test_every_variant_of_a_family_has_the_reference_parameter_count(family):
    counts = {
        variant: summarize(
            netspec.load(REPO / f"specs/{family}.yaml", overrides=[f"variant={variant}"])
        ).totals.params
        for variant in VARIANT_PARAMS[family]
    }
    assert counts == VARIANT_PARAMS[family]


def _torchvision_models():
    try:
        import torchvision.models as models
    except Exception:  # not installed, or a build that does not match this torch
        pytest.skip("no importable torchvision here; keys and shapes are checked against pinned files")
    return models


@pytest.mark.parametrize(
    "model",
    [
        *("alexnet", "vgg16_bn", "densenet121", "aspp", "shufflenet_v2_x1_0", "efficientnet_b0"),
        *("squeezenet1_1", "googlenet", "mnasnet1_0", "mobilenet_v3_large", "mobilenet_v3_small"),
        *("regnet_y_400mf", "inception_v3", "efficientnet_v2_s", "convnext_tiny"),
    ],
)
def test_torchvision_weights_load_strictly_and_give_the_same_logits(model):
    models = _torchvision_models()
    torch.manual_seed(0)
    if model == "aspp":  # the DeepLabv3 head; torchvision's uses rates 12/24/36 (output stride 8)
        net = models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21)
        reference, prefix = net.classifier, "classifier."
        overrides, shape = ["params.rates=[12, 24, 36]"], [2048, 14, 14]
    else:
        options = {}
        if model in ("googlenet", "inception_v3"):  # no auxiliary classifiers; inputs as given
            options = {"aux_logits": False, "init_weights": False}
            options |= {"transform_input": False} if model == "inception_v3" else {}
        reference, prefix = getattr(models, model)(**options), ""
        overrides, shape = [], SMALL_INPUT[model] if model == "inception_v3" else [3, 64, 64]
    _randomise_batch_norm(reference)
    ours = netspec.load(REPO / f"specs/{model}.yaml", input_shape=shape, overrides=overrides).build()
    ours.load_state_dict({prefix + k: v for k, v in reference.state_dict().items()}, strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x))


def test_stochastic_depth_trains_efficientnet_as_torchvision_does():
    """Seeded, a training-mode forward draws the same per-sample drops as torchvision's."""
    models = _torchvision_models()
    torch.manual_seed(0)
    reference = models.efficientnet_b0().train()
    ours = netspec.load(REPO / "specs/efficientnet_b0.yaml", input_shape=[3, 64, 64]).build().train()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(8, 3, 64, 64)
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x), expected)


def test_the_goldens_cover_every_torchvision_model_of_the_gallery():
    assert {p.stem for p in GOLDEN.glob("*.json")} >= set(TORCHVISION_GFLOPS) | {"aspp"}


@pytest.mark.parametrize("model", sorted(TORCHVISION_GFLOPS))
def test_conv_and_linear_macs_agree_with_torchvision_published_gflops(model):
    """Within 1 %, or half the published figure's last digit (0.31 is 0.305-0.315); netspec's
    total counts more layer types (docs/summary.md has the table)."""
    rows = summarize(netspec.load(REPO / f"specs/{model}.yaml")).rows
    conv_linear = sum(row.macs for row in rows if row.type in ("conv", "linear"))
    assert conv_linear / 1e9 == pytest.approx(TORCHVISION_GFLOPS[model], rel=0.01, abs=0.005)


def test_every_model_has_its_entry_file():
    names = {p.stem for p in SPECS}
    issue = {"alexnet", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "mobilenet_v2"}
    issue |= {"densenet121", "unet", "segnet", "autoencoder", "aspp", "conv1d", "conv3d", "yolo"}
    issue |= {"shufflenet_v2_x1_0", "efficientnet_b0", "squeezenet1_1", "googlenet", "mnasnet1_0"}
    issue |= {"mobilenet_v3_large", "mobilenet_v3_small", "regnet_y_400mf"}
    issue |= {"inception_v3", "efficientnet_v2_s", "convnext_tiny"}
    assert issue | {"cifar_speedrun"} <= names


def test_gallery_table_in_specs_readme_is_current():
    script = REPO / "scripts/gallery_table.py"
    module_spec = importlib.util.spec_from_file_location("gallery_table", script)
    gallery = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(gallery)
    current = gallery.readme_table(gallery.README.read_text())
    assert current == gallery.table(), "specs/README.md is stale: run python scripts/gallery_table.py --write"


def test_yolo_scales_depth_and_width_as_ultralytics_does():
    """Depth: max(round(n * depth), 1) bottlenecks per C2f; width: make_divisible(min(c, cap) * w)."""
    specs = {v: netspec.load(REPO / "specs/yolo.yaml", overrides=[f"variant={v}"]) for v in "nsml"}
    bottlenecks = {
        variant: sum(1 for layer in spec.layers if re.fullmatch(r"c2f_p3\.m\.\d+\.cv1\.conv", layer.name))
        for variant, spec in specs.items()
    }
    assert bottlenecks == {"n": 2, "s": 2, "m": 4, "l": 6}  # 6 repeats x 0.33 / 0.67 / 1.0
    widths = {variant: spec.shapes()["sppf.cv2.act"][0] for variant, spec in specs.items()}
    assert widths == {"n": 256, "s": 512, "m": 576, "l": 512}  # 1024 x 0.25 / 0.5, min(1024, 768) x 0.75, 512


def test_size_references_make_the_autoencoder_and_aspp_follow_the_input():
    for size in (28, 30, 33):
        spec = netspec.load(
            REPO / "specs/autoencoder.yaml", input_shape=[1, size, size], overrides=[NO_EXPECT]
        )
        assert spec.output_shapes() == [(1, size, size)]
    spec = netspec.load(REPO / "specs/aspp.yaml", input_shape=[2048, 9, 7], overrides=[NO_EXPECT])
    assert spec.output_shapes() == [(21, 9, 7)]


def test_the_speedrun_trains_on_cifar10_as_written():
    data = read_spec_file(REPO / "specs/cifar_speedrun.yaml").data
    assert data["train"]["data"]["name"] == "cifar10"
    assert math.prod(netspec.load(REPO / "specs/cifar_speedrun.yaml").input_shape) == 3 * 32 * 32

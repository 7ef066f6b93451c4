"""Every PyTorch deployment path works on a built network and matches eager mode.

For each spec in ``specs/`` plus small inline specs (multi-output, add/mul/concat merges,
unpool with max-pool indices, separable conv, global pooling, reshape, pixel shuffle,
upsample): ``torch.compile(fullgraph=True)``, TorchScript, ``torch.export``, ONNX run with
onnxruntime; readable ``state_dict`` keys; and generated forward code that calls each layer
module directly. Comparisons run in ``eval()`` mode with randomised batch-norm statistics,
so the exported graphs must use the running statistics, not the batch's.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import fx, nn

import netspec

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"
# Every deployment path on a spec of each kind: flat (lenet), blocks with size references and
# skips (unet), unpooling indices across blocks (segnet), repeats and conditional shortcuts
# (resnet18), computed widths (mobilenet_v2). The gallery test exports every other spec to ONNX.
SPEC_FILES = [SPEC_DIR / f"{name}.yaml" for name in ("lenet", "unet", "segnet", "resnet18", "mobilenet_v2")]
BATCH = 2

# Multi-output network with every merge, separable conv and both global pools.
MERGES = """
netspec: 1
name: merges
input: [3, 8, 8]
layers:
  - {type: conv, name: a, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: batchnorm, name: a_bn}
  - {type: separable, name: b, from: input, out_channels: 4, kernel_size: 3, padding: same, multiplier: 2}
  - {type: add, name: total, from: [a_bn, b]}
  - {type: mul, name: prod, from: [a_bn, total, b]}
  - {type: concat, name: cat, from: [total, prod]}
  - {type: global_avgpool, name: gap}
  - {type: dropout, name: drop, p: 0.5}
  - {type: linear, name: head, out_features: 3}
  - {type: global_maxpool, name: gmp, from: cat, keepdims: true}
  - {type: mul, name: gated, from: [cat, gmp]}
  - {type: concat, name: wide, from: [gated, cat], dim: -1}
outputs: [head, wide, gap]
"""

# Unpooling with max-pool indices in 1-D and 2-D, odd sizes and ceil_mode.
UNPOOL = """
netspec: 1
name: unpool
input: [2, 7, 9]
layers:
  - {type: conv, name: c, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: maxpool, name: pool, kernel_size: 2, ceil_mode: true}
  - {type: tanh, name: act}
  - {type: unpool, name: unpool, indices: pool}
  - {type: reshape, name: rows, shape: [4, 63]}
  - {type: maxpool, name: pool1d, kernel_size: 3, padding: 1}
  - {type: conv, name: mix, out_channels: 4, kernel_size: 1}
  - {type: unpool, name: unpool1d, indices: pool1d}
outputs: [unpool, unpool1d]
"""

# Sub-pixel upsampling, interpolation and reshapes.
SHUFFLE = """
netspec: 1
name: shuffle
input: [4, 5, 6]
layers:
  - {type: conv, name: widen, out_channels: 8, kernel_size: 1}
  - {type: pixel_shuffle, name: shuffle, upscale_factor: 2}
  - {type: upsample, name: up, scale_factor: 2, mode: bilinear}
  - {type: upsample, name: resize, size: [7, 9]}
  - {type: pixel_unshuffle, name: unshuffle, from: up, downscale_factor: 4}
  - {type: reshape, name: tokens, shape: [32, -1]}
  - {type: layernorm, name: norm}
  - {type: linear, name: proj, out_features: 5}
  - {type: flatten, name: flat}
outputs: [flat, resize]
"""

INLINE = {"merges": MERGES, "unpool": UNPOOL, "shuffle": SHUFFLE}
CASES = [pytest.param(path, id=path.stem) for path in SPEC_FILES] + [
    pytest.param(text, id=f"inline-{name}") for name, text in INLINE.items()
]

# TorchScript in torch 2.13 warns on every torch.jit.script call, and once per annotated
# empty container that torch.fx.GraphModule.__init__ itself creates (meta, the hook lists).
# Neither is about netspec's modules; anything else scripting emits still fails the test.
SCRIPT_WARNINGS = [
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated"),
    (UserWarning, r"The TorchScript type system doesn't support instance-level annotations on empty"),
]
JIT_LOAD_WARNINGS = [(DeprecationWarning, r"`torch\.jit\.load` is deprecated")]
# torch.onnx.export deep-copies the exported program, whose pytree LeafSpec construction
# triggers a deprecation inside torch's own pytree utilities.
ONNX_WARNINGS = [(FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated")]
# Importing inductor imports torch.utils.mkldnn, whose ScriptModule classes use the
# deprecated @torch.jit.script_method decorator (first import only).
INDUCTOR_WARNINGS = [(DeprecationWarning, r"`torch\.jit\.script_method` is deprecated")]


@contextlib.contextmanager
def allowed_warnings(allowed: list[tuple[type[Warning], str]]):
    """Turn every warning into an error, except exactly the (category, message regex) pairs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for category, message in allowed:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


@pytest.fixture(autouse=True)
def _setup():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.compiler.reset()
    yield
    torch.set_num_threads(threads)


def build_eval(spec: netspec.Spec) -> fx.GraphModule:
    """The built model in eval mode, with non-trivial batch-norm running statistics."""
    model = spec.build()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def example_input(spec: netspec.Spec) -> torch.Tensor:
    return torch.randn(BATCH, *spec.input_shape)


def as_tuple(out) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def assert_same(actual, expected, **tol) -> None:
    actual, expected = as_tuple(actual), as_tuple(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(torch.as_tensor(a), e, **tol)


@torch.no_grad()
def eager(spec: netspec.Spec, model: fx.GraphModule, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out = as_tuple(model(x))
    shapes = [tuple(o.shape) for o in out]
    assert shapes == [(BATCH, *s) for s in spec.output_shapes()]
    assert isinstance(model(x), tuple) == (len(spec.outputs) > 1)
    return out


def test_inline_specs_cover_the_features():
    """The inline specs really exercise what they claim to."""
    types = {layer.type for text in INLINE.values() for layer in netspec.load(text).layers}
    wanted = "add mul concat unpool maxpool separable global_avgpool global_maxpool reshape pixel_shuffle"
    assert types >= {*wanted.split(), "upsample", "pixel_unshuffle", "batchnorm", "dropout"}
    assert len(netspec.load(MERGES).outputs) == 3
    assert len(SPEC_FILES) >= 3


@pytest.mark.parametrize("case", CASES)
def test_compile_fullgraph(case):
    spec = netspec.load(case)
    model = build_eval(spec)
    x = example_input(spec)
    expected = eager(spec, model, x)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert_same(compiled(x), expected)


def test_compile_inductor_lenet():
    """The default backend generates and compiles C++ (needs gcc): slow, so one spec only."""
    spec = netspec.load(SPEC_DIR / "lenet.yaml")
    model = build_eval(spec)
    x = example_input(spec)
    expected = eager(spec, model, x)
    start = time.perf_counter()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad(), allowed_warnings(INDUCTOR_WARNINGS):
        out = compiled(x)
    elapsed = time.perf_counter() - start
    assert_same(out, expected, rtol=1e-4, atol=1e-5)
    print(f"inductor compile + first run of lenet: {elapsed:.1f} s")


@pytest.mark.parametrize("case", CASES)
def test_torchscript(case, tmp_path):
    spec = netspec.load(case)
    model = build_eval(spec)
    x = example_input(spec)
    expected = eager(spec, model, x)
    with allowed_warnings(SCRIPT_WARNINGS):
        scripted = torch.jit.script(model)
    with torch.no_grad():
        assert_same(scripted(x), expected)
    path = tmp_path / "model.pt"  # and survives a save/load round trip
    scripted.save(str(path))
    with allowed_warnings(JIT_LOAD_WARNINGS):
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        assert_same(loaded(x), expected)


@pytest.mark.parametrize("case", CASES)
def test_torch_export(case):
    spec = netspec.load(case)
    model = build_eval(spec)
    x = example_input(spec)
    expected = eager(spec, model, x)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert_same(program.module()(x), expected)


@pytest.mark.parametrize("case", CASES)
def test_onnx_runtime(case, tmp_path):
    spec = netspec.load(case)
    model = build_eval(spec)
    x = example_input(spec)
    expected = eager(spec, model, x)
    path = tmp_path / "model.onnx"
    with allowed_warnings(ONNX_WARNINGS):
        torch.onnx.export(model, (x,), path, verbose=False)  # torch 2.13's default: dynamo=True
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    outputs = session.run(None, {feed.name: x.numpy()})
    assert len(outputs) == len(spec.outputs)
    assert all(isinstance(o, np.ndarray) for o in outputs)
    assert_same([torch.from_numpy(o) for o in outputs], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_state_dict_keys_use_layer_names(case):
    spec = netspec.load(case)
    model = spec.build()
    names = {layer.name for layer in spec.layers}
    keys = list(model.state_dict())
    assert keys
    for key in keys:  # every tensor belongs to a layer, by the layer's full path
        assert any(key.startswith(f"{name}.") for name in names), key
    for layer_name in names:
        for key in model.get_submodule(layer_name).state_dict():
            assert f"{layer_name}.{key}" in keys
    fresh = spec.build()  # the keys are stable: a second build loads them strictly
    fresh.load_state_dict(model.state_dict(), strict=True)
    if isinstance(case, Path) and case.stem == "lenet":
        assert keys[:2] == ["c1.weight", "c1.bias"]
        assert {"c3.weight", "f5.weight", "f6.bias", "output.weight"} <= set(keys)


@pytest.mark.parametrize("case", CASES)
def test_generated_code_calls_layers_directly(case):
    spec = netspec.load(case)
    model = spec.build()
    assert isinstance(model, fx.GraphModule)
    code = model.code
    for layer in spec.layers:
        if (
            "." not in layer.name
        ):  # a layer in a block is called through its parents: getattr(self.layer1, "0").conv1
            assert f"self.{layer.name}(" in code, layer.name
        assert isinstance(model.get_submodule(layer.name), nn.Module)
    calls = [n for n in model.graph.nodes if n.op == "call_module"]
    assert [n.target for n in calls] == [layer.name for layer in spec.layers]
    # nothing between the layers but tuple indexing of (output, indices) results
    others = {n.op for n in model.graph.nodes} - {"call_module", "placeholder", "output"}
    assert others <= {"call_function"}
    assert all(n.target.__name__ == "getitem" for n in model.graph.nodes if n.op == "call_function")


LENET = str(SPEC_DIR / "lenet.yaml")


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_export_without_the_onnx_packages_says_how_to_install_them(monkeypatch, tmp_path, capsys, package):
    import sys

    from netspec.cli import main

    monkeypatch.setitem(sys.modules, package, None)  # what `import` sees when it is not installed
    assert main(["export", LENET, "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"ONNX export needs the packages {package}, which are not installed" in err
    assert "pip install 'netspec[onnx]'" in err and "Traceback" not in err


def test_export_creates_missing_directories_and_refuses_a_directory(tmp_path, capsys):
    from netspec.cli import main

    target = tmp_path / "new" / "deeper" / "m.onnx"
    assert main(["export", LENET, "--onnx", str(target)]) == 0
    assert target.is_file()
    assert main(["export", LENET, "--onnx", str(tmp_path)]) == 2
    assert f"is a directory; give a file name such as {tmp_path / 'model.onnx'}" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["export", LENET, "--onnx", str(tmp_path / "file" / "m.onnx")]) == 2
    assert "cannot create the directory of" in capsys.readouterr().err


def test_export_writes_one_file_named_after_the_spec_and_says_when_weights_are_random(tmp_path, capsys):
    """One self-contained .onnx (its weights inside, not in a .data file beside it), input and
    outputs named as in the spec; no checkpoint is a note (the weights are a seeded init), a
    plain state_dict is a checkpoint too, --variant picks the network, and a path the system
    refuses is exit 2."""
    import onnx

    from netspec.cli import main

    target = tmp_path / "m.onnx"
    assert main(["export", LENET, "--onnx", str(target)]) == 0
    assert "no --checkpoint: the weights are a random initialisation (seed 0)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    graph = onnx.load(str(target)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    model = netspec.load(LENET).build().eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    assert main(["export", LENET, "--checkpoint", str(tmp_path / "weights.pt"), "--onnx", str(target)]) == 0
    assert "random" not in capsys.readouterr().err
    x = torch.randn(3, 1, 28, 28)
    got = ort.InferenceSession(str(target)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    resnet = ["export", str(SPEC_DIR / "resnet.yaml"), "--variant", "resnet18", "--set", "params.classes=7"]
    assert main([*resnet, "--set", "expect=null", "--onnx", str(tmp_path / "r.onnx")]) == 0
    assert onnx.load(str(tmp_path / "r.onnx")).graph.output[0].type.tensor_type.shape.dim[1].dim_value == 7
    capsys.readouterr()
    assert main(["export", LENET, "--onnx", "/proc/m.onnx"]) == 2
    assert "/proc/m.onnx: cannot write --onnx file" in capsys.readouterr().err

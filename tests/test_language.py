"""The spec language (issue 9): blocks, repeat/first/if, groups, =expressions, include/extends,
variants and params — what users can rely on, checked on real behaviour.

* parity: the ResNet and MobileNetV2 specs are torchvision's networks (counts, keys, logits);
* expressions: what the evaluator computes and everything it refuses;
* errors through blocks and files: each one names the file, line and column of the fault and
  the line of the use that put it there;
* semantics of expansion: naming, repetition, conditions, groups, scope, shape functions;
* the built module: nested submodules, dotted keys, a forward equal to a hand-written one;
* hostile specs: expansion is bounded and refused fast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import sys
import textwrap
import time
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO
from torch import nn

import netspec
from netspec.expressions import Evaluator, ExprError, make_divisible

SPECS = REPO / "specs"


# ---------------------------------------------------------------- helpers


def write(directory: Path, name: str, text: str) -> tuple[Path, str]:
    """Write dedented ``text`` as ``directory/name``; return (resolved path, the text written)."""
    text = textwrap.dedent(text).lstrip("\n")
    path = (directory / name).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, text


def loc(text: str, needle: str, nth: int = 1) -> str:
    """``line:column`` (1-based) of the ``nth`` occurrence of ``needle`` in ``text``."""
    start = -1
    for _ in range(nth):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return f"{line}:{column}"


def error(source, **kwargs) -> str:
    """The rendered SpecError that loading ``source`` raises."""
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(source, **kwargs)
    return str(info.value)


def names(spec) -> list[str]:
    return [layer.name for layer in spec.layers]


def load_text(text: str, **kwargs):
    return netspec.load(textwrap.dedent(text).lstrip("\n"), **kwargs)


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def within(seconds: float):
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s (limit {seconds} s)"


# ---------------------------------------------------------------- parity with torchvision

PARITY = [
    pytest.param("resnet18.yaml", "resnet18", id="resnet18"),
    pytest.param("resnet34.yaml", "resnet34", id="resnet34"),
    pytest.param("resnet50.yaml", "resnet50", id="resnet50"),
    pytest.param("mobilenet_v2.yaml", "mobilenet_v2", id="mobilenet_v2"),
]
# the counts the issue names; the tests compare with torchvision's own, computed at test time
ISSUE_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
}


def _is_torchvision(name: str) -> bool:
    return name == "torchvision" or name.startswith("torchvision.")


@pytest.fixture(scope="module")
def torchvision():
    """``torchvision.models`` imported without the package ``__init__`` (which fails against the
    CPU-only torch here: it loads the C++ extension); sys.modules is restored afterwards."""
    found = importlib.util.find_spec("torchvision")
    if found is None or not found.submodule_search_locations:
        pytest.skip("torchvision is not installed")
    saved = {k: v for k, v in sys.modules.items() if _is_torchvision(k)}
    stub = types.ModuleType("torchvision")
    stub.__path__ = list(found.submodule_search_locations)
    sys.modules["torchvision"] = stub
    try:
        import torchvision.models as models
        from torchvision.models._utils import _make_divisible

        yield SimpleNamespace(models=models, make_divisible=_make_divisible)
    finally:
        for key in [k for k in sys.modules if _is_torchvision(k)]:
            del sys.modules[key]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def pairs(torchvision):
    """(torchvision model, netspec model built at 3x64x64), each built once, in eval mode."""
    cache: dict[str, tuple[nn.Module, nn.Module]] = {}

    def get(spec_file: str, tv_name: str):
        if tv_name not in cache:
            torch.manual_seed(0)
            reference = getattr(torchvision.models, tv_name)().eval()
            ours = netspec.load(SPECS / spec_file, input_shape=[3, 64, 64]).build().eval()
            cache[tv_name] = (reference, ours)
        return cache[tv_name]

    return get


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("spec_file", "tv_name"), PARITY)
def test_parameter_count_equals_torchvision(pairs, spec_file, tv_name):
    reference, ours = pairs(spec_file, tv_name)
    assert count(ours) == count(reference) == ISSUE_COUNTS[tv_name]


@pytest.mark.parametrize(("spec_file", "tv_name"), PARITY)
def test_state_dict_keys_weights_and_logits_equal_torchvision(pairs, spec_file, tv_name):
    reference, ours = pairs(spec_file, tv_name)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_resnet_variants_picked_with_set_match_torchvision(torchvision, variant):
    spec = netspec.load(SPECS / "resnet.yaml", overrides=[f"variant={variant}"])
    assert spec.document.data["variant"] == variant  # the resolved spec records it
    assert spec.name == variant
    with torch.device("meta"):
        ours, reference = spec.build(), getattr(torchvision.models, variant)()
    assert count(ours) == count(reference)
    assert list(ours.state_dict()) == list(reference.state_dict())


PINNED_KEYS = {
    "resnet18.yaml": ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                      "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias", "fc.weight"],
    "resnet50.yaml": ["layer1.0.downsample.0.weight", "layer3.5.conv3.weight", "layer4.2.bn3.weight"],
    "mobilenet_v2.yaml": ["features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
                          "features.2.conv.0.0.weight", "features.2.conv.3.running_mean",
                          "features.18.1.weight", "classifier.1.weight"],
}  # fmt: skip


@pytest.mark.parametrize("spec_file", sorted(PINNED_KEYS))
def test_state_dict_keys_read_like_torchvision_without_torchvision(spec_file):
    with torch.device("meta"):
        keys = set(netspec.load(SPECS / spec_file).build().state_dict())
    assert set(PINNED_KEYS[spec_file]) <= keys
    assert "layer1.0.downsample.0.weight" not in keys or spec_file == "resnet50.yaml"


@pytest.mark.parametrize(
    "spec_file", ["resnet18.yaml", "resnet34.yaml", "resnet50.yaml", "mobilenet_v2.yaml"]
)
def test_specs_fulfil_their_expect_contracts_at_224(spec_file):
    spec = netspec.load(SPECS / spec_file)
    assert spec.output_shapes() == [(1000,)]
    with torch.device("meta"):
        spec.build()  # checks expect.params


def test_make_divisible_equals_torchvision(torchvision):
    values = [v / 8 for v in range(1, 8 * 400)] + [c * w for c in (16, 24, 32, 96, 160, 320, 1280)
                                                    for w in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)]  # fmt: skip
    for divisor in (1, 3, 4, 8, 16):
        for value in values:
            assert make_divisible(value, divisor) == torchvision.make_divisible(value, divisor), (
                value,
                divisor,
            )
    for value in values[:500]:
        assert make_divisible(value, 8, 16) == torchvision.make_divisible(value, 8, 16)
    assert Evaluator({"width": 0.75}).evaluate("=make_divisible(32 * width)") == torchvision.make_divisible(
        24, 8
    )


# ---------------------------------------------------------------- expressions

SCOPE = {"planes": 64, "width": 0.5, "depths": [3, 4, 6, 3], "name": "x", "flag": True, "lazy": lambda: 7}


def evaluate(text: str, shapes=None):
    return Evaluator(SCOPE, shapes).evaluate(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("=planes * 4 + 1 - 2", 255),
        ("=7 // 2", 3),
        ("=-7 // 2", -4),
        ("=7 / 2", 3.5),
        ("=7 % 3", 1),
        ("=2 ** 10", 1024),
        ("=-planes", -64),
        ("=(planes + 1) * 2", 130),
        ("=min(3, 1, 2)", 1),
        ("=max(depths)", 6),
        ("=round(2.5)", 2),
        ("=round(3.14159, 2)", 3.14),
        ("=abs(-3)", 3),
        ("=floor(2.7)", 2),
        ("=ceil(2.1)", 3),
        ("=int(2.9)", 2),
        ("=float(3)", 3.0),
        ("=str(3)", "3"),
        ("=len(depths)", 4),
        ("=sum(depths)", 16),
        ("=make_divisible(32 * width)", 16),
        ("=make_divisible(100, 16)", 96),
        ("=1 < 2 <= 2", True),
        ("=5 > 3 >= 4", False),
        ("=planes == 64 and not flag", False),
        ("=1 != 2 or flag", True),
        ("=3 in depths", True),
        ("=5 not in depths", True),
        ("=planes if flag else 0", 64),
        ("=1 if planes > 100 else 2", 2),
        ("=depths[0]", 3),
        ("=depths[-1]", 3),
        ("=depths[1:3]", [4, 6]),
        ("=[1, planes]", [1, 64]),
        ("='a' + name", "ax"),
        ("=[1] + [2]", [1, 2]),
        ("=lazy + 1", 8),  # a callable in scope is a lazily computed value
        ("=true", True),
        ("=null", None),
        ("planes // 2", 32),  # the marker is optional for the evaluator itself
    ],
)
def test_expression_values(text, value):
    assert evaluate(text) == value
    assert type(evaluate(text)) is type(value)


def test_shape_functions_take_layer_names_not_values():
    asked = []

    def shape_of(name):
        asked.append(name)
        return (16, 8, 4)

    assert evaluate("=shape(skip)", shape_of) == [16, 8, 4]
    assert evaluate("=channels(enc1.pool)", shape_of) == 16
    assert evaluate("=spatial('a')", shape_of) == [8, 4]
    assert asked == ["skip", "enc1.pool", "a"]
    with pytest.raises(ExprError, match="only layer parameters know shapes"):
        evaluate("=shape(skip)")


SIDE_EFFECT = "=__import__('os').system('touch {marker}')"
REFUSED = [
    ("=plane", "unknown name 'plane'"),
    ("=x.__class__", "Attribute is not allowed"),
    ("=planes.real", "Attribute is not allowed"),
    ("=__import__('os')", "unknown function '__import__'"),
    ("=open('/etc/passwd')", "unknown function 'open'"),
    ("=getattr(planes, 'real')", "unknown function 'getattr'"),
    ("=planes(1)", "unknown function 'planes'"),
    ("=(lambda: 1)", "Lambda is not allowed"),
    ("=(lambda: 1)()", "only plain function names can be called"),
    ("=[i for i in depths]", "ListComp is not allowed"),
    ("=(i for i in depths)", "GeneratorExp is not allowed"),
    ("={1: 2}", "Dict is not allowed"),
    ("=f'{planes}'", "JoinedStr is not allowed"),
    ("=(y := 1)", "NamedExpr is not allowed"),
    ("=b'x'", "constant b'x' is not allowed"),
    ("=10**10**10", "too large"),
    ("=9**9**9**9", "too large"),
    ("=2**63", "too large"),
    ("=10**18 * 10", "out of range"),
    ("=1e308 * 10", "non-finite"),
    ("=round(1e300)", "out of range"),
    ("=1 // 0", "division by zero"),
    ("=1 / 0", "division by zero"),
    ("=planes % 0", "division by zero"),
    ("='a' * 3", "cannot compute str * int"),
    ("=[0] * 10**9", "cannot compute list * int"),
    ("=planes + 'a'", "cannot compute int + str"),
    ("=-'a'", "cannot negate a str"),
    ("=~1", "operator ~ is not allowed"),  # was read as +1
    ("=round(5, -10**18)", "digits must be an integer from -400 to 400"),  # never returned
    ("=round(5, 1.5)", "digits must be an integer"),
    ("=1 < 'a'", "cannot compare int with str"),
    ("=planes[0]", "cannot index a int"),
    ("=depths[9]", "out of range"),
    ("=depths['a']", "index must be an integer"),
    ("=depths[0:2:0]", "slice step cannot be zero"),
    ("=max()", "needs at least one value"),
    ("=max(1, b=2)", "keyword arguments are not supported"),
    ("=len(3)", "needs one list"),
    ("=int('x')", "needs a number"),
    ("=make_divisible(10, 0)", "divisor must be a positive integer"),
    ("=planes @ planes", "MatMult is not allowed"),
    ("=planes << 2", "LShift is not allowed"),
    ("=1 +", "invalid expression"),
    ("=" + "1+" * 600 + "1", "longer than 1000 characters"),
    ("=" + "1+" * 150 + "1", "more than 200 parts"),
    ("=" + "-" * 900 + "1", "more than 200 parts"),
    ("=" + "(" * 300 + "1" + ")" * 300, "invalid expression"),
    ("=" + "[" * 400 + "]" * 400, "invalid expression"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[t[:30] for t, _ in REFUSED])
def test_expression_refusals_are_expr_errors_and_fast(text, message):
    with within(0.5), pytest.raises(ExprError) as info:
        evaluate(text)
    assert message in info.value.message


def test_unknown_name_suggests_and_lists_the_scope():
    with pytest.raises(ExprError) as info:
        evaluate("=plane * 2")
    assert info.value.hint.startswith("did you mean 'planes'?")
    assert "depths, flag, lazy, name, planes, width" in info.value.hint
    with pytest.raises(ExprError) as info:
        evaluate("=mke_divisible(3)")
    assert "did you mean 'make_divisible'?" in info.value.hint


def test_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    called = []
    scope = {**SCOPE, "secret": lambda: called.append(1) or 1}
    for text in [
        SIDE_EFFECT.format(marker=marker),
        f"=open('{marker}', 'w')",
        "=(lambda: secret)()",
        "=[secret for _ in [1]]",
        "=secret.__class__",
    ]:
        with pytest.raises(ExprError):
            Evaluator(scope).evaluate(text)
    assert not marker.exists()
    assert called == []


# ---------------------------------------------------------------- errors through blocks and files

BLOCK_SPEC = """
    netspec: 1
    input: [3, 16, 16]
    blocks:
      cbr:
        params: {channels: int, stride: 1}
        layers:
          - {type: conv, name: conv, out_channels: =channels, kernel_size: 3, stride: =stride, padding: 1}
          - {type: relu}
    layers:
      - USE
"""


def block_spec(tmp_path, use: str, definition: str | None = None) -> tuple[Path, str]:
    text = BLOCK_SPEC.replace("USE", use)
    if definition is not None:
        text = text.replace("out_channels: =channels,", definition)
    return write(tmp_path, "spec.yaml", text)


def test_unknown_block_parameter(tmp_path):
    path, text = block_spec(tmp_path, "{type: cbr, name: stem, channels: 8, strid: 2}")
    message = error(path)
    assert f"{path}:{loc(text, 'strid: 2')}: unknown parameter 'strid' of block 'cbr'" in message
    assert "did you mean 'stride'?" in message
    assert f"(defined at {path}:{loc(text, 'params: {channels')})" in message


def test_missing_required_parameter(tmp_path):
    path, text = block_spec(tmp_path, "{type: cbr, name: stem}")
    message = error(path)
    assert f"{path}:{loc(text, '{type: cbr, name: stem}')}: block 'cbr' needs parameter 'channels'" in message
    assert f"declared at {path}:{loc(text, 'int, stride')}" in message


def test_wrong_parameter_type(tmp_path):
    path, text = block_spec(tmp_path, "{type: cbr, name: stem, channels: '8.5'}")
    message = error(path)
    assert (
        f"{path}:{loc(text, chr(39) + '8.5')}: parameter 'channels' of block 'cbr' expects int, got str '8.5'"
        in message
    )
    assert f"declared at {path}:{loc(text, 'int, stride')}" in message


SIZED = """
input: [3, 17, 17]
blocks:
  unit:
    params: {kernel_size: DECLARED}
    layers:
      - {type: conv, out_channels: 4, kernel_size: =kernel_size, padding: 0}
layers:
  - {type: unit, kernel_size: GIVEN}
"""


@pytest.mark.parametrize(
    "given, output",
    [
        ("3", [4, 15, 15]),
        ("[1, 7]", [4, 17, 11]),
        ("[]", None),
        ("[1, true]", None),
        ("1.5", None),
    ],
)
def test_a_size_parameter_takes_an_int_or_a_list_of_ints(given, output):
    """Inception's 1x7/7x1 convs through one block: `kernel_size: 1` took no [1, 7] (only `any` did)."""
    text = SIZED.replace("DECLARED", "{type: size, default: 1}").replace("GIVEN", given)
    if output is None:
        with pytest.raises(
            netspec.SpecError, match=r"parameter 'kernel_size' of block 'unit' expects size, got"
        ):
            netspec.load(text)
    else:
        assert list(netspec.load(text).layers[-1].output_shape) == output


def test_an_int_parameter_given_a_list_of_ints_is_told_of_size():
    with pytest.raises(netspec.SpecError) as caught:
        netspec.load(SIZED.replace("DECLARED", "1").replace("GIVEN", "[1, 7]"))
    (problem,) = caught.value.problems
    assert problem.message == "parameter 'kernel_size' of block 'unit' expects int, got list [1, 7]"
    assert problem.hint.endswith(
        "to take an int or a list of ints, declare it `kernel_size: {type: size, default: 1}`"
    )
    with pytest.raises(netspec.SpecError) as caught:  # a list that is no size: no such hint
        netspec.load(SIZED.replace("DECLARED", "1").replace("GIVEN", "[a, b]"))
    assert "type: size" not in caught.value.problems[0].hint
    with pytest.raises(netspec.SpecError) as caught:  # an optional null default stays optional, in YAML
        netspec.load(SIZED.replace("DECLARED", "{type: int, default: null}").replace("GIVEN", "[1, 7]"))
    assert caught.value.problems[0].hint.endswith("declare it `kernel_size: {type: size, default: null}`")


def test_bool_is_not_an_int_and_an_int_is_a_float(tmp_path):
    path, _ = block_spec(tmp_path, "{type: cbr, name: stem, channels: true}")
    assert "expects int, got bool True" in error(path)
    path, _ = write(
        tmp_path,
        "f.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          drop:
            params: {p: float}
            layers: [{type: dropout, p: =p}]
        layers: [{type: drop, p: 0}]
    """,
    )
    assert netspec.load(path).layer("drop_0.0").params.p == 0


def test_bad_expression_inside_a_block_names_definition_and_use(tmp_path):
    path, text = block_spec(tmp_path, "{type: cbr, name: stem, channels: 8}", "out_channels: =chanels * 2,")
    message = error(path)
    assert f"{path}:{loc(text, '=chanels')}: '=chanels * 2': unknown name 'chanels'" in message
    assert (
        f"in block 'cbr' used at {path}:{loc(text, '{type: cbr, name: stem')} as 'stem' "
        "with channels=8, stride=1" in message
    )
    assert "did you mean 'channels'?" in message


def test_division_by_zero_inside_a_block(tmp_path):
    path, text = block_spec(
        tmp_path, "{type: cbr, name: stem, channels: 8}", "out_channels: =channels // (stride - 1),"
    )
    message = error(path)
    assert (
        f"{path}:{loc(text, '=channels //')}: '=channels // (stride - 1)': division by zero in 8 // 0"
        in message
    )
    assert f"used at {path}:{loc(text, '{type: cbr, name: stem')}" in message


def test_shape_error_inside_a_repeated_block_names_the_dotted_layer(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 12, 12]
        blocks:
          down:
            params: {channels: int}
            layers:
              - {type: conv, name: conv, out_channels: =channels, kernel_size: 5}
              - {type: maxpool, kernel_size: 2}
        layers:
          - {type: down, name: stage, repeat: 3, channels: 4}
    """,
    )
    message = error(path)
    assert re.search(
        rf"^{re.escape(str(path))}:{loc(text, '5}')}: layer \d+ 'stage\.1\.conv' \(conv\): kernel", message
    )
    assert (
        f"in block 'down' used at {path}:{loc(text, '{type: down')} as 'stage.1' with channels=4" in message
    )


def test_a_block_using_itself(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          loop:
            layers:
              - {type: relu}
              - {type: loop}
        layers:
          - {type: relu}
          - {type: loop, name: x}
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, 'loop}')}: block 'loop' uses itself: loop → loop" in message
    assert f"in block 'loop' used at {path}:{loc(text, '{type: loop, name: x}')} as 'x'" in message


def test_a_block_using_itself_through_another_names_the_cycle(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          a:
            layers:
              - {type: relu}
              - {type: b}
          b:
            layers:
              - {type: a}
        layers:
          - {type: a, name: x}
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, 'a}')}: block 'a' uses itself: a → b → a" in message
    assert f"in block 'b' used at {path}:{loc(text, '{type: b}')} as 'x.1'" in message
    assert f"in block 'a' used at {path}:{loc(text, '{type: a, name: x}')} as 'x'" in message


def test_include_cycle(tmp_path):
    write(tmp_path, "a.yaml", "include: b.yaml\nblocks: {x: {layers: [{type: relu}]}}\n")
    b, b_text = write(tmp_path, "b.yaml", "include: a.yaml\n")
    main, _ = write(
        tmp_path,
        "main.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: [a.yaml]
        layers: [{type: x}]
    """,
    )
    message = error(main)
    assert f"{b}:{loc(b_text, 'a.yaml')}: include: 'a.yaml' makes an include cycle" in message
    assert "a.yaml → b.yaml → a.yaml" in message  # the cycle, each file once


def test_include_cycle_through_the_spec_itself(tmp_path):
    a, _ = write(
        tmp_path,
        "a.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: b.yaml
        layers: [{type: x}]
    """,
    )
    b, b_text = write(tmp_path, "b.yaml", "include: a.yaml\nblocks: {x: {layers: [{type: relu}]}}\n")
    message = error(a)
    assert (
        f"{b}:{loc(b_text, 'a.yaml')}: include: 'a.yaml' makes an include cycle: a.yaml → b.yaml → a.yaml"
        in message
    )


def test_a_spec_including_itself(tmp_path):
    path, text = write(
        tmp_path,
        "self.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: self.yaml
        layers: [{type: relu}]
    """,
    )
    message = error(path)
    assert (
        f"{path}:{loc(text, 'self.yaml')}: include: 'self.yaml' makes an include cycle: self.yaml → self.yaml"
        in message
    )


def test_missing_include(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: [blocks/nothere.yaml]
        layers: [{type: relu}]
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, 'blocks/')}: include: file 'blocks/nothere.yaml' not found" in message
    assert str(tmp_path.resolve() / "blocks/nothere.yaml") in message


@pytest.mark.parametrize("key", ["include", "extends"])
def test_files_outside_the_spec_directory_are_refused(tmp_path, key):
    write(tmp_path, "shared.yaml", "blocks: {x: {layers: [{type: relu}]}}\n")
    path, text = write(
        tmp_path / "project",
        "spec.yaml",
        f"""
        netspec: 1
        input: [3, 8, 8]
        {key}: ../shared.yaml
        layers: [{{type: relu}}]
    """,
    )
    message = error(path)
    assert (
        f"{path}:{loc(text, '../shared')}: {key}: '../shared.yaml' is outside the spec's directory" in message
    )
    absolute = str(tmp_path.resolve() / "project" / "shared.yaml")
    write(tmp_path / "project", "shared.yaml", "blocks: {x: {layers: [{type: relu}]}}\n")
    path, text = write(tmp_path / "project", "spec.yaml", text.replace("../shared.yaml", absolute))
    message = error(path)
    assert f"{path}:{loc(text, absolute)}: {key}: {absolute!r} is an absolute path" in message


def test_include_paths_are_relative_to_the_including_file(tmp_path):
    write(
        tmp_path,
        "lib/convs.yaml",
        """
        include: acts.yaml
        params: {base: 4}
        blocks:
          cbr:
            params: {channels: int}
            layers:
              - {type: conv, out_channels: =channels * base, kernel_size: 3, padding: 1}
              - {type: act}
    """,
    )
    write(tmp_path, "lib/acts.yaml", "blocks: {act: {layers: [{type: relu}]}}\n")
    path, _ = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: lib/convs.yaml
        params: {base: 2}
        layers:
          - {type: cbr, name: b1, channels: 3}
    """,
    )
    spec = netspec.load(path)
    assert names(spec) == ["b1.0", "b1.1.0"]
    assert spec.shapes()["b1.0"] == (6, 8, 8)  # the spec's own params win over an include's


def test_an_error_inside_an_included_file_names_that_file_and_the_use(tmp_path):
    lib, lib_text = write(
        tmp_path,
        "lib/blocks.yaml",
        """
        blocks:
          cbr:
            params: {channels: int}
            layers:
              - {type: conv, name: conv, out_channels: =channels, kernel_size: 3}
    """,
    )
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 2, 2]
        include: lib/blocks.yaml
        layers:
          - {type: relu}
          - {type: cbr, name: b1, channels: 2}
    """,
    )
    message = error(path)
    assert f"{lib}:{loc(lib_text, '3}')}: layer 1 'b1.conv' (conv): kernel spans 3" in message
    assert f"in block 'cbr' used at {path}:{loc(text, '{type: cbr')} as 'b1' with channels=2" in message
    lib.write_text(lib_text.replace("=channels", "=chanels"))
    message = error(path)
    assert f"{lib}:{loc(lib_text, '=channels')}: '=chanels': unknown name 'chanels'" in message
    assert f"used at {path}:{loc(text, '{type: cbr')}" in message


def test_an_included_file_holds_only_blocks_and_params(tmp_path):
    lib, _ = write(tmp_path, "lib.yaml", "blocks: {x: {layers: [{type: relu}]}}\nlayers: [{type: relu}]\n")
    path, _ = write(
        tmp_path, "spec.yaml", "netspec: 1\ninput: [3, 8, 8]\ninclude: lib.yaml\nlayers: [{type: x}]\n"
    )
    message = error(path)
    assert message.startswith(f"{lib}")
    assert "an included file holds blocks: and params: only, not ['layers']" in message


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        (
            "include",
            "- 1\n- 2\n",
            "include: 'lib.yaml' holds a list; an included file maps blocks: and params:",
        ),
        ("include", "hello\n", "include: 'lib.yaml' holds a line of text"),
        ("include", "", "include: 'lib.yaml' is empty"),
        ("extends", "[1]\n", "extends: 'lib.yaml' holds a list; a base spec is a mapping"),
    ],
)
def test_an_included_or_base_file_that_is_not_a_mapping_is_an_error(tmp_path, key, content, message):
    """It was read as an empty include: whatever the user meant to put there was silently missing."""
    write(tmp_path, "lib.yaml", content)
    path, text = write(
        tmp_path, "spec.yaml", f"netspec: 1\ninput: [3, 8, 8]\n{key}: lib.yaml\nlayers: [{{type: relu}}]\n"
    )
    assert f"{path}:{loc(text, 'lib.yaml')}: {message}" in error(path)


def test_a_block_file_included_twice_is_not_a_conflict(tmp_path):
    """Two block libraries that both include one common file (a diamond), or one file listed twice."""
    write(tmp_path, "lib/common.yaml", "blocks: {act: {layers: [{type: relu}]}}\n")
    write(
        tmp_path,
        "lib/convs.yaml",
        """
        include: common.yaml
        blocks: {convs: {layers: [{type: conv, out_channels: 4, kernel_size: 1}, {type: act}]}}
    """,
    )
    write(
        tmp_path,
        "lib/heads.yaml",
        """
        include: common.yaml
        blocks: {head: {layers: [{type: act}, {type: flatten}]}}
    """,
    )
    path, _ = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: [lib/convs.yaml, lib/heads.yaml]
        layers: [{type: convs, name: body}, {type: head, name: head}]
    """,
    )
    assert names(netspec.load(path)) == ["body.0", "body.1.0", "head.0.0", "head.1"]
    twice, _ = write(
        tmp_path,
        "twice.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: [lib/common.yaml, lib/common.yaml]
        layers: [{type: act, name: a}]
    """,
    )
    assert names(netspec.load(twice)) == ["a.0"]


def test_a_block_defined_in_two_included_files_names_both_definitions_alike(tmp_path):
    """The first definition was located at its `layers:` key, the second at its name."""
    for name in ("i1.yaml", "i2.yaml"):
        write(tmp_path, name, "blocks:\n  cb:\n    layers:\n      - {type: relu}\n")
    path, _ = write(
        tmp_path, "m.yaml", "netspec: 1\ninput: [3]\ninclude: [i1.yaml, i2.yaml]\nlayers: [{type: cb}]\n"
    )
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(path)
    first = (tmp_path / "i1.yaml").resolve()
    assert str(info.value).startswith(
        f"{first.parent / 'i2.yaml'}:2:3: block 'cb' is also defined at {first}:2:3"
    )


def test_extends_merges_child_over_base(tmp_path):
    write(
        tmp_path,
        "base.yaml",
        """
        netspec: 1
        name: base
        input: [3, 8, 8]
        params: {width: 4, depth: 2}
        train: {max_epochs: 3, seed: 1}
        layers:
          - {type: conv, name: c, out_channels: =width, kernel_size: 3, repeat: =depth}
    """,
    )
    child, _ = write(
        tmp_path,
        "child.yaml",
        """
        extends: base.yaml
        name: child
        params: {width: 6}
        train: {max_epochs: 5}
    """,
    )
    spec = netspec.load(child)
    assert spec.name == "child"
    assert spec.shapes() == {"c.0": (6, 6, 6), "c.1": (6, 4, 4)}  # width from the child, depth from the base
    assert spec.document.data["params"] == {"width": 6, "depth": 2}
    assert spec.document.data["train"] == {"max_epochs": 5, "seed": 1}
    lists, _ = write(
        tmp_path,
        "lists.yaml",
        """
        extends: base.yaml
        layers: [{type: flatten}]
    """,
    )
    assert names(netspec.load(lists)) == ["flatten_0"]  # a list is replaced, not merged


def test_an_error_in_the_base_of_extends_names_the_base(tmp_path):
    base, base_text = write(
        tmp_path,
        "base.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        params: {k: 3}
        layers:
          - {type: conv, name: c, out_channels: 4, kernel_size: =k}
    """,
    )
    child, _ = write(tmp_path, "child.yaml", "extends: base.yaml\nparams: {k: 9}\n")
    message = error(child)
    assert f"{base}:{loc(base_text, '=k')}: layer 0 'c' (conv): kernel spans 9" in message


def test_uses_and_definitions_in_the_base_of_extends_are_located_in_the_base(tmp_path):
    base, base_text = write(
        tmp_path,
        "family/base.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          cb:
            params: {c: int}
            layers:
              - {type: conv, name: conv, out_channels: =c, kernel_size: 5}
        layers:
          - {type: relu}
          - {type: cb, name: a, c: 4}
        """,
    )
    small, _ = write(tmp_path, "small.yaml", "extends: family/base.yaml\ninput: [3, 4, 4]\n")
    message = error(small)
    assert f"{base}:{loc(base_text, '5}')}: layer 1 'a.conv' (conv): kernel spans 5" in message
    assert f"in block 'cb' used at {base}:{loc(base_text, '{type: cb')} as 'a' with c=4" in message
    typo, _ = write(tmp_path, "typo.yaml", "extends: family/base.yaml\n")
    typo_text = base_text.replace("c: 4}", "c: 4, d: 1}")
    base.write_text(typo_text)
    message = error(typo)
    assert f"{base}:{loc(typo_text, 'd: 1')}: unknown parameter 'd' of block 'cb'" in message
    assert f"(defined at {base}:{loc(base_text, 'params: {c')})" in message


def test_uses_in_a_spec_with_variants_are_located(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variant: big
        variants:
          big: {params: {k: 3}}
        params: {k: 1}
        blocks:
          cb:
            params: {c: int}
            layers:
              - {type: conv, name: conv, out_channels: =c, kernel_size: =k * 3}
        layers:
          - {type: relu}
          - {type: cb, name: a, c: 4}
        """,
    )
    message = error(path)
    assert f"{path}:{loc(text, '=k * 3')}: layer 1 'a.conv' (conv): kernel spans 9" in message
    assert f"in block 'cb' used at {path}:{loc(text, '{type: cb')} as 'a' with c=4" in message


def test_unknown_variant_suggests(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variant: smal
        variants:
          small: {params: {width: 4}}
          large: {params: {width: 16}}
        params: {width: 8}
        layers: [{type: conv, out_channels: =width, kernel_size: 1}]
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, 'smal')}: unknown variant 'smal'" in message
    assert "did you mean 'small'? variants: small, large" in message
    assert error(path, overrides=["variant=larg"]).startswith("--set variant=larg: unknown variant 'larg'")


def test_a_variant_name_yaml_reads_as_a_number_is_a_located_error(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variant: "18"
        variants:
          18: {params: {width: 4}}
        params: {width: 8}
        layers: [{type: conv, out_channels: =width, kernel_size: 1}]
    """,
    )
    message = error(path)  # was an internal error (a TypeError joining the names)
    assert f"{path}:{loc(text, '18: ')}: variant names are text; YAML read 18 as a number" in message


def test_set_variant_picks_the_variant_and_records_it(tmp_path):
    path, _ = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variant: small
        variants:
          small: {params: {width: 4}}
          large: {name: large, params: {width: 16}}
        params: {width: 8, depth: 1}
        layers: [{type: conv, name: c, out_channels: =width, kernel_size: 1, repeat: =depth}]
    """,
    )
    assert netspec.load(path).shapes() == {"c.0": (4, 8, 8)}
    spec = netspec.load(path, overrides=["variant=large", "params.depth=2"])
    assert spec.shapes() == {"c.0": (16, 8, 8), "c.1": (16, 8, 8)}
    assert spec.name == "large"
    assert spec.document.data["variant"] == "large"
    assert "variants" not in spec.document.data


def test_variants_without_a_choice_and_a_choice_without_variants(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variants: {small: {params: {width: 4}}}
        params: {width: 8}
        layers: [{type: conv, out_channels: =width, kernel_size: 1}]
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, '{small')}: this spec has variants; pick one with `variant:`" in message
    flat, _ = write(
        tmp_path, "flat.yaml", "netspec: 1\ninput: [3, 8, 8]\nparams: {w: 2}\nlayers: [{type: relu}]\n"
    )
    assert "this spec defines no variants" in error(flat, overrides=["variant=small"])


def test_an_error_in_a_variants_value_points_into_the_variant(tmp_path):
    path, text = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        variant: bad
        variants:
          bad: {params: {k: 9}}
        params: {k: 1}
        layers: [{type: conv, out_channels: 2, kernel_size: =k}]
    """,
    )
    message = error(path)
    assert f"{path}:{loc(text, '=k')}: layer 0 'conv_0' (conv): kernel spans 9" in message


# ---------------------------------------------------------------- semantics of expansion

CBR = """
    netspec: 1
    input: [3, 8, 8]
    blocks:
      cbr:
        params: {channels: int, stride: 1}
        layers:
          - {type: conv, out_channels: =channels, kernel_size: 3, stride: =stride, padding: 1}
          - {type: batchnorm}
          - {type: relu}
    layers:
"""


def test_repeat_names_and_chains_and_first_changes_only_the_first():
    spec = load_text(CBR + "      - {type: cbr, name: layer1, repeat: 3, channels: 4, first: {stride: 2}}\n")
    assert names(spec) == [f"layer1.{i}.{j}" for i in range(3) for j in range(3)]
    assert [layer.inputs for layer in spec.layers if layer.name.endswith(".0")] == [
        ("input",),
        ("layer1.0.2",),
        ("layer1.1.2",),
    ]
    assert [spec.layer(f"layer1.{i}.0").params.stride for i in range(3)] == [2, 1, 1]
    assert spec.shapes()["layer1.2.2"] == (4, 4, 4)


def test_index_counts_repetitions_in_the_use():
    spec = load_text(CBR + '      - {type: cbr, name: s, repeat: 3, channels: "=4 * (index + 1)"}\n')
    assert [spec.shapes()[f"s.{i}.0"][0] for i in range(3)] == [4, 8, 12]


def test_unnamed_layers_in_a_block_are_numbered_like_nn_sequential():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        blocks:
          b:
            layers:
              - {type: conv, out_channels: 4, kernel_size: 1, repeat: 2}
              - {type: relu}
              - {type: conv, name: named, out_channels: 4, kernel_size: 1}
              - {type: relu}
        layers:
          - {type: b, name: x}
          - {type: relu}
          - {type: conv, out_channels: 2, kernel_size: 1, repeat: 2}
    """)
    # inside a block: positions, a name takes its position; at top level: type_counter
    assert names(spec) == ["x.0", "x.1", "x.2", "x.named", "x.4", "relu_1", "conv_2", "conv_3"]
    assert spec.layer("x.1").inputs == ("x.0",)


def test_if_false_leaves_the_layer_out_and_its_name_stands_for_its_input():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        blocks:
          res:
            params: {channels: int}
            layers:
              - {type: conv, name: conv, out_channels: =channels, kernel_size: 3, padding: 1}
              - type: conv
                name: down
                from: input
                if: =in_channels != channels
                out_channels: =channels
                kernel_size: 1
              - {type: add, from: [conv, down]}
        layers:
          - {type: res, name: a, channels: 3}
          - {type: res, name: b, channels: 5}
    """)
    assert names(spec) == ["a.conv", "a.1", "b.conv", "b.down", "b.2"]
    assert spec.layer("a.1").inputs == ("a.conv", "input")
    assert spec.layer("b.2").inputs == ("b.conv", "b.down")


@pytest.mark.parametrize("switch", ["if: =use_b", "repeat: '=1 if use_b else 0'"])
@pytest.mark.parametrize("on", [True, False])
def test_switching_an_item_off_rewires_nothing_but_the_item(switch, on):
    """Left out, a side branch is an identity on its input: the next layer's implicit input is
    that input, as when the branch is there (the branch reads `input`, so does the next layer)."""
    spec = load_text(f"""
        netspec: 1
        input: [3, 8, 8]
        params: {{use_b: {str(on).lower()}}}
        layers:
          - {{type: conv, name: a, out_channels: 4, kernel_size: 3, stride: 2}}
          - {{type: identity, name: b, from: input, {switch}}}
          - {{type: conv, name: c, out_channels: 6, kernel_size: 1}}
          - layers: [{{type: relu, name: gone}}]
            from: a
            if: false
          - {{type: relu, name: d}}
        outputs: [c, d]
    """)
    assert spec.layer("c").inputs == (("b.0" if "repeat" in switch else "b") if on else "input",)
    assert spec.shapes()["c"] == (6, 8, 8)
    assert spec.layer("d").inputs == ("a",)  # the left-out group stands for its input, a


def test_outer_index_reaches_the_enclosing_repetition_from_a_repeated_item():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        params: {widths: [4, 8], depths: [1, 2]}
        layers:
          - repeat: 2
            layers:
              - {type: conv, repeat: "=depths[index]", out_channels: "=widths[outer_index]", kernel_size: 1}
              - {type: relu, name: "='r' + str(index)"}
    """)
    assert [spec.shapes()[layer.name][0] for layer in spec.layers if layer.type == "conv"] == [4, 8, 8]
    assert [layer.name for layer in spec.layers if layer.type == "relu"] == ["r0", "r1"]
    for text, hint in [
        ("{type: conv, out_channels: =index, kernel_size: 1}", "`index` exists only in a repeated item"),
        ("{type: conv, out_channels: =outer_index, kernel_size: 1, repeat: 2}", "`outer_index` exists only"),
    ]:
        with pytest.raises(netspec.SpecError, match=re.escape(hint)):
            load_text(f"netspec: 1\ninput: [3, 8, 8]\nlayers:\n  - {text}\n")
    with pytest.raises(netspec.SpecError, match="name 'outer_index' is not allowed"):
        load_text("netspec: 1\ninput: [3, 8, 8]\nparams: {outer_index: 1}\nlayers: [{type: relu}]\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("params: {on: 1}\nlayers: [{type: relu}]", "params: name True is not allowed"),
        ("params: {on: 1, yes: 2}\nlayers: [{type: relu}]", "duplicate key True"),
        ("layers: [{type: relu, on: 1}]", "layer 0 (relu): a key must be text; YAML read this one as bool"),
        ("layers: [{type: relu}]\ntrain: {12: 1}", "train: a key must be text; YAML read this one as int 12"),
    ],
)
def test_a_key_yaml_read_as_a_boolean_or_number_is_told_to_be_quoted(text, message):
    with pytest.raises(netspec.SpecError) as caught:
        load_text(f"netspec: 1\ninput: [3, 8, 8]\n{text}\n")
    assert message in str(caught.value) and "quote the key" in str(caught.value)


@pytest.mark.parametrize(
    ("layers", "said", "not_said"),
    [
        (  # a top-level style name for an unnamed layer in a block
            "blocks: {b: {layers: [{type: relu}, {type: sigmoid}, {type: mul, from: [sigmoid_1, input]}]}}\n"
            "layers: [{type: b, name: x}]",
            "did you mean 'x.1'? inside a block, unnamed layers are numbered by position",
            None,
        ),
        (  # a list whose entry is not a name: one error, at the entry
            "layers: [{type: relu}, {type: add, from: [4, input]}]",
            "from.0: Input should be a valid string, got int 4",
            "from: Input should be a valid string, got list",
        ),
        ("layers: [{type: upsample, scale_factor: 2, mode: nearest_exact}]", "mean 'nearest-exact'?", None),
        ("params: {w: 6}\nlayers: [{type: conv, out_channels: =w / 4, kernel_size: 1}]", "use `//`", None),
    ],
)
def test_messages_point_to_the_fix(layers, said, not_said):
    with pytest.raises(netspec.SpecError) as caught:
        load_text(f"netspec: 1\ninput: [3, 8, 8]\n{layers}\n")
    assert said in str(caught.value)
    assert not_said is None or not_said not in str(caught.value)


def test_if_must_be_a_boolean():
    with pytest.raises(netspec.SpecError, match=r"<string>:4:\d+: if: expected true or false, got 1"):
        load_text("""
            netspec: 1
            input: [3, 8, 8]
            layers:
              - {type: relu, if: 1}
              - {type: relu}
        """)


def test_repeat_zero_leaves_the_layer_out():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        layers:
          - {type: conv, name: c, out_channels: 2, kernel_size: 1}
          - {type: relu, name: r, repeat: 0}
          - {type: flatten, from: r}
    """)
    assert [(layer.name, layer.inputs) for layer in spec.layers] == [("c", ("input",)), ("flatten_2", ("c",))]


@pytest.mark.parametrize("value", ["-1", "10001", "2.5", "'3'"])
def test_repeat_bounds(value):
    with pytest.raises(
        netspec.SpecError, match=r"<string>:4:\d+: repeat: expected an integer from 0 to 10000"
    ):
        load_text(f"""
            netspec: 1
            input: [3, 8, 8]
            layers:
              - {{type: relu, repeat: {value}}}
        """)


def test_groups_are_spliced_with_index():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        layers:
          - layers:
              - {type: conv, name: "='conv' + str(index)", out_channels: "=4 * (index + 1)", kernel_size: 1}
              - {type: relu, name: "='relu' + str(index)"}
            repeat: 3
          - {type: flatten}
    """)
    assert names(spec) == ["conv0", "relu0", "conv1", "relu1", "conv2", "relu2", "flatten_6"]
    assert spec.layer("conv1").inputs == ("relu0",)
    assert spec.shapes()["relu2"] == (12, 8, 8)


def test_first_on_a_group_is_not_silently_ignored():
    """A group accepts `first:` (its error message lists it); it must act or be refused."""
    text = """
        netspec: 1
        input: [3, 8, 8]
        layers:
          - layers:
              - {type: conv, out_channels: 4, kernel_size: 3, padding: 1}
            repeat: 2
            first: {stride: 2}
    """
    try:
        spec = load_text(text)
    except netspec.SpecError as exc:
        assert re.match(r"<string>:\d+:\d+: .*first", str(exc))
    else:
        assert [layer.params.stride for layer in spec.layers] == [2, 1]


def test_groups_take_if_repeat_zero_and_from():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        layers:
          - {type: conv, name: a, out_channels: 2, kernel_size: 1}
          - {type: conv, name: b, out_channels: 3, kernel_size: 1}
          - layers: [{type: relu, name: gone}]
            if: false
          - layers: [{type: relu, name: gone2}]
            repeat: 0
          - layers: [{type: conv, name: c, out_channels: 5, kernel_size: 1}]
            from: a
          - {type: concat, from: [c, b]}
    """)
    assert [(layer.name, layer.inputs) for layer in spec.layers] == [
        ("a", ("input",)),
        ("b", ("a",)),
        ("c", ("a",)),
        ("concat_3", ("c", "b")),
    ]


def test_multi_input_block_with_outputs_and_dotted_references():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 8]
        blocks:
          enc:
            params: {channels: int}
            layers:
              - {type: conv, name: conv, out_channels: =channels, kernel_size: 3, padding: 1}
              - {type: maxpool, name: pool, kernel_size: 2}
            outputs: conv
          merge:
            inputs: [x, skip]
            layers:
              - {type: tconv, name: up, from: x, out_channels: "=channels(skip)", kernel_size: 2, stride: 2}
              - {type: concat, name: cat, from: [up, skip]}
        layers:
          - {type: enc, name: enc1, channels: 4}
          - {type: conv, name: mid, from: enc1.pool, out_channels: 6, kernel_size: 1}
          - {type: merge, name: m, from: [mid, enc1]}
    """)
    assert spec.layer("mid").inputs == ("enc1.pool",)
    assert spec.layer("enc1.pool").inputs == ("enc1.conv",)
    assert spec.layer("m.up").inputs == ("mid",)
    assert spec.layer("m.cat").inputs == ("m.up", "enc1.conv")  # `enc1` stands for its outputs: conv
    assert spec.shapes()["m.cat"] == (8, 8, 8)


def test_a_block_use_must_give_every_input():
    with pytest.raises(netspec.SpecError, match=r"block 'two' takes 2 input\(s\) \(a, b\), got 1"):
        load_text("""
            netspec: 1
            input: [3, 8, 8]
            blocks:
              two: {inputs: [a, b], layers: [{type: add, from: [a, b]}]}
            layers:
              - {type: two}
        """)


def test_auto_names_in_a_block_do_not_move_when_another_block_grows():
    template = """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          a:
            layers:
              - {type: conv, out_channels: 4, kernel_size: 1}
              - {type: relu}
          b:
            layers:
              - {type: conv, out_channels: 4, kernel_size: 1}
              EXTRA
              - {type: relu}
        layers:
          - {type: b, name: first}
          - {type: a, name: second}
          - {type: relu}
    """
    before = names(load_text(template.replace("EXTRA", "")))
    after = names(load_text(template.replace("EXTRA", "- {type: batchnorm}")))
    assert [n for n in before if not n.startswith("first.")] == [
        n for n in after if not n.startswith("first.")
    ]
    assert [n for n in after if n.startswith("first.")] == ["first.0", "first.1", "first.2"]


def test_width_and_depth_scale_through_params():
    text = """
        netspec: 1
        input: [3, 16, 16]
        params: {width: 1.0, depth: 1}
        blocks:
          stage:
            params: {channels: int}
            layers:
              - {type: conv, out_channels: =channels, kernel_size: 3, padding: 1}
              - {type: relu}
        layers:
          - {type: stage, name: s1, repeat: =depth, channels: =make_divisible(16 * width)}
          - {type: stage, name: s2, repeat: =depth * 2, channels: =make_divisible(32 * width)}
    """
    small = load_text(text)
    large = load_text(text, overrides=["params.width=2.0", "params.depth=2"])
    assert len(large.layers) == 2 * len(small.layers) == 12
    assert small.output_shapes() == [(32, 16, 16)] and large.output_shapes() == [(64, 16, 16)]


SET_PARAMS_SPEC = """
    netspec: 1
    input: [3, 8, 8]
    params: {width: 8, spare: 1}
    blocks:
      stage:
        params: {channels: int}
        layers:
          - {type: conv, out_channels: =channels, kernel_size: 3}
    layers:
      - {type: stage, channels: =width}
"""


def test_a_set_of_a_param_no_expression_reads_is_refused_at_the_set():
    """`--set params.widht=32` (a typo) changed nothing and exited 0."""
    with pytest.raises(netspec.SpecError) as info:
        load_text(SET_PARAMS_SPEC, overrides=["params.widht=32"])
    (problem,) = info.value.problems
    assert problem.source == "--set params.widht=32"
    assert problem.message == "no expression of the spec reads 'widht': it would change nothing"
    assert problem.hint == "did you mean 'width'? params that expressions read: width"
    assert load_text(SET_PARAMS_SPEC, overrides=["params.width=4"]).output_shapes() == [(4, 6, 6)]
    with pytest.raises(netspec.SpecError, match="'spare': it would change nothing"):
        load_text(SET_PARAMS_SPEC, overrides=["params.spare=2"])  # declared, but nothing reads it
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(REPO / "specs/lenet.yaml", overrides=["params.lr=0.1"])
    assert info.value.problems[0].hint == "no expression reads a param"


def test_a_problem_a_set_param_causes_where_it_is_used_names_the_set():
    with pytest.raises(netspec.SpecError) as info:
        load_text(SET_PARAMS_SPEC, overrides=["params.width=abc"])
    (problem,) = info.value.problems
    assert "parameter 'channels' of block 'stage' expects int, got str 'abc'" in problem.message
    assert problem.details[-1] == "with --set params.width=abc"
    with pytest.raises(netspec.SpecError) as info:  # found by shape inference, after expansion
        load_text(SET_PARAMS_SPEC, overrides=["params.width=0"])
    assert info.value.problems[0].details[-1] == "with --set params.width=0"


def test_scope_is_lexical():
    text = """
        netspec: 1
        input: [3, 8, 8]
        params: {base: 4, channels: 100}
        blocks:
          inner:
            params: {channels: 2}
            layers:
              - {type: conv, out_channels: "=EXPR", kernel_size: 1}
          outer:
            params: {outer_c: int}
            layers:
              - {type: inner}
        layers:
          - {type: outer, name: o, outer_c: 2}
    """
    # the spec's params and the block's own (which shadow them) are visible
    assert load_text(text.replace("EXPR", "base + channels")).shapes()["o.0.0"] == (6, 8, 8)
    # the caller's params are not
    with pytest.raises(netspec.SpecError) as info:
        load_text(text.replace("EXPR", "outer_c"))
    message = str(info.value)
    assert "unknown name 'outer_c'" in message
    assert "names in scope here: base, channels, in_channels, in_shape, in_spatial" in message
    assert "in block 'inner' used at <string>:12:9 as 'o.0'" in message
    assert "in block 'outer' used at <string>:14:5 as 'o' with outer_c=2" in message


def test_shape_names_and_functions_in_expressions():
    spec = load_text("""
        netspec: 1
        input: [3, 8, 6]
        blocks:
          probe:
            layers:
              - type: conv
                name: a
                out_channels: =in_channels + in_shape[1] + len(in_spatial)
                kernel_size: 1
              - {type: conv, name: b, out_channels: "=channels(a) + spatial(input)[1]", kernel_size: 1}
        layers:
          - {type: conv, name: stem, out_channels: 5, kernel_size: 3, padding: 1}
          - {type: probe, name: p}
          - {type: conv, name: tail, out_channels: "=shape(p.a)[0] + channels(stem)", kernel_size: 1}
    """)
    assert spec.shapes()["p.a"][0] == 5 + 8 + 2
    assert spec.shapes()["p.b"][0] == 15 + 6
    assert spec.shapes()["tail"][0] == 15 + 5


def test_shape_of_a_layer_below_is_an_error():
    with pytest.raises(netspec.SpecError, match="no layer 'later' here"):
        load_text("""
            netspec: 1
            input: [3, 8, 8]
            layers:
              - {type: conv, out_channels: "=channels(later)", kernel_size: 1}
              - {type: relu, name: later}
        """)


def test_input_shape_override_reaches_expressions():
    text = """
        netspec: 1
        input: [1, 60, 60]
        blocks:
          up:
            inputs: [x, skip]
            layers:
              - type: tconv
                name: up
                from: x
                out_channels: 4
                kernel_size: 2
                stride: 2
                output_size: =spatial(skip)
              - {type: concat, from: [up, skip]}
        layers:
          - {type: conv, name: enc, out_channels: 4, kernel_size: 3, padding: 1}
          - {type: maxpool, name: pool, kernel_size: 2}
          - {type: up, name: dec, from: [pool, enc]}
    """
    for size in (60, 64, 101):
        assert load_text(text, input_shape=[1, size, size]).output_shapes() == [(8, size, size)]


# ---------------------------------------------------------------- the built module

SMALL = """
    netspec: 1
    input: [3, 8, 8]
    blocks:
      cbr:
        params: {channels: int}
        layers:
          - {type: conv, name: conv, out_channels: =channels, kernel_size: 3, padding: 1, bias: false}
          - {type: batchnorm, name: bn}
          - {type: relu, name: act}
      res:
        layers:
          - {type: cbr, name: body, channels: =in_channels}
          - {type: add, name: add, from: [body, input]}
    layers:
      - {type: cbr, name: stem, channels: 4}
      - {type: res, name: stage, repeat: 2}
      - {type: global_avgpool, name: pool}
      - {type: linear, name: fc, out_features: 5}
"""


class _CBR(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = _CBR(c, c)

    def forward(self, x):
        return self.body(x) + x


class _Hand(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _CBR(3, 4)
        self.stage = nn.Sequential(_Res(4), _Res(4))
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.stage(self.stem(x)).mean((2, 3)))


@pytest.fixture
def small():
    torch.manual_seed(0)
    return load_text(SMALL).build()


def test_built_module_nests_submodules_with_dotted_state_dict_keys(small):
    assert isinstance(small.get_submodule("stage.1.body.conv"), nn.Conv2d)
    assert [name for name, _ in small.named_children()] == ["stem", "stage", "pool", "fc"]
    assert [name for name, _ in small.stage.named_children()] == ["0", "1"]
    assert list(small.state_dict()) == list(_Hand().state_dict())


@pytest.mark.parametrize("train", [False, True])
def test_forward_equals_a_hand_written_module(small, train):
    hand = _Hand()
    hand.load_state_dict(small.state_dict(), strict=True)
    with torch.no_grad():
        for p in small.parameters():  # make the batchnorm affine parameters matter
            p.add_(torch.randn_like(p) * 0.1)
    hand.load_state_dict(small.state_dict(), strict=True)
    hand.train(train), small.train(train)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(small(x), hand(x), rtol=0, atol=1e-6)


def test_torch_compile_fullgraph_on_a_block_spec(small):
    small.eval()
    x = torch.randn(2, 3, 8, 8)
    torch.compiler.reset()
    compiled = torch.compile(small, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), small(x))
    torch.compiler.reset()


# as in test_export: torch.jit.script is deprecated, and GraphModule's own annotated empty
# containers warn once; anything else scripting emits still fails the test
SCRIPT_WARNINGS = [
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated"),
    (UserWarning, r"The TorchScript type system doesn't support instance-level annotations on empty"),
]


def test_torch_jit_script_on_a_block_spec(small):
    small.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for category, message in SCRIPT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        scripted = torch.jit.script(small)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), small(x))


# ---------------------------------------------------------------- hostile specs


def test_quadratic_repeat_is_refused_fast_and_located():
    text = """
        netspec: 1
        input: [3, 8, 8]
        blocks:
          inner:
            layers:
              - {type: relu, repeat: 10000}
          outer:
            layers:
              - {type: inner, repeat: 10000}
        layers:
          - {type: outer, name: big}
    """
    with within(10), pytest.raises(netspec.SpecError) as info:
        load_text(text)
    message = str(info.value)
    assert re.match(r"<string>:6:9: the spec (expands to|takes) more than \d+ (layers|steps)", message)
    assert "in block 'outer' used at <string>:11:5 as 'big'" in message


def test_nested_groups_are_bounded():
    with within(10), pytest.raises(netspec.SpecError, match=r"^<string>:\d+:\d+: the spec .*more than \d+"):
        load_text("""
            netspec: 1
            input: [3, 8, 8]
            layers:
              - layers:
                  - layers: [{type: relu, repeat: 10000}]
                    repeat: 10000
                repeat: 10000
        """)


def _chain(depth: int) -> str:
    blocks = "".join(
        f"  b{i}:\n    layers:\n      - {{type: {f'b{i + 1}' if i < depth - 1 else 'relu'}}}\n"
        for i in range(depth)
    )
    return f"netspec: 1\ninput: [3, 8, 8]\nblocks:\n{blocks}layers:\n  - {{type: b0, name: top}}\n"


def test_deep_block_chains_are_bounded():
    with within(1), pytest.raises(netspec.SpecError) as info:
        netspec.load(_chain(40))
    message = str(info.value)
    assert re.match(r"<string>:\d+:\d+: blocks nested deeper than 32", message)
    with within(1):
        spec = netspec.load(_chain(32))
    assert names(spec) == ["top" + ".0" * 32]


def _finishes_or_is_refused(source) -> None:
    """Loading ``source`` ends within 3 s: built (an empty expansion is fine) or a located error."""
    with deadline(3):
        try:
            netspec.load(source)
        except netspec.SpecError as exc:
            assert re.match(r"\S+:\d+:\d+: ", str(exc)), str(exc)


def test_expansions_that_emit_nothing_are_bounded_too():
    """10,000 x 10,000 block instances whose layers are all left out: no layer counts towards the
    layer limit, but the work is 10**8 instances."""
    _finishes_or_is_refused(
        textwrap.dedent("""
            netspec: 1
            input: [3, 8, 8]
            blocks:
              inner:
                layers:
                  - {type: relu, repeat: 0}
              outer:
                layers:
                  - {type: inner, repeat: 10000}
            layers:
              - {type: relu}
              - {type: outer, repeat: 10000}
        """)
    )


def test_nested_groups_of_left_out_layers_are_bounded():
    _finishes_or_is_refused(
        textwrap.dedent("""
            netspec: 1
            input: [3, 8, 8]
            layers:
              - {type: relu}
              - layers:
                  - layers:
                      - layers: [{type: relu, if: false}]
                        repeat: 10000
                    repeat: 10000
                repeat: 10000
        """)
    )


def test_include_fan_out_is_bounded(tmp_path):
    """Each file includes the next one ten times: 10**6 reads at depth 6, far below the depth limit."""
    for i in range(6):
        write(tmp_path, f"f{i}.yaml", "include: [" + ", ".join([f"f{i + 1}.yaml"] * 10) + "]\n")
    write(tmp_path, "f6.yaml", "params: {}\n")
    path, _ = write(
        tmp_path, "spec.yaml", "netspec: 1\ninput: [3, 8, 8]\ninclude: f0.yaml\nlayers: [{type: relu}]\n"
    )
    _finishes_or_is_refused(path)


def test_include_depth_is_bounded(tmp_path):
    for i in range(20):
        write(
            tmp_path,
            f"f{i}.yaml",
            f"include: f{i + 1}.yaml\n" if i < 19 else "blocks: {x: {layers: [{type: relu}]}}\n",
        )
    path, _ = write(
        tmp_path, "spec.yaml", "netspec: 1\ninput: [3, 8, 8]\ninclude: f0.yaml\nlayers: [{type: x}]\n"
    )
    with within(2):
        assert "includes nested deeper than 16" in error(path)


# ---------------------------------------------------------------- docs/language.md stays true

DOC = (REPO / "docs/language.md").read_text()
DOC_SCOPE = {"planes": 64, "width": 0.5, "depths": [3, 4, 6, 3], "stride": 2, "name": "conv"}
DOC_ROWS = re.findall(r"^\| [^|]*(?:\\\|[^|]*)* \| `(=[^`]+)` \| `([^`]+)` \|$", DOC, re.M)


def test_the_docs_state_the_limits():
    from netspec import expand, expressions

    limits = [expand.MAX_REPEAT, expand.MAX_LAYERS, expand.MAX_BLOCK_DEPTH, expand.MAX_INCLUDE_DEPTH]
    limits += [getattr(expand, "MAX_STEPS", 0), expressions.MAX_TEXT, expressions.MAX_NODES]
    section = DOC[DOC.index("## Limits") : DOC.index("## Errors through blocks")]
    for limit in filter(None, limits):
        assert f"{limit:,}" in section or f"{limit}" in section, limit


def test_the_docs_list_every_function():
    from netspec.expressions import FUNCTIONS, SHAPE_FUNCTIONS

    for function in [*FUNCTIONS, *SHAPE_FUNCTIONS]:
        assert f"`{function}(" in DOC, function
    assert len(DOC_ROWS) >= 33  # the two example tables are found


@pytest.mark.parametrize(("text", "value"), DOC_ROWS, ids=[t for t, _ in DOC_ROWS])
def test_the_docs_expression_examples(text, value):
    import yaml

    got = Evaluator(DOC_SCOPE, lambda layer: {"skip": (32, 16, 16)}[layer]).evaluate(text)
    expected = yaml.safe_load(value)
    assert got == expected and type(got) is type(expected)


def test_defaults_written_as_expressions_are_computed_per_use_in_the_block_scope():
    spec = netspec.load(
        textwrap.dedent("""
            netspec: 1
            input: [8, 4, 4]
            blocks:
              mlp:
                params: {hidden: "=in_channels * 4", out: "=hidden // 2"}
                layers:
                  - {type: conv, out_channels: =hidden, kernel_size: 1}
                  - {type: conv, out_channels: =out, kernel_size: 1}
            layers:
              - {type: mlp, name: a}
              - {type: mlp, name: b, hidden: 6}
        """)
    )
    assert [s[0] for s in spec.shapes().values()] == [32, 16, 6, 3]


def test_a_default_expression_of_the_wrong_type_is_located_at_the_default():
    text = textwrap.dedent("""
        netspec: 1
        input: [8, 4, 4]
        blocks:
          b:
            params: {k: {type: int, default: "=1.5"}}
            layers: [{type: conv, out_channels: 2, kernel_size: =k}]
        layers: [{type: b, name: x}]
    """)
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(text)
    assert re.match(r"<string>:6:\d+: default of parameter 'k' computes float 1.5, not int", str(info.value))
    assert "in block 'b' used at <string>:8:" in str(info.value)


def test_a_set_wins_over_the_variant_so_expect_null_drops_a_variants_contract(capsys):
    from netspec.cli import main

    resnet18 = str(REPO / "specs/resnet18.yaml")
    assert main(["build", resnet18, "--set", "params.width=32"]) == 2
    err = capsys.readouterr().err
    assert "expect.params: the network has 3,055,880 parameters, not 11,689,512" in err
    assert "--set expect=null drops the contracts for one run" in err
    assert main(["build", resnet18, "--set", "params.width=32", "--set", "expect=null"]) == 0
    assert "total parameters: 3,055,880" in capsys.readouterr().out
    # a --set of one contract value is located at the --set, over the variant's value
    assert (
        main(["build", str(REPO / "specs/resnet.yaml"), "--variant", "resnet50", "--set", "expect.params=5"])
        == 2
    )
    assert capsys.readouterr().err.startswith(
        "--set expect.params=5: expect.params: the network has 25,557,032"
    )


@pytest.mark.parametrize("kind", ["loop", "directory", "fifo"])
def test_an_include_that_is_no_file_says_what_it_is(tmp_path, kind):
    """A symlink loop was an internal error (RuntimeError); a directory or FIFO read 'not found'."""
    target = tmp_path / "b.yaml"
    if kind == "loop":
        target.symlink_to(tmp_path / "b.yaml")
    elif kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    path, _ = write(
        tmp_path, "spec.yaml", "netspec: 1\ninput: [3, 8, 8]\ninclude: [b.yaml]\nlayers: [{type: relu}]\n"
    )
    message = error(path)
    said = {
        "loop": "'b.yaml' cannot be read",
        "directory": "'b.yaml' is a directory",
        "fifo": "is not a regular file",
    }
    assert said[kind] in message


SHARED_NESTING = "params:\n  p0: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + "".join(
    f"  p{i}: '=[{', '.join([f'p{i - 1}'] * 10)}]'\n" for i in range(1, 8)
)


@pytest.mark.parametrize(
    "use",
    [
        "layers: [{type: conv, out_channels: '=len(str(p7))', kernel_size: 1}]",
        "layers: [{type: relu, if: '=p7 == p7'}]",
        "blocks: {a: {params: {x: any}, layers: [{type: conv, out_channels: 0, kernel_size: 1}]}}\n"
        "layers: [{type: a, x: =p7}]",
    ],
)
def test_a_shared_nested_list_is_bounded_by_its_whole_size(use):
    """Ten references to one list per level nest cheaply, but printing or comparing the value
    walks every copy: seven levels took 13 s and 400 MB (and 32 MB of error message)."""
    started = time.perf_counter()
    with pytest.raises(netspec.SpecError, match="result too large: more than 100,000 items and characters"):
        load_text(f"netspec: 1\ninput: [3, 8, 8]\n{SHARED_NESTING}{use}\n")
    assert time.perf_counter() - started < 10  # seconds: a bound on runaway work, not a benchmark


def test_lists_made_in_each_block_instance_are_bounded_in_all():
    """Each instance made fresh 8,192-item lists: a 1 KB spec took 30 s and 6 GB, or ended in MemoryError."""
    doubling = "".join(f"        p{i}: '=p{i - 1} + p{i - 1}'\n" for i in range(1, 14))
    fresh = "".join(f"        q{i}: '=p13 + []'\n" for i in range(30))
    text = (
        "netspec: 1\ninput: [3, 8, 8]\nblocks:\n  a:\n    params:\n        p0: '=[0]'\n"
        + doubling
        + fresh
        + "    layers: [{type: relu}]\nlayers: [{type: a, repeat: 3000}]\n"
    )
    with pytest.raises(netspec.SpecError, match="make over 5,000,000 list items and characters"):
        load_text(text)


def test_a_huge_integer_in_an_expression_is_a_located_error():
    with pytest.raises(netspec.SpecError, match=r"out of range \(\|value\| > 10\*\*18\): about 10\*\*400"):
        load_text("netspec: 1\ninput: [3, 8, 8]\nlayers: [{type: relu, repeat: '=1" + "0" * 400 + "'}]\n")


@pytest.mark.parametrize(
    ("layers", "said"),
    [
        ("[{type: =null}]", "type: expected a layer or block type name, got null"),
        ("[{type: relu, repeat: 2}, {type: '=1 + 2'}]", "type name, got int 3"),
        ("[{type: null}]", "layer 0: type: expected a layer type name, got null"),
        ("[{type: 3}]", "layer 0: type: expected a layer type name, got int 3"),
    ],
)
def test_a_type_that_is_no_name_says_what_it_got(layers, said):
    """It named a layer 'None_0' of the unknown type 'None'."""
    with pytest.raises(netspec.SpecError) as caught:
        load_text(f"netspec: 1\ninput: [3, 8, 8]\nlayers: {layers}\n")
    assert said in str(caught.value) and "None_0" not in str(caught.value)


def test_a_set_param_only_an_unused_block_reads_is_refused(tmp_path):
    """ResNet-18 with --set params.groups=32 built a plain ResNet-18: only the bottleneck reads it."""
    from conftest import REPO

    with pytest.raises(netspec.SpecError) as caught:
        netspec.load(REPO / "specs/resnet.yaml", overrides=["variant=resnet18", "params.groups=32"])
    message = str(caught.value)
    assert "only block 'bottleneck' reads 'groups', and this network uses no such block" in message
    assert "hint: blocks this network uses: basic, shortcut" in message
    spec = netspec.load(REPO / "specs/resnet.yaml", overrides=["variant=resnext50_32x4d", "params.groups=32"])
    assert spec.layer("layer1.0.conv2").params.groups == 32


def test_a_computed_name_that_is_no_name_is_refused_once_at_its_name():
    """It was refused at every layer inside the block use, at the layers' lines."""
    with pytest.raises(netspec.SpecError) as caught:
        load_text(
            "netspec: 1\ninput: [3, 8, 8]\n"
            "blocks: {cb: {layers: [{type: conv, out_channels: 4, kernel_size: 1}, {type: relu}]}}\n"
            "layers:\n  - {type: cb, name: \"='block 1.' + str(index)\", repeat: 2}\n"
        )
    assert len(caught.value.problems) == 1
    message = str(caught.value)
    assert message.startswith("<string>:5:22: name: \"='block 1.' + str(index)\" gives 'block 1.0', not a")


def test_a_computed_name_may_be_a_number_inside_a_block_as_torchvision_numbers_children():
    spec = load_text(
        "netspec: 1\ninput: [3, 8, 8]\n"
        "blocks:\n  f:\n    layers:\n      - repeat: 2\n        layers:\n"
        '          - {type: conv, name: "=str(index + 1)", out_channels: 4, kernel_size: 1}\n'
        "layers:\n  - {type: f, name: features}\n"
    )
    assert [layer.name for layer in spec.layers] == ["features.1", "features.2"]
    with pytest.raises(netspec.SpecError, match="gives '1', not a name"):
        load_text('netspec: 1\ninput: [3, 8, 8]\nlayers:\n  - {type: relu, name: "=str(1)"}\n')


def test_lists_built_along_the_way_count_towards_what_expressions_make():
    """`len(a + b)` builds `a + b` though it gives a number: 10,000 such layers made 82 M items in 24 s."""
    doubling = "".join(f"  l{i}: '=l{i - 1} + l{i - 1}'\n" for i in range(1, 14))
    text = (
        f"netspec: 1\ninput: [3, 8, 8]\nparams:\n  l0: '=[0]'\n{doubling}"
        "layers:\n  - {type: conv, out_channels: '=len(l13 + [index]) - 8190', kernel_size: 1, "
        "repeat: 10000}\n"
    )
    with pytest.raises(netspec.SpecError, match="make over 5,000,000 list items and characters in all"):
        load_text(text)


def test_names_may_hold_dashes_as_torchvision_regnet_keys_do():
    spec = load_text(
        "netspec: 1\ninput: [3, 8, 8]\n"
        "blocks: {b: {layers: [{type: conv, name: conv-a, out_channels: 4, kernel_size: 1}]}}\n"
        "layers:\n"
        "  - {type: b, name: \"='block1-' + str(index)\", repeat: 2}\n"
        "  - {type: conv, out_channels: \"=channels('block1-1')\", kernel_size: 1}\n"
    )
    assert [layer.name for layer in spec.layers] == ["block1-0.conv-a", "block1-1.conv-a", "conv_2"]
    assert "block1-1.conv-a.weight" in spec.build().state_dict()
    with pytest.raises(netspec.SpecError, match=r"a name with '-' is quoted: channels\('block1-0'\)"):
        load_text(
            "netspec: 1\ninput: [3, 8, 8]\nlayers:\n"
            "  - {type: conv, name: block1-0, out_channels: 4, kernel_size: 1}\n"
            "  - {type: conv, out_channels: '=channels(block1-0)', kernel_size: 1}\n"
        )
    with pytest.raises(
        netspec.SpecError, match="layer names are letters, digits, '_' and '-' starting with a letter"
    ):
        load_text("netspec: 1\ninput: [3, 8, 8]\nlayers: [{type: relu, name: -r}]\n")


def test_a_set_param_read_by_an_included_block_default_is_not_refused(tmp_path):
    """The check read included blocks' layers but not their parameters' defaults: refused in error."""
    write(
        tmp_path,
        "blocks.yaml",
        """
        blocks:
          b:
            params: {width: "=in_channels * mult"}
            layers:
              - {type: conv, out_channels: =width, kernel_size: 1}
    """,
    )
    path, _ = write(
        tmp_path,
        "spec.yaml",
        """
        netspec: 1
        input: [3, 8, 8]
        include: [blocks.yaml]
        params: {mult: 2}
        layers:
          - {type: b}
    """,
    )
    spec = netspec.load(path, overrides=["params.mult=4"])
    assert spec.shapes()["b_0.0"] == (12, 8, 8)


SHADOWED = """
input: [3, 8, 8]
params: {classes: 10, width: 8}
blocks:
  cbr:
    params: {width: int, wide: "=width * 2", deep: "=depth"}
    layers:
      - {type: conv, out_channels: =wide, kernel_size: 3, padding: 1}
layers:
  - {type: cbr, name: c, width: 16, deep: 1}
  - {type: global_avgpool}
  - {type: linear, out_features: =classes}
"""


def test_a_block_parameter_shadows_the_spec_param_of_its_name_for_set():
    """The RegNet port: `--set params.group_width=16` was accepted, since the block's own
    `group_width` counted as a reader of the spec's, and built the unchanged network."""
    with pytest.raises(netspec.SpecError, match="no expression of the spec reads 'width'"):
        netspec.load(SHADOWED, overrides=["params.width=99"])
    # a default reads the spec's name where no parameter declared before it has that name
    text = SHADOWED.replace("params: {classes: 10, width: 8}", "params: {classes: 10, depth: 3}")
    assert netspec.load(text.replace(", deep: 1", ""), overrides=["params.depth=5"])

"""A test kit for layer types: the contract netspec's own test suite runs on every built-in.

A plugin author writes::

    from netspec.testing import check_layer_type

    def test_residual():
        check_layer_type("residual")

and gets, for every example of the type: inferred shape == the module's real output (also
over generated input sizes), parameters counted exactly on the meta device, gradients
reaching the input and every parameter, analysis rules that return sane values, and clean
``SpecError``s (never a traceback) for unknown keys and nonsense parameter values.
Needs ``hypothesis`` (a test dependency).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from typing import Any

import netspec
from netspec.plugins import Registry, default_registry
from netspec.registry import LayerContext, Window

# Values no sane parameter accepts in every slot; each must give a SpecError or be accepted.
NONSENSE = ("nonsense", -7, 0, 2.5, [], [0, -1], {"a": 1}, None, True)
# never a valid parameter: non-finite, or beyond float32 (a module would hold inf)
NON_FINITE = (float("inf"), float("-inf"), float("nan"), 1e40, -1e40)


def check_layer_type(name: str, *, registry: Registry | None = None, max_examples: int = 20) -> None:
    """Run every check below on the layer type ``name``; raises AssertionError on a broken promise."""
    registry = registry or default_registry()
    record = registry[name]
    assert record.examples, f"layer type {name!r} has no examples: give its LayerType examples=(...)"
    assert record.summary, f"layer type {name!r} has no summary line"
    for example in record.examples:
        assert example["layers"][-1]["type"] == name, f"an example of {name!r} must end with a {name!r} layer"
        check_example(example, registry=registry)
        check_input_sizes(example, registry=registry, max_examples=max_examples)
        check_invalid_params(example, registry=registry)


def check_example(example: Mapping[str, Any], *, registry: Registry | None = None) -> None:
    """Build the example, run it forward and backward, and compare with what netspec inferred."""
    import torch

    from netspec.graph import ref_target
    from netspec.modules import layer_module
    from netspec.summary import parameter_counts

    spec = netspec.load(example, registry=registry)
    layer = spec.layers[-1]
    model = spec.build().train()
    x = torch.randn(2, *spec.input_shape, requires_grad=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Using padding='same' with even kernel", UserWarning)
        out = model(x)
    assert tuple(out.shape) == (2, *layer.output_shape), (
        f"{layer.label}: inferred {list(layer.output_shape)}, module gave {list(out.shape[1:])}"
    )
    counted, buffers = parameter_counts(spec)
    for lay in spec.layers:
        module = layer_module(model, lay.name)
        real = sum(p.numel() for p in module.parameters())
        trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert counted[lay.name] == (real, trained), (
            f"{lay.label}: counted {counted[lay.name]} (parameters, trainable) but the module has "
            f"{(real, trained)}: fix the type's parameters rule"
        )
    real_buffers = sum(b.numel() for b in model.buffers())
    assert buffers == real_buffers, f"counted {buffers} buffer elements, the module has {real_buffers}"
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), (
        f"{layer.label}: no gradient reaches the input"
    )
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{pname}: no gradient"
        assert torch.isfinite(param.grad).all(), f"{pname}: non-finite gradient"
    by_name = {lay.name: lay for lay in spec.layers}
    ctx = layer.context({f: ref_target(by_name[t]) for f, t in layer.refs.items()}, layer.output_shape)
    _check_analysis(layer.record, layer.params, ctx, layer.label)


def _check_analysis(record, params, ctx: LayerContext, label: str) -> None:
    if record.macs is not None:
        macs = record.macs(params, ctx)
        assert isinstance(macs, int) and macs >= 0, f"{label}: macs rule returned {macs!r}"
    if record.window is not None:
        window = record.window(params, ctx)
        rank = len(ctx.inputs[0]) - 1
        assert window is None or (
            isinstance(window, Window) and len(window.span) == len(window.stride) == rank
        ), f"{label}: window rule returned {window!r} for a {rank}-D input"
    if record.explain is not None:
        lines = record.explain(params, ctx)
        assert all(isinstance(line, str) for line in lines), f"{label}: explain must return strings"


def check_input_sizes(
    example: Mapping[str, Any], *, registry: Registry | None = None, max_examples: int = 20
) -> None:
    """Over generated spatial sizes: accepted → the example contract holds; refused → a SpecError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    channels, *spatial = example["input"]
    if not spatial:
        return

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.integers(1, 12), min_size=len(spatial), max_size=len(spatial)))
    def run(sizes):
        if math.prod(sizes) * channels > 4096:
            return
        variant = {**example, "input": [channels, *sizes]}
        try:
            netspec.load(variant, registry=registry)
        except netspec.SpecError:
            return  # refused with a located message: fine
        check_example(variant, registry=registry)

    run()


def check_invalid_params(example: Mapping[str, Any], *, registry: Registry | None = None) -> None:
    """Unknown keys and nonsense values give a SpecError naming the layer — never another exception."""
    layers = example["layers"]
    last = dict(layers[-1])
    typo = {**example, "layers": [*layers[:-1], {**last, "no_such_param": 1}]}
    try:
        netspec.load(typo, registry=registry)
    except netspec.SpecError as exc:
        assert "unknown key 'no_such_param'" in str(exc), str(exc)
    else:
        raise AssertionError(f"layer type {last['type']!r} accepted an unknown key (use LayerParams)")
    params_model = (registry or default_registry())[last["type"]].params
    fields = [f.alias or n for n, f in params_model.model_fields.items() if n not in ("name", "from_")]
    for field in fields:
        for value in NONSENSE:
            variant = copy.deepcopy(dict(example))
            variant["layers"][-1] = {**last, field: value}
            try:
                netspec.load(variant, registry=registry)
            except netspec.SpecError as exc:
                assert exc.problems, "a SpecError must carry its problems"
            except Exception as exc:
                raise AssertionError(
                    f"{last['type']}.{field} = {value!r} raised {type(exc).__name__}: {exc} "
                    "(shape rules must raise netspec.ShapeError)"
                ) from exc
        _check_refused(example, field, NON_FINITE, registry)


def _check_refused(example: Mapping[str, Any], field: str, values, registry: Registry | None) -> None:
    """Each of ``values`` for ``field`` is a SpecError: floats must be finite and fit float32."""
    for value in values:
        variant = copy.deepcopy(dict(example))
        variant["layers"][-1] = {**variant["layers"][-1], field: value}
        try:
            netspec.load(variant, registry=registry)
        except netspec.SpecError:
            continue
        raise AssertionError(
            f"{variant['layers'][-1]['type']}.{field} = {value!r} was accepted: float parameters "
            "must be finite and within float32 (use netspec.params.FiniteFloat with bounds)"
        )

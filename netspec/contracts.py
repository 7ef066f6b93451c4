"""The ``expect:`` block: contracts on output shapes, parameters and MACs, checked on build."""

from __future__ import annotations

from netspec.errors import Problem, SpecError
from netspec.shapes import describe
from netspec.spec import Spec

DROP = " (--set expect=null drops the contracts for one run)"


def check_output_contract(spec: Spec) -> None:
    """``expect.output`` needs only shape inference, so every load checks it."""
    expect = spec.model.expect
    if expect is None or expect.output is None:
        return
    wanted = expect.output if isinstance(expect.output[0], list) else [expect.output]
    got = [list(shape) for shape in spec.output_shapes()]
    if [list(w) for w in wanted] != got:
        shown = ", ".join(describe(g) for g in got)
        raise SpecError(
            [
                _problem(
                    spec,
                    "output",
                    f"the network outputs {shown}, not {expect.output}",
                    "fix the layers, or update expect.output if the change is intended" + DROP,
                )
            ]
        )


def check_cost_contracts(spec: Spec, params: int, macs: int | None) -> None:
    """``expect.params``/``params_max``/``macs_max``; ``macs`` None means some layer's cost is unknown."""
    expect = spec.model.expect
    if expect is None:
        return
    problems = []
    if expect.params is not None and params != expect.params:
        message = f"the network has {params:,} parameters, not {expect.params:,}"
        problems.append(
            _problem(
                spec,
                "params",
                message,
                "update expect.params if the change is intended" + DROP,
            )
        )
    if expect.params_max is not None and params > expect.params_max:
        message = f"the network has {params:,} parameters, over params_max {expect.params_max:,}"
        problems.append(
            _problem(spec, "params_max", message, "shrink the network or raise params_max" + DROP)
        )
    if expect.macs_max is not None and macs is None:
        message = "cannot check macs_max: some layer's MACs are unknown"
        problems.append(
            _problem(spec, "macs_max", message, "give that layer type a macs rule, or remove macs_max")
        )
    elif expect.macs_max is not None and macs > expect.macs_max:
        message = f"the network needs {macs:,} MACs per sample, over macs_max {expect.macs_max:,}"
        problems.append(_problem(spec, "macs_max", message, "shrink the network or raise macs_max" + DROP))
    if problems:
        raise SpecError(problems)


def _problem(spec: Spec, key: str, message: str, hint: str) -> Problem:
    return spec.document.problem(f"expect.{key}: {message}", ("expect", key), hint=hint)

"""The built module checks its input once, at the first eager call, in words a learner reads.

Instead of PyTorch's ``expected input[64, 3, 32, 32] to have 1 channels``, a wrong input gets
expected vs got per dimension, naming the spec and its ``input:`` line. The check runs on the
first eager call only and then removes itself, so the steady-state forward is untouched; it
never runs while TorchScript, ``torch.compile``, ``torch.export``, ONNX export or fx tracing
look at the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor, fx
from torch.nn import Module

from netspec.errors import NetspecError
from netspec.shapes import SPATIAL_NAMES, describe

if TYPE_CHECKING:
    from netspec.spec import Spec


class InputShapeError(NetspecError, ValueError):
    """A built network was called with an input it cannot take (wrong rank, channels or size)."""


class InputCheck:
    """What the first call is checked against: the spec's input, where it is written, and the
    spec itself (to tell whether another spatial size would work with the built layers)."""

    def __init__(self, spec: Spec):
        self.name = spec.name
        self.shape = tuple(spec.input_shape)
        problem = spec.document.problem("", ("input",))
        loc = problem.location
        self.where = problem.source + (f":{loc.line}:{loc.column}" if loc else "")
        self.spec = spec
        self.first = spec.layers[0].label if spec.layers else "the first layer"

    def __getstate__(self) -> dict:
        """Pickled (torch.save of the model) without the spec: no spatial re-inference then."""
        return {**self.__dict__, "spec": None}

    def __call__(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            return
        got = tuple(x.shape)
        want = self.shape
        head = (
            f"{self.name} was built for input [N, {describe(want)[1:]} (the spec's `input: {list(want)}` at "
            f"{self.where}; N is the batch), but got a tensor of shape {describe(got)}"
        )
        if len(got) != len(want) + 1:
            if len(got) == len(want) and got == want:
                raise InputShapeError(
                    f"{head}: it has no batch dimension. Add one: x.unsqueeze(0) gives {describe((1, *got))}"
                )
            raise InputShapeError(
                f"{head}: expected {len(want) + 1} dimensions [N, {', '.join(self._names())}], got {len(got)}"
            )
        names = self._names()
        wrong = [(n, w, g) for n, w, g in zip(names, want, got[1:], strict=True) if w != g]
        if not wrong:
            return
        per_dim = "; ".join(f"{n}: expected {w}, got {g}" for n, w, g in wrong)
        if wrong[0][0] == "channels" or len(want) == 1:
            raise InputShapeError(
                f"{head}. {per_dim}. The first layer, {self.first}, has weights for "
                f"{want[0]} input {'channel' if len(want) > 1 else 'feature'}{'s' if want[0] != 1 else ''}: "
                "feed the data the spec describes, or change the spec's `input:`"
            )
        reason = self._spatial_problem(got[1:])
        if reason is None:
            return  # another spatial size the built layers accept (fully convolutional parts)
        raise InputShapeError(
            f"{head}. {per_dim}. At that size the built network fails: {reason}. "
            f"Resize the input to {describe(want[1:])}, or build the spec for this size "
            f"(netspec.load(..., input_shape={list((want[0], *got[2:]))}) or --input "
            f"{','.join(map(str, (want[0], *got[2:])))})"
        )

    def _names(self) -> list[str]:
        rank = len(self.shape) - 1
        return ["channels", *SPATIAL_NAMES.get(rank, tuple(f"dim {i + 1}" for i in range(rank)))]

    def _spatial_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why the built layers cannot take ``shape`` (channels + spatial), or None if they can.

        The spec's layers are re-inferred at the new size with what the built modules fixed
        (a tconv's output_padding, not its output_size); every layer must then get inputs with
        the channels it was built for, and a layer that is not spatially flexible (linear,
        reshape, layernorm, plugins) exactly the input it was built for.
        """
        from netspec.errors import SpecError
        from netspec.graph import infer

        spec = self.spec
        if spec is None:
            return None
        try:
            layers = [_as_built(layer) for layer in spec.layers]
            new = infer(spec.document, spec.registry, layers, shape)
        except SpecError as exc:
            return exc.problems[0].render().splitlines()[0]
        except Exception:
            return None
        for old, now in zip(spec.layers, new, strict=True):
            flexible = (
                spec.registry.owners.get(old.type) in FLEXIBLE_OWNERS
                or old.type in FLEXIBLE_TYPES
                or (old.type in ("layernorm", "linear") and getattr(old.params, "over", None) == "channels")
            )
            for before, after in zip(old.input_shapes, now.input_shapes, strict=True):
                if before[0] != after[0] or (not flexible and before != after):
                    return (
                        f"{old.label} was built for input {describe(before)} and would get {describe(after)}"
                    )
        return None


FLEXIBLE_OWNERS = {
    f"netspec.layers.{m}" for m in ("conv", "tconv", "pool", "activation", "upsample", "merge", "channels")
}
FLEXIBLE_TYPES = {
    "batchnorm",
    "instancenorm",
    "groupnorm",
    "dropout",
    "spatial_dropout",
    "stochastic_depth",
    "layer_scale",
    "flatten",
    "identity",
    "pixel_shuffle",
    "pixel_unshuffle",
}


def _as_built(layer):
    """A tconv built from ``output_size`` keeps its derived output_padding at other sizes."""
    if layer.type != "tconv" or getattr(layer.params, "output_size", None) is None:
        return layer
    from dataclasses import replace

    from netspec.layers.tconv import resolved_output_padding

    padding = list(resolved_output_padding(layer.params, layer.input_shapes[0]))
    return replace(
        layer, params=layer.params.model_copy(update={"output_size": None, "output_padding": padding})
    )


def _tracing() -> bool:
    import torch

    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


class FirstCallCheck:
    """Installed as ``_wrapped_call`` of the module's own class (fx gives every GraphModule a
    class of its own, and its ``__call__`` calls ``self._wrapped_call(self, ...)``): checks the
    first eager input, then puts fx's original back, so later calls take fx's path unchanged.
    Nothing is stored on the instance, whose attribute lookups stay as fast as before."""

    def __init__(self, check: InputCheck, original: Any):
        self.check = check
        self.original = original

    def __call__(self, module: fx.GraphModule, *args: Any, **kwargs: Any) -> Any:
        if args and not _tracing():
            self.check(args[0])
            uninstall(module)  # passed: the steady state does no checking
        return Module.__call__(module, *args, **kwargs)  # what fx's _WrappedCall calls


def install(model: fx.GraphModule, spec: Spec) -> fx.GraphModule:
    """Make ``model``'s first eager call check its input against ``spec``."""
    cls = type(model)
    cls._wrapped_call = FirstCallCheck(InputCheck(spec), cls.__dict__.get("_wrapped_call"))
    return model


def uninstall(model: fx.GraphModule) -> None:
    """Remove the first-call check (done by the check itself once an input passed)."""
    cls = type(model)
    check = cls.__dict__.get("_wrapped_call")
    if isinstance(check, FirstCallCheck):
        cls._wrapped_call = check.original


def is_checking(model: fx.GraphModule) -> bool:
    return isinstance(type(model).__dict__.get("_wrapped_call"), FirstCallCheck)

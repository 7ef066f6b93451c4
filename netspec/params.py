"""Pydantic building blocks for layer parameters: strict, typo-proof, one clear error per field."""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\Z")  # '-' as torchvision's RegNet names blocks: block1-0
# a layer inside a block has a dotted path: layer2.0.conv1 (segments are names or indices)
PATH_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.([A-Za-z][A-Za-z0-9_-]*|[0-9]+))*\Z")
INPUT = "input"  # the name by which layers refer to the network's input


# No size, count or index in a spec can usefully exceed what a tensor holds (shapes.MAX_NUMEL);
# larger ints overflow int64 inside torch (``Overflow when unpacking long``) at build or forward.
MAX_INT = 2**60


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _valid_sizes(value: Any, minimum: int, allow_none: bool) -> bool:
    if not isinstance(value, list):
        return _is_int(value) and minimum <= value <= MAX_INT
    return len(value) > 0 and all(
        (item is None and allow_none) or (_is_int(item) and minimum <= item <= MAX_INT) for item in value
    )


def _sizes(minimum: int, what: str, *, allow_none: bool = False):
    """An int, or a non-empty list of ints (one per spatial dimension), each ≥ ``minimum``."""

    def check(value: Any):
        if not _valid_sizes(value, minimum, allow_none):
            extra = " (null keeps that dimension)" if allow_none else ""
            raise PydanticCustomError(
                "netspec_sizes",
                "expected {what} (at most 2^60), or a list of them per spatial dimension{extra}; got {value}",
                {"what": what, "extra": extra, "value": repr(value)},
            )
        return value

    item_schema: dict = {"type": "integer", "minimum": minimum, "maximum": MAX_INT}
    if allow_none:
        item_schema = {"anyOf": [item_schema, {"type": "null"}]}
    schema = {
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": MAX_INT},
            {"type": "array", "items": item_schema, "minItems": 1, "maxItems": 3},
        ]
    }
    return Annotated[Any, PlainValidator(check), WithJsonSchema(schema)]


PositiveInt = Annotated[StrictInt, Field(gt=0, le=MAX_INT)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
# A real number as written in YAML (an int or a float; never a bool or a string), and finite:
# ``.inf`` or ``.nan`` in a layer parameter only ever turns into NaN outputs or a crash later.
FiniteFloat = Annotated[StrictFloat, AllowInfNan(False)]
Probability = Annotated[FiniteFloat, Field(ge=0.0, le=1.0)]
# Activation slopes, scales and limits: |v| ≤ 10⁶ stays far inside float32 (1e40 overflows to inf).
MAX_COEFFICIENT = 1e6
Coefficient = Annotated[FiniteFloat, Field(ge=-MAX_COEFFICIENT, le=MAX_COEFFICIENT)]
PositiveCoefficient = Annotated[FiniteFloat, Field(gt=0.0, le=MAX_COEFFICIENT)]
# Normalisation epsilon: positive, a normal float32 (BERT uses 1e-12), and at most 1.
Epsilon = Annotated[FiniteFloat, Field(ge=1e-30, le=1.0)]
PositiveSizes = _sizes(1, "a positive integer")
NonNegativeSizes = _sizes(0, "a non-negative integer")
OptionalSizes = _sizes(1, "a positive integer", allow_none=True)


_NON_NEGATIVE_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_INT}


def _conv_padding(value: Any):
    if value in ("same", "valid") or _valid_sizes(value, 0, False):
        return value
    raise PydanticCustomError(
        "netspec_padding",
        "expected a non-negative integer (at most 2^60), a list of them per spatial dimension, "
        "'same' or 'valid'; got {value}",
        {"value": repr(value)},
    )


ConvPadding = Annotated[
    Any,
    PlainValidator(_conv_padding),
    WithJsonSchema(
        {
            "anyOf": [
                _NON_NEGATIVE_SCHEMA,
                {"type": "array", "items": _NON_NEGATIVE_SCHEMA, "minItems": 1},
                {"enum": ["same", "valid"]},
            ]
        }
    ),
]


class LayerParams(BaseModel):
    """Base of every layer's parameters: ``name`` and ``from`` are common to all layers.

    Plugin authors subclass this and add their own fields; netspec adds the ``type``
    literal when it builds the spec language from the registry.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(
        None, description="Name other layers use in `from:`; also the module's state_dict prefix."
    )
    from_: str | list[str] | None = Field(
        None,
        alias="from",
        description="Input layer name(s); default: the previous layer ('input' is the network input).",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split(".") if PATH_RE.match(value) else [""]
        if not NAME_RE.match(parts[0]) or any(keyword.iskeyword(p) for p in parts) or parts[0] == INPUT:
            raise PydanticCustomError(
                "netspec_name",
                "layer names are letters, digits, '_' and '-' starting with a letter (dotted inside blocks), "
                "not a Python keyword and not 'input'; got {value}",
                {"value": repr(value)},
            )
        return value

    def inputs_named(self) -> list[str] | None:
        """``from`` as a list, or None for the default (previous layer)."""
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


class NoParams(LayerParams):
    """Layers without parameters of their own."""


__all__ = [
    "INPUT",
    "MAX_COEFFICIENT",
    "MAX_INT",
    "Coefficient",
    "ConvPadding",
    "Epsilon",
    "FiniteFloat",
    "LayerParams",
    "Literal",
    "NoParams",
    "NonNegativeInt",
    "NonNegativeSizes",
    "OptionalSizes",
    "PositiveCoefficient",
    "PositiveInt",
    "PositiveSizes",
    "Probability",
    "StrictBool",
]

"""The spec language: one pydantic model, built once from the registered layer types."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from netspec.params import NonNegativeInt, PositiveInt
from netspec.registry import LayerType

FORMAT_VERSION = 1
COMMON_KEYS = ("type", "name", "from")
# A network name is the default run directory's name (runs/<name>-<time>/): letters, digits, '_',
# '-' and '.', starting with a letter, so it is one path component that cannot climb out of runs/.
NETWORK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}\Z")


Shape = Annotated[list[PositiveInt], Field(min_length=1)]  # an empty shape is no tensor's


class Expect(BaseModel):
    """Contracts checked by every build: a violated one is an error naming its line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: Shape | Annotated[list[Shape], Field(min_length=1)] | None = Field(
        None, description="Per-sample output shape (a list of shapes for several outputs)."
    )
    params: NonNegativeInt | None = Field(None, description="Exact parameter count.")
    params_max: NonNegativeInt | None = Field(None, description="Upper bound on the parameter count.")
    macs_max: NonNegativeInt | None = Field(None, description="Upper bound on MACs per sample.")


class BlockDefinition(BaseModel):
    """A parameterised sub-graph used like a layer type: ``{type: bottleneck, planes: 64}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    params: dict[str, Any] | None = Field(
        None,
        description="Parameter → type (int, float, bool, str, list, size, any) for a required one, "
        "or a default.",
    )
    inputs: str | list[str] | None = Field(None, description="Input names; default one input, `input`.")
    layers: list[dict[str, Any]] = Field(min_length=1, description="The block's layers; names are local.")
    outputs: str | None = Field(None, description="The layer whose output the block gives; default the last.")


class NetworkSpec(BaseModel):
    """Top level of a spec file. ``layers`` is replaced by the registry's union."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    netspec: Literal[1] = Field(FORMAT_VERSION, description="Spec format version.")
    name: str = Field("network", description="Network name; also the built module's class name.")
    description: str | None = None
    input: list[PositiveInt] = Field(
        min_length=1, description="Per-sample input shape, channels first (batch is implicit)."
    )
    layers: list = Field(min_length=1)
    outputs: str | list[str] | None = Field(
        None, description="Layer name(s) whose output the network returns; default: the last layer."
    )
    expect: Expect | None = Field(None, description="Contracts: output shape, parameter and MAC budgets.")
    params: dict[str, Any] | None = Field(
        None, description="Values every expression can read (`=width * 2`)."
    )
    blocks: dict[str, BlockDefinition] | None = Field(None, description="Blocks, used like layer types.")
    include: str | list[str] | None = Field(
        None, description="Files whose blocks: and params: this spec uses."
    )
    extends: str | None = Field(None, description="A base spec whose keys this file overrides.")
    variants: dict[str, dict[str, Any]] | None = Field(
        None, description="Named top-level overrides (a model family); pick one with `variant:`."
    )
    variant: str | None = Field(None, description="The variant of `variants:` to build.")
    train: dict | None = Field(None, description="How `netspec train` trains the network.")

    @field_validator("netspec", mode="before")
    @classmethod
    def _check_version(cls, value: object) -> object:
        """A spec of another format version: say which this netspec reads."""
        if value != FORMAT_VERSION or isinstance(value, bool):
            raise PydanticCustomError(
                "netspec_format_version",
                "this netspec reads spec format version {version} (`netspec: {version}`); got {value}",
                {"version": FORMAT_VERSION, "value": repr(value)},
            )
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        """The name becomes a path component of the run directory: never '/', '..' or absolute."""
        if not NETWORK_NAME_RE.match(value):
            raise PydanticCustomError(
                "netspec_network_name",
                "network names start with a letter and hold only letters, digits, '_', '-' and '.' "
                "(at most 100 characters; no '/', '\\' or '..': the name names the run directory); "
                "got {value}",
                {"value": repr(value)},
            )
        return value


def layer_model(record: LayerType) -> type[BaseModel]:
    """The record's params model plus its ``type`` literal, as one spec-language model."""
    clash = set(COMMON_KEYS[:1]) & set(record.params.model_fields)
    if clash:
        raise ValueError(f"parameter model of {record.name!r} may not define {sorted(clash)}")
    title = "".join(part.capitalize() for part in record.name.replace("-", "_").split("_"))
    return create_model(
        f"{title}Layer",
        __base__=record.params,
        __module__=record.params.__module__,
        __doc__=record.summary or record.params.__doc__,
        type=(Literal[record.name], Field(description=record.summary or record.name)),
    )


def build_spec_model(
    layers: dict[str, LayerType], datasets: dict | None = None
) -> tuple[type[NetworkSpec], dict[str, type[BaseModel]]]:
    """NetworkSpec whose ``layers`` (and ``train.data``) are unions of every registered type."""
    from netspec.training.config import train_model

    models = {name: layer_model(record) for name, record in layers.items()}
    union = Annotated[Union[tuple(models.values())], Field(discriminator="type")]  # noqa: UP007
    spec = create_model(
        "NetworkSpec",
        __base__=NetworkSpec,
        layers=(list[union], Field(min_length=1, description="The layers, in order.")),
        train=(train_model(datasets or {}) | None, Field(None, description="How `netspec train` trains it.")),
    )
    return spec, models

"""One contract over the whole registry: every layer type, built-in or plugin, keeps its promises."""

from __future__ import annotations

import pytest

from netspec.plugins import default_registry
from netspec.testing import check_example, check_input_sizes, check_invalid_params

REGISTRY = default_registry()
EXAMPLES = [
    pytest.param(name, example, id=f"{name}-{i}")
    for name, record in sorted(REGISTRY.layers.items())
    for i, example in enumerate(record.examples)
]


@pytest.mark.parametrize("name", sorted(REGISTRY.layers))
def test_every_layer_type_has_an_example_and_a_summary(name):
    record = REGISTRY[name]
    assert record.examples, f"{name} has no example"
    assert record.summary
    for example in record.examples:
        assert example["layers"][-1]["type"] == name


@pytest.mark.parametrize(("name", "example"), EXAMPLES)
def test_layer_contract(name, example):
    check_example(example)


@pytest.mark.parametrize("name", sorted(REGISTRY.layers))
def test_layer_contract_over_input_sizes_and_bad_params(name):
    for example in REGISTRY[name].examples:
        check_input_sizes(example, max_examples=8)
        check_invalid_params(example)

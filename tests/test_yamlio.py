"""The safe YAML reader: positions, YAML quirks, and hostile input refused with a message."""

from __future__ import annotations

import time

import pytest

from netspec.errors import Location, SpecError
from netspec.yamlio import MAX_BYTES, MAX_DEPTH, load_yaml, read_spec_file


def test_positions_of_values_and_keys():
    doc = load_yaml("a: 1\nb:\n  - x\n  - {k: 2}\n")
    assert doc.data == {"a": 1, "b": ["x", {"k": 2}]}
    assert doc.positions[("a",)] == Location(1, 4)
    assert doc.positions[("b", 1, "k")] == Location(4, 9)
    assert doc.key_positions[("b", 1, "k")] == Location(4, 6)
    assert doc.locate(("b", 1, "missing")) == Location(4, 5)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 1e-3),
        ("1.0e-3", 1e-3),
        ("-2E+2", -200.0),
        (".5", 0.5),
        ("3", 3),
        ("1_000", 1000),
        ("0x10", 16),
        ("yes", True),
        ("null", None),
        ("'1e-3'", "1e-3"),
    ],
)
def test_numbers_read_as_yaml_1_2(text, value):
    got = load_yaml(f"v: {text}").data["v"]
    assert got == value and type(got) is type(value)


def test_float_resolver_does_not_leak_into_pyyaml():
    import yaml

    assert yaml.safe_load("v: 1e-3")["v"] == "1e-3"


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_yaml(text, "s.yaml")
    return info.value


def test_duplicate_keys_are_an_error_with_both_lines():
    err = _error("layers: []\ninput: [1]\nlayers: [2]\n")
    assert "s.yaml:3:1: duplicate key 'layers' (first given at line 1)" in str(err)


def test_python_tags_are_refused():
    err = _error("a: !!python/object/apply:os.system ['echo hi']\n")
    assert "!!python/object/apply:os.system" in str(err) and "not allowed" in str(err)
    assert err.problems[0].location == Location(1, 4)


def test_alias_bomb_is_refused_quickly():
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    start = time.perf_counter()
    err = _error("\n".join(lines))
    assert time.perf_counter() - start < 5
    assert "alias" in str(err)


def test_merge_keys_still_work():
    doc = load_yaml("base: &b {kernel_size: 3, padding: 1}\nc: {<<: *b, out_channels: 4}\n")
    assert doc.data["c"] == {"kernel_size": 3, "padding": 1, "out_channels": 4}


def test_absurd_nesting_is_refused():
    err = _error("a: " + "[" * (MAX_DEPTH + 10) + "]" * (MAX_DEPTH + 10))
    assert "nested deeper" in str(err)


def test_very_deep_nesting_does_not_crash():
    err = _error("[" * 100_000)
    assert "nested deeper" in str(err) or "invalid YAML" in str(err)


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(SpecError, match="larger than"):
        read_spec_file(path)


def test_syntax_error_has_a_location():
    err = _error("a: [1, 2\nb: 3\n")
    assert err.problems[0].location is not None
    assert str(err).startswith("s.yaml:")


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        read_spec_file(tmp_path / "nope.yaml")
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="cannot read spec"):
        read_spec_file(path)


def test_non_scalar_keys_are_refused():
    assert "plain scalars" in str(_error("? [a, b]\n: 1\n"))

"""The safe YAML reader: positions, YAML quirks, and hostile input refused with a message."""

from __future__ import annotations

import os
import time

import pytest

import netspec
from netspec import yamlio
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


# --- hostile input: every refusal is a located SpecError, in well under a second ---------------


@pytest.fixture(params=["libyaml", "python"])
def loader(request, monkeypatch):
    """Run a test with libyaml's parser and with the pure-Python fallback: same guarantees."""
    if request.param == "python":
        monkeypatch.setattr(yamlio, "_CParser", None)
    elif yamlio._CParser is None:
        pytest.skip("PyYAML built without libyaml")
    return request.param


def _located(text: str) -> SpecError:
    err = _error(text)
    assert all(p.source == "s.yaml" and p.location is not None for p in err.problems), err
    return err


def test_both_loaders_give_the_same_positions(loader):
    text = "a: 1\nb:\n  - x\n  - {k: 2, é: [3]}\nc: &c {d: 4}\ne: {<<: *c, f: 5}\n"
    doc = load_yaml(text)
    assert doc.positions[("b", 1, "k")] == Location(4, 9)
    assert doc.positions[("b", 1, "é", 0)] == Location(4, 16)  # characters, not bytes
    assert doc.positions[("e", "f")] == Location(6, 16)


def test_specs_read_the_same_with_both_loaders(monkeypatch):
    from pathlib import Path

    for path in sorted(Path("specs").glob("*.yaml")):
        fast = read_spec_file(path)
        monkeypatch.setattr(yamlio, "_CParser", None)
        slow = read_spec_file(path)
        monkeypatch.undo()
        assert fast.data == slow.data
        assert (fast.positions, fast.key_positions) == (slow.positions, slow.key_positions)


@pytest.mark.skipif(yamlio._CParser is None, reason="the one-pass reader needs libyaml")
@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("a: 1\nb:\n  - x\n  - {k: 2, é: [3, '4']}\n", True),
        ("~: 1\n2: 2\n'1': 3\ntrue: x\nn:\ne: 1e-3\nh: 0x1F\ni: .inf\n", True),
        ("---\n", True),
        ("", False),
        ("a: &x 1\nb: *x\n", False),
        ("c: {d: 4}\ne: {<<: {d: 5}, f: 5}\n", False),
        ("a: !!str 1\n", False),
        ("a: 2020-01-01\n", False),
        ("a: 1\na: 2\n", False),
        ("<key>: 1\n", False),
        ('a: "x\\x01"\n', False),
        ("a: [1\n", False),
        ("a\n---\nb\n", False),
    ],
)
def test_the_one_pass_reader_reads_plain_yaml_as_the_full_reader_does(text, plain, monkeypatch):
    from netspec import yamlplain

    fast = yamlplain.read_plain(text, "s.yaml")
    assert (fast is not None) == plain
    monkeypatch.setattr(yamlplain, "read_plain", lambda text, source: None)
    try:
        full = load_yaml(text, "s.yaml")
    except SpecError:
        assert fast is None
        return
    if fast is not None:
        assert repr(fast.data) == repr(full.data)  # repr: 1 and True, 1 and 1.0 differ
        assert (fast.positions, fast.key_positions) == (full.positions, full.key_positions)


@pytest.mark.skipif(yamlio._CParser is None, reason="the pure-Python parser takes seconds per 100k nodes")
def test_a_megabyte_of_flow_items_is_refused_while_composing():
    text = "a: [" + ",".join(["1"] * 499_990) + "]\n"
    assert len(text) <= MAX_BYTES
    start = time.perf_counter()
    err = _located(text)
    elapsed = time.perf_counter() - start
    assert "more than 100000 values" in str(err)
    assert elapsed < 1.0, elapsed  # 30-60 s before the limit held while composing


def test_many_small_documents_end_the_fast_count(loader):
    """More parse events than 2·MAX_NODES + 4 but fewer nodes: the event walk must still end."""
    start = time.perf_counter()
    assert "expected a single document" in str(_located("---\na\n" * 70_000))
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "text",
    ["a: &a [1, *a]\n", "a: &a {b: *a}\n", "a: &a {<<: *a}\n", "a: &a [[[*a]]]\n"],
)
def test_self_referencing_alias_is_a_located_error(loader, text):
    err = _located(text)
    assert "cycle" in str(err)


def test_aliases_cannot_nest_deeper_than_the_limit(loader):
    lines = ["a0: &a0 " + "[" * 40 + "1" + "]" * 40]
    for i in range(1, 40):  # each level wraps the previous one 40 deep: 1,600 levels in all
        lines.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    err = _located("\n".join(lines))
    assert "nested deeper" in str(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "9" * 5000 + "\n", "more than 100 characters"),
        ("a: " + ":".join(["1"] * 30_000) + "\n", "more than 100 characters"),  # base-60 int
        ("a: !!float " + "1" * 200 + "\n", "more than 100 characters"),
        ("a: b\x00c\n", "control characters"),
        ("a: b\x07c\n", "control characters"),
        ("a: !!int abc\n", "'abc' is not a valid !!int"),
        ("a: !!float abc\n", "'abc' is not a valid !!float"),
        ("a: !!bool maybe\n", "'maybe' is not a valid !!bool"),
        ('a: "x\\0y"\n', "control character"),
        ('a: "\\e[31mred"\n', "control character"),
        ("a: [1, 2\n", "invalid YAML"),
    ],
)
def test_hostile_scalars_are_located_errors(loader, text, message):
    start = time.perf_counter()
    assert message in str(_located(text))
    assert time.perf_counter() - start < 1.0


def test_lone_surrogates_are_refused(loader):
    assert _located("a: b\ud800\n").problems[0].location == Location(1, 5)


def test_merge_keys_are_overridden_by_explicit_keys(loader):
    doc = load_yaml("b: &b {k: 3, p: 1}\nc: {<<: *b, p: 2}\nd: {<<: [{p: 5}, *b]}\n")
    assert doc.data["c"] == {"k": 3, "p": 2}
    assert doc.data["d"] == {"p": 5, "k": 3}  # the earlier merge wins, as YAML says
    assert doc.positions[("c", "p")] == Location(2, 16)
    assert "merge key" in str(_located("a: {<<: [1]}\n"))


def test_not_utf8_names_the_line_and_column(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("input: [1]\nname: caf\u00e9\n".encode("latin-1"))
    err = _error_of(path)
    assert err.problems[0].location == Location(2, 10)
    assert "not UTF-8" in str(err)


def test_a_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffa: 1\n".encode())
    assert read_spec_file(path).data == {"a": 1}


def _error_of(source) -> SpecError:
    with pytest.raises(SpecError) as info:
        netspec.load(source) if not isinstance(source, os.PathLike) else read_spec_file(source)
    return info.value


@pytest.mark.parametrize("text", ["", "# nothing\n", "- 1\n- 2\n", "hello\n", "3\n", "null\n"])
def test_a_document_that_is_not_a_mapping_is_located(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    err = _error_of(str(path))
    assert err.problems[0].source == str(path) and err.problems[0].location is not None


def test_a_directory_is_not_a_spec(tmp_path):
    for source in (str(tmp_path), tmp_path, f"{tmp_path}/"):
        with pytest.raises(SpecError, match="cannot read spec: a directory"):
            netspec.load(source)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever: nobody writes
    start = time.perf_counter()
    with pytest.raises(SpecError, match="not a regular file"):
        netspec.load(str(fifo))
    assert time.perf_counter() - start < 1.0


def test_odd_strings_are_yaml_text_not_paths():
    for text in ("x" * 5000, "a\x00b"):
        err = _error_of(text)
        assert err.problems[0].location is not None


# --- --set addresses mappings and list items ----------------------------------------------------


def test_set_addresses_list_items():
    spec = netspec.load("specs/lenet.yaml", overrides=["layers.0.out_channels=8", "input.1=32"])
    assert spec.shapes()["c1"] == (8, 32, 28)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("layers.99.out_channels=8", "layers is a list of 12 item(s); '99' is not an index"),
        ("layers.-1.out_channels=8", "'-1' is not an index"),
        ("layers.first.out_channels=8", "'first' is not an index"),
        ("name.x=1", "name is 'lenet5', not a mapping or a list"),
        ("input.0.x=1", "input.0 is 1, not a mapping or a list"),
        ("layers..x=1", "expected KEY=VALUE"),
        ("layers.0.out_channels", "expected KEY=VALUE"),
        # where in the value, not a file position glued to it ("--set a=[2,2:2:1: …")
        (
            "input=[2,2",
            "invalid YAML: while parsing a flow sequence: did not find expected ',' or ']' (at the end",
        ),
        ("name=a: b: c", "mapping values are not allowed in this context (at column 5 of the value)"),
    ],
)
def test_set_errors_name_the_set(assignment, message):
    with pytest.raises(SpecError) as info:
        netspec.load("specs/lenet.yaml", overrides=[assignment])
    assert str(info.value).startswith(f"--set {assignment}: ") and message in str(info.value)


def test_errors_in_what_set_wrote_name_the_set():
    with pytest.raises(SpecError) as info:
        netspec.load("specs/lenet.yaml", overrides=["layers.0.out_channels=0"])
    assert str(info.value).startswith("--set layers.0.out_channels=0: layer 0 'c1' (conv): out_channels")


def test_set_creates_missing_mappings():
    spec = netspec.load("specs/lenet.yaml", overrides=["expect.output=[10]"])
    assert spec.model.expect.output == [10]


@pytest.mark.skipif(yamlio._CParser is None, reason="the one-pass reader needs libyaml")
def test_the_one_pass_reader_agrees_with_the_full_reader_on_mutated_specs(monkeypatch):
    """A differential fuzz: the gallery's specs with random edits (YAML's special characters,
    indentation, quotes, unicode, control characters) read the same with the one-pass reader as
    with the full one, or the one-pass reader gives way; it never raises and never differs."""
    import random
    from pathlib import Path

    from netspec import yamlplain

    texts = [path.read_text() for path in sorted(Path("specs").glob("*.yaml"))]
    pieces = [
        ":",
        "- ",
        "&a ",
        "*a",
        "!!str ",
        "<<: ",
        "{",
        "}",
        "[",
        "]",
        "'",
        '"',
        "\t",
        "  ",
        "\n",
        "#",
        ",",
        "~",
        "é",
        "\x01",
        "\ufeff",
        "0x1F",
        "1e3",
        ".inf",
        "yes",
        "2020-01-01",
        "? ",
    ]
    rng = random.Random(20261130)
    plain_read = 0
    for case in range(400):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text) + 1)
            cut = rng.choice([0, 0, 1, rng.randint(1, 20)])
            text = text[:at] + rng.choice([*pieces, ""]) + text[at + cut :]
        fast = yamlplain.read_plain(text, "s.yaml")
        with monkeypatch.context() as patched:
            patched.setattr(yamlplain, "read_plain", lambda text, source: None)
            try:
                full = load_yaml(text, "s.yaml")
            except SpecError:
                assert fast is None, (case, text)
                continue
        if fast is not None:
            plain_read += 1
            assert repr(fast.data) == repr(full.data), (case, text)
            assert (fast.positions, fast.key_positions) == (full.positions, full.key_positions), (case, text)
    assert plain_read > 50  # the fuzz reaches the one-pass reader, not only its refusals

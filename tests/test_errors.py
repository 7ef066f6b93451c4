"""Every spec error names file:line:column, the layer, and what to change."""

from __future__ import annotations

import pytest
from conftest import REPO

import netspec
from netspec.errors import Location


def at(path, line: int, token: str) -> Location:
    """Location of the first ``token`` on 1-based ``line`` of the file: what an error should name."""
    text = path.read_text().splitlines()[line - 1]
    return Location(line, text.index(token) + 1)


def errors_of(path) -> netspec.SpecError:
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(path)
    return info.value


def test_unknown_key_points_at_the_key_and_suggests_the_fix(write_spec):
    path = write_spec("""
        input: [1, 28, 28]
        layers:
          - type: conv
            out_channels: 6
            kernal_size: 5
    """)
    err = errors_of(path)
    unknown = next(p for p in err.problems if "unknown key" in p.message)
    assert unknown.location == at(path, 5, "kernal_size")
    assert unknown.layer == "layer 0 (conv)"
    assert "did you mean 'kernel_size'?" in unknown.hint
    assert "out_channels" in unknown.hint  # lists the allowed keys
    assert str(err).startswith(f"{path}:")


def test_bad_value_points_at_the_value(write_spec):
    path = write_spec("""
        input: [1, 28, 28]
        layers:
          - {type: conv, name: c1, out_channels: 6, kernel_size: 5}
          - {type: maxpool, kernel_size: 2, stride: -1}
    """)
    (problem,) = errors_of(path).problems
    assert problem.location == at(path, 4, "-1")
    assert problem.layer == "layer 1 (maxpool)"
    assert problem.message.startswith("stride: expected a positive integer")


def test_unknown_type_suggests_close_names(write_spec):
    path = write_spec("input: [3, 8, 8]\nlayers:\n  - {type: maxpol, kernel_size: 2}\n")
    (problem,) = errors_of(path).problems
    assert problem.location == at(path, 3, "maxpol")
    assert "unknown layer type 'maxpol'" in problem.message
    assert "'maxpool'" in problem.hint


def test_all_validation_problems_are_reported_at_once(write_spec):
    path = write_spec("""
        input: [1, 8]
        layers:
          - {type: linear}
          - {type: relu, inplace: true}
        outputz: x
    """)
    problems = errors_of(path).problems
    assert [p.location for p in problems] == [
        at(path, 3, "{type: linear"),
        at(path, 4, "inplace"),
        at(path, 5, "outputz"),
    ]


def test_shape_error_names_layer_param_and_hint(write_spec):
    path = write_spec("""
        name: tiny
        input: [3, 5, 5]
        layers:
          - {type: conv, name: c1, out_channels: 4, kernel_size: 7}
    """)
    (problem,) = errors_of(path).problems
    assert problem.location == at(path, 4, "7}")  # the kernel_size value
    assert problem.layer == "layer 0 'c1' (conv)"
    assert "kernel spans 7 in H" in problem.message
    assert problem.hint


def test_merge_error_lists_each_input_with_its_line(write_spec):
    path = write_spec("""
        input: [3, 27, 27]
        layers:
          - {type: conv, name: enc2, out_channels: 8, kernel_size: 3, padding: 1}
          - {type: maxpool, name: down, kernel_size: 2}
          - {type: tconv, name: up3, out_channels: 8, kernel_size: 2, stride: 2}
          - {type: concat, name: cat3, from: [up3, enc2]}
    """)
    err = errors_of(path)
    (problem,) = err.problems
    assert problem.location == at(path, 6, "{type: concat")
    assert problem.layer == "layer 3 'cat3' (concat)"
    assert "disagree on spatial size" in problem.message
    assert problem.details == ("'up3' (line 5) gives [8, 26, 26]", "'enc2' (line 3) gives [8, 27, 27]")
    text = str(err)
    assert text.splitlines()[0].startswith(f"{path}:6:5: layer 3 'cat3' (concat): ")
    assert "give the upsampling layer output_size (tconv) or size (upsample) 27" in problem.hint  # U-Net


def test_a_branch_that_changed_its_size_alone_is_named_in_the_hint(write_spec):
    """Inception's 1x7 conv with the padding of a 7x1: the hint blamed rounding and upsampling
    (there is neither), placed each branch at a line inside the block, and named one dim of two."""
    path = write_spec("""
        input: [8, 17, 17]
        blocks:
          unit:
            params: {channels: int, kernel_size: {type: any, default: 1}, padding: {type: any, default: 0}}
            layers:
              - {type: conv, name: conv, out_channels: =channels, kernel_size: =kernel_size,
                 padding: =padding}
              - {type: relu, name: relu}
          mixed:
            layers:
              - {type: unit, name: straight, channels: 4}
              - {type: unit, name: wide_1, from: input, channels: 4}
              - {type: unit, name: wide_2, channels: 4, kernel_size: [1, 7], padding: [3, 0]}
              - {type: unit, name: wide_3, channels: 4, kernel_size: [7, 1], padding: [3, 0]}
              - {type: concat, name: cat, from: [straight, wide_3]}
        layers:
          - {type: mixed, name: m}
    """)
    (problem,) = errors_of(path).problems
    assert "inputs disagree on spatial size (dims 1, 2)" in problem.message
    assert problem.details[:2] == (
        "'m.straight.relu' (block 'm.straight' used at line 11) gives [4, 17, 17]",
        "'m.wide_3.relu' (block 'm.wide_3' used at line 14) gives [4, 23, 11]",
    )
    assert problem.hint == (
        "'m.wide_2.conv' (block 'm.wide_2' used at line 13) turns [4, 17, 17] into [4, 23, 11] "
        "(the other inputs are 17×17): check its padding and stride"
    )


@pytest.mark.parametrize(
    "layers, hint",
    [
        (  # squeeze-and-excitation with the wrong channels: the 1x1 pool broadcasts, it is no culprit
            [
                "{type: global_avgpool, name: squeeze, keepdims: true}",
                "{type: conv, name: excite, out_channels: 5, kernel_size: 1}",
                "{type: mul, name: scale, from: [input, excite]}",
            ],
            "make the inputs the same shape (or size 1 where one should broadcast)",
        ),
        (  # two inputs off, by different layers: no one layer to name
            [
                "{type: conv, name: a, out_channels: 4, kernel_size: 1}",
                "{type: conv, name: b, out_channels: 4, kernel_size: 1, from: input}",
                "{type: conv, name: c, out_channels: 4, kernel_size: 3, from: input}",
                "{type: maxpool, name: d, kernel_size: 2, from: input}",
                "{type: concat, name: cat, from: [a, b, c, d]}",
            ],
            "sizes [8, 14, 16]: a strided pool/conv on an odd size rounds down",
        ),
        (  # an upsample has no padding or stride to check
            [
                "{type: conv, name: lateral, out_channels: 3, kernel_size: 1}",
                "{type: upsample, name: up, scale_factor: 2, from: input}",
                "{type: add, name: fuse, from: [lateral, up]}",
            ],
            "'up' (line 4) turns [3, 16, 16] into [3, 32, 32] (the other inputs are 16×16): "
            "check the upsample layer's settings",
        ),
    ],
)
def test_the_culprit_hint_names_one_layer_only_when_one_did_it(write_spec, layers, hint):
    """The fuzz round: the hint blamed a legal broadcast, and claimed every other input agreed."""
    body = "\n".join(f"  - {layer}" for layer in layers)
    path = write_spec(f"input: [3, 16, 16]\nlayers:\n{body}\n")
    (problem,) = errors_of(path).problems
    assert problem.hint.startswith(hint)


def test_an_input_made_in_another_block_instance_is_placed_at_its_use(write_spec):
    path = write_spec("""
        input: [3, 15, 15]
        blocks:
          down:
            layers:
              - {type: conv, name: conv, out_channels: 4, kernel_size: 3, padding: 1}
          up:
            inputs: [x, skip]
            layers:
              - {type: maxpool, name: pool, kernel_size: 2, from: x}
              - {type: upsample, name: up, scale_factor: 2}
              - {type: concat, name: cat, from: [up, skip]}
        layers:
          - {type: down, name: enc}
          - {type: up, name: dec, from: [enc, enc]}
    """)
    (problem,) = errors_of(path).problems
    assert "'enc.conv' (block 'enc' used at line 13) gives [4, 15, 15]" in problem.details


def test_declared_in_channels_is_checked(write_spec):
    path = write_spec(
        "input: [3, 8, 8]\nlayers:\n  - {type: conv, out_channels: 4, kernel_size: 3, in_channels: 1}\n"
    )
    (problem,) = errors_of(path).problems
    assert problem.message == "in_channels is 1 but the input has 3"
    assert problem.location == at(path, 3, "1}")


def test_errors_from_strings_and_dicts_name_their_source():
    err = errors_of("input: [3, 8, 8]\nlayers:\n  - {type: conv}\n")
    assert str(err).startswith("<string>:3:5:")
    err = errors_of({"input": [3, 8, 8], "layers": [{"type": "conv"}]})
    assert str(err).startswith("<dict>: layer 0 (conv): missing required key")


@pytest.mark.parametrize("version", ["2", "0", "true", "'1'", "[1]"])
def test_another_format_version_says_which_one_this_netspec_reads(version):
    err = errors_of(f"netspec: {version}\ninput: [3, 8, 8]\nlayers:\n  - {{type: relu}}\n")
    assert str(err).startswith(
        "<string>:1:10: netspec: this netspec reads spec format version 1 (`netspec: 1`)"
    )


def test_top_level_must_be_a_mapping(write_spec):
    err = errors_of(write_spec("- 1\n- 2\n"))
    assert "a spec is a mapping" in str(err)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("[{type: upsample, size: 3, scale_factor: 2}]", "exactly one of size or scale_factor"),
        ("[{type: upsample, scale_factor: 2, align_corners: true}]", "align_corners only applies"),
        (
            "[{type: tconv, out_channels: 1, kernel_size: 2, output_size: 9, output_padding: 1}]",
            "output_padding or output_size, not both",
        ),
        ("[{type: reshape, shape: [-1, -1]}]", "at most one -1"),
        ("[{type: avgpool, kernel_size: 2, divisor_override: -3}]", "greater than 0"),
        ("[{type: dropout, p: 1.5}]", "less than or equal to 1"),
        ("[{type: conv, out_channels: 2, kernel_size: 3, bias: 1}]", "valid boolean"),
        ("[{type: conv, name: input, out_channels: 2, kernel_size: 3}]", "not 'input'"),
    ],
)
def test_parameter_checks_that_need_no_shape(write_spec, layers, message):
    err = errors_of(write_spec(f"input: [2, 6, 6]\nlayers: {layers}\n"))
    assert message in str(err)
    assert err.problems[0].location.line == 2


# --- layer parameters: finite, within range, consistent with each other --------------------------


@pytest.mark.parametrize(
    ("layer", "token", "message"),
    [
        ("{type: hardtanh, min_val: 2.0}", "{", "min_val 2.0 must be less than max_val 1.0"),
        ("{type: celu, alpha: 0.0}", "0.0", "alpha: Input should be greater than 0"),
        ("{type: prelu, init: 1.0e+40}", "1.0e+40", "init: Input should be less than or equal to 1000000"),
        ("{type: leaky_relu, negative_slope: 1e40}", "1e40", "negative_slope: Input should be"),
        ("{type: upsample, scale_factor: .inf}", ".inf", "scale_factor: Input should be a finite"),
        (
            "{type: upsample, scale_factor: [2, .nan]}",
            ".nan",
            "scale_factor.1: Input should be a finite number",
        ),
        ("{type: batchnorm, eps: .nan}", ".nan", "eps: Input should be a finite number"),
        ("{type: softplus, beta: 0}", "0}", "beta: Input should be greater than 0"),
        ("{type: dropout, p: true}", "true", "p: Input should be a valid number"),
        ("{type: elu, alpha: -.inf}", "-.inf", "alpha: Input should be a finite number"),
    ],
)
def test_layer_parameters_are_finite_in_range_and_consistent(write_spec, layer, token, message):
    """Each of these built (or crashed inside the plugin) and then overflowed or divided by zero."""
    path = write_spec(f"input: [3, 8, 8]\nlayers:\n  - {layer}\n")
    err = errors_of(path)
    assert message in str(err)
    assert err.problems[0].location == at(path, 3, token)


def test_an_input_of_twenty_thousand_dimensions_is_refused(write_spec):
    path = write_spec("input: [" + ", ".join(["1"] * 20_000) + "]\nlayers:\n  - {type: relu}\n")
    err = errors_of(path)
    assert "input shape has 20000 dimensions; netspec supports at most 8" in str(err)
    assert err.problems[0].location == at(path, 1, "[")


def test_sizes_beyond_any_tensor_are_located_errors(write_spec):
    path = write_spec("""
        input: [1, 1073741824]
        layers:
          - {type: relu}
          - {type: upsample, scale_factor: 1000}
          - {type: upsample, scale_factor: 1000}
    """)
    err = errors_of(path)
    assert "layer 2 'upsample_2' (upsample): output shape [1, 1073741824000000] has" in str(err)
    assert "more than netspec's limit of 2^48" in str(err)
    assert err.problems[0].location == at(path, 5, "{")
    path = write_spec("input: [65536, 65536, 65537]\nlayers:\n  - {type: relu}\n")
    assert "input shape [65536, 65536, 65537] has" in str(errors_of(path))


def test_tensors_inside_a_layer_are_bounded_too(write_spec):
    """The depthwise half of a separable conv overflowed at forward time behind a small output."""
    path = write_spec("""
        input: [4, 4194304, 4194304]
        layers:
          - {type: separable, out_channels: 1, kernel_size: 1, multiplier: 8}
    """)
    err = errors_of(path)
    assert "the depthwise part's output: shape [32, 4194304, 4194304] has" in str(err)
    assert err.problems[0].location == at(path, 3, "{")


def test_weights_beyond_any_tensor_are_located_errors(write_spec):
    """'Storage size calculation overflowed' escaped from the builder as a plugin bug."""
    from netspec.summary import summarize

    path = write_spec("""
        input: [2147483648]
        layers:
          - {type: linear, out_features: 2147483648}
    """)
    spec = netspec.load(path)  # shapes alone are fine
    with pytest.raises(netspec.SpecError) as info:
        summarize(spec)  # counts the parameters
    assert "this layer would hold 4,611,686,020,574,871,552 parameter and buffer elements" in str(info.value)
    assert info.value.problems[0].location == at(path, 3, "{")
    with pytest.raises(netspec.SpecError) as info:
        spec.build()  # a build meets torch's own refusal, located the same way
    assert "a parameter of shape [2147483648, 2147483648] would have" in str(info.value)
    assert info.value.problems[0].location == at(path, 3, "{")


def test_weights_beyond_the_machines_memory_are_located_errors(write_spec, tmp_path, capsys):
    """A petabyte of weights (beyond any process's address space) was exit 1 naming the built-in
    'plugin' whose builder failed; now exit 2 at the layer, with the size torch asked for."""
    from netspec.cli import main

    path = write_spec("""
        input: [512, 7, 7]
        layers:
          - {type: flatten}
          - {type: linear, out_features: 10000000000}
          - {type: linear, out_features: 10}
    """)
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(path).build()
    assert "out of memory building this layer's parameters on cpu (torch tried to allocate" in str(info.value)
    assert info.value.problems[0].location == at(path, 4, "{")
    run = ["--set", "train.data.name=synthetic", "--set", f"train.run_dir={tmp_path}/r"]
    assert main(["train", str(path), *run]) == 2
    assert "layer 1 'linear_1' (linear): out of memory" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_cuda_out_of_memory_error_names_its_size(write_spec, monkeypatch):
    import torch

    def refuse(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has ...")

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", refuse)
    path = write_spec("input: [4]\nlayers:\n  - {type: linear, out_features: 2}\n")
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(path).build()
    assert "out of memory building this layer's parameters on cpu (torch tried to allocate 20.00 GiB)" in str(
        info.value
    )


@pytest.mark.parametrize("output", ["[]", "[[]]"])
def test_an_empty_expected_output_is_a_located_error(write_spec, output):
    path = write_spec(f"input: [4]\nlayers:\n  - {{type: relu}}\nexpect: {{output: {output}}}\n")
    err = errors_of(path)
    assert "expect.output" in str(err) and err.problems[0].location.line == 4


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{type: avgpool, kernel_size: 2, stride: 2147483648}", "stride 2147483648 is more than PyTorch"),
        ("{type: maxpool, kernel_size: 2147483648}", "kernel_size 2147483648 is more than PyTorch's pooling"),
        ("{type: conv, out_channels: 2, kernel_size: 1, stride: 1000000000000000000000}", "at most 2^60"),
        ("{type: separable, out_channels: 2, kernel_size: 1, multiplier: 1152921504606846977}", "less"),
    ],
)
def test_integers_torch_cannot_take_are_located_errors(write_spec, layer, message):
    """These built, then overflowed inside torch ("value cannot be converted to type int")."""
    path = write_spec(f"input: [4, 8]\nlayers:\n  - {layer}\n")
    err = errors_of(path)
    assert message in str(err) and err.problems[0].location.line == 3


def test_a_type_error_says_what_it_got_and_a_union_says_it_once(write_spec):
    path = write_spec("""
        input: [3, 8, 8]
        layers:
          - {type: conv, out_channels: four, kernel_size: 3}
          - {type: conv, out_channels: true, kernel_size: 3}
          - {type: upsample, scale_factor: .inf}
    """)
    messages = [p.message for p in errors_of(path).problems]
    assert messages == [
        "out_channels: Input should be a valid integer, got str 'four'",
        "out_channels: Input should be a valid integer, got bool True",  # YAML's true
        "scale_factor: Input should be a finite number",  # not also "should be a valid list"
    ]


def test_a_value_where_a_mapping_belongs_names_the_mappings_keys():
    with pytest.raises(netspec.SpecError) as info:
        netspec.load(REPO / "specs/lenet.yaml", overrides=["train.early_stopping=true"])
    (problem,) = info.value.problems
    assert problem.message == "expected a mapping of keys to values, got bool True"
    assert problem.hint == "keys: monitor, patience, mode, min_delta"


def test_several_unknown_types_list_the_known_ones_once(write_spec):
    path = write_spec("input: [3, 8, 8]\nlayers:\n  - {type: convv}\n  - {type: relu}\n  - {type: rellu}\n")
    first, second = errors_of(path).problems
    assert "did you mean 'conv'" in first.hint and "known types: adaptive_avgpool, " in first.hint
    assert second.hint.startswith("did you mean 'relu'") and "known types: as listed above" in second.hint


@pytest.mark.parametrize(
    "text",
    [
        'name: "net\\n"\ninput: [3]\nlayers:\n  - {type: relu}\n',
        'input: [3]\nlayers:\n  - {type: relu, name: "c1\\n"}\n',
        'netspec: 1\ninput: [3]\nparams: {"w\\n": 2}\nlayers:\n  - {type: relu}\n',
        'netspec: 1\ninput: [3]\nblocks:\n  "cb\\n": {layers: [{type: relu}]}\nlayers:\n  - {type: relu}\n',
        'netspec: 1\ninput: [3]\nblocks:\n  cb: {params: {"k\\n": int}, layers: [{type: relu}]}\n'
        "layers:\n  - {type: cb, k: 1}\n",
    ],
)
def test_a_name_ending_in_a_newline_is_refused(write_spec, text):
    """`$` matches before a final newline: `name: "c1\\n"` passed every name check, broke tables,
    made a run directory with a newline and crashed training in torch.fx's generated code."""
    with pytest.raises(netspec.SpecError):
        netspec.load(write_spec(text)).build()


def test_messages_escape_what_a_terminal_would_obey(tmp_path, capsys):
    """A spec's file name, an unknown type in the layer header and variant names reached the
    terminal raw: escape sequences from a file name, newlines and a right-to-left override that
    fake another message."""
    from netspec.cli import main

    path = tmp_path / "bad\x1b[31mRED\x1b]0;pwned\x07.yaml"
    path.write_text('input: [1, 8, 8]\nlayers:\n  - {type: "relu)\\n\\nALL OK \\u202e", name: r}\n')
    assert main(["build", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "bad\\x1b[31mRED\\x1b]0;pwned\\x07.yaml:3:" in err
    assert "layer 0 'r' (relu)\\n\\nALL OK \\u202e): unknown layer type" in err
    path.write_text('netspec: 1\ninput: [3]\nvariants: {"a\\nFAKE\\u202e": {}}\nlayers: [{type: relu}]\n')
    assert main(["build", str(path)]) == 2
    assert "hint: variants: a\\nFAKE\\u202e (or --set variant=NAME)" in capsys.readouterr().err

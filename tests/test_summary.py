"""The summary tells the truth: parameters, shapes and MACs agree with the real module."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from fractions import Fraction

import pytest
import strategies as S
from conftest import REPO, SPECS, real_shapes
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import netspec
from netspec.modules import layer_module
from netspec.report import render_json, render_markdown, render_table, summary_dict
from netspec.summary import UNKNOWN, summarize

GOLDEN = REPO / "tests" / "golden"


def torchinfo_macs(spec, model) -> dict:
    """torchinfo's per-layer MACs at batch 1, by layer name."""
    import torchinfo

    names = {id(layer_module(model, layer.name)): layer.name for layer in spec.layers}
    result = torchinfo.summary(model, input_size=(1, *spec.input_shape), verbose=0, device="cpu")
    return {names[id(info.module)]: info.macs for info in result.summary_list if id(info.module) in names}


def check_truth(spec) -> None:
    summary = summarize(spec)
    model = spec.build()
    rows = {r.name: r for r in summary.rows}
    # parameters: to the unit, per layer and in total
    for layer in spec.layers:
        assert rows[layer.name].params == sum(p.numel() for p in layer_module(model, layer.name).parameters())
    assert summary.totals.params == sum(p.numel() for p in model.parameters())
    assert summary.totals.buffers == sum(b.numel() for b in model.buffers())
    # shapes: exactly what a forward pass produces
    assert {name: r.output for name, r in rows.items()} == real_shapes(spec, model)
    # conv and linear MACs: torchinfo's numbers; transposed conv: the documented formula
    reference = torchinfo_macs(spec, model)
    for layer in spec.layers:
        row = rows[layer.name]
        if layer.type in ("conv", "depthwise", "linear") and len(layer.input_shapes[0]) <= 4:
            if layer.type == "linear" and len(layer.input_shapes[0]) > 1:
                continue  # torchinfo counts a linear on [T, F] once per sample, not per T
            assert row.macs == reference[layer.name], layer.label
        if layer.type == "separable":
            assert row.macs == sum(
                m.weight.numel() * math.prod(row.output[1:])
                + (m.bias.numel() * math.prod(row.output[1:]) if m.bias is not None else 0)
                for m in model.get_submodule(layer.name)
            )
        if layer.type == "tconv":
            module = model.get_submodule(layer.name)
            expected = module.weight.numel() * math.prod(layer.input_shapes[0][1:])
            if module.bias is not None:
                expected += module.bias.numel() * math.prod(row.output[1:])
            assert row.macs == expected


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_summary_is_true(path):
    check_truth(netspec.load(path))


@st.composite
def networks(draw):
    """A random chain of conv-family, pool, upsample, activation and norm layers that netspec accepts."""
    shape = draw(S.input_shapes(ranks=(1, 2), max_channels=4))
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        spec = {"input": shape, "layers": layers}
        current = list(netspec.load(spec).layers[-1].output_shape) if layers else shape
        make = draw(
            st.sampled_from(
                [
                    S.conv_layers,
                    S.depthwise_layers,
                    S.separable_layers,
                    S.tconv_layers,
                    S.maxpool_layers,
                    S.avgpool_layers,
                    S.upsample_layers,
                ]
            )
        )
        candidate = draw(make(current))
        try:
            netspec.load({"input": shape, "layers": [*layers, candidate]})
        except netspec.SpecError:
            continue
        layers.append(candidate)
        if draw(st.booleans()):
            layers.append({"type": draw(st.sampled_from(["relu", "batchnorm", "gelu"]))})
    assume(layers)
    if draw(st.booleans()):
        layers += [{"type": "flatten"}, {"type": "linear", "out_features": draw(st.integers(1, 5))}]
    return {"input": shape, "layers": layers}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_generated_networks_summary_is_true(data):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Using padding='same' with even kernel", UserWarning)
        check_truth(netspec.load(data))


def test_receptive_field_of_a_chain_by_hand():
    spec = netspec.load(
        {
            "input": [1, 64, 64],
            "layers": [
                {"type": "conv", "out_channels": 2, "kernel_size": 3},  # r 3, j 1
                {"type": "maxpool", "kernel_size": 2},  # r 4, j 2
                {"type": "conv", "out_channels": 2, "kernel_size": 3, "dilation": 2},  # r 4 + 4·2 = 12
                {"type": "conv", "out_channels": 2, "kernel_size": 3, "stride": 2},  # r 12 + 2·2 = 16, j 4
                {"type": "upsample", "scale_factor": 2, "mode": "bilinear"},  # r 16 + 1·4 = 20, j 2
                {"type": "tconv", "out_channels": 2, "kernel_size": 4, "stride": 2},  # r 20 + 1·2 = 22, j 1
                {"type": "global_avgpool"},
            ],
        }
    )
    rows = summarize(spec).rows
    sizes = [r.field.size[0] if r.field not in (None, UNKNOWN) else None for r in rows]
    jumps = [r.field.jump[0] if r.field not in (None, UNKNOWN) else None for r in rows]
    assert sizes == [3, 4, 12, 16, 20, 22, None]
    assert jumps == [1, 2, 2, 4, 2, 1, None]


def test_receptive_field_of_a_graph_is_the_largest_over_paths():
    spec = netspec.load(
        {
            "input": [1, 32, 32],
            "layers": [
                {"type": "conv", "name": "wide", "out_channels": 2, "kernel_size": 7, "padding": 3},
                {
                    "type": "conv",
                    "name": "narrow",
                    "out_channels": 2,
                    "kernel_size": 3,
                    "padding": 1,
                    "from": "input",
                },
                {"type": "add", "from": ["wide", "narrow"]},
            ],
        }
    )
    assert summarize(spec).rows[-1].field.size == (Fraction(7), Fraction(7))


def test_unknown_costs_are_shown_as_unknown_never_zero():
    from test_plugins import SCALE

    from netspec.plugins import collect_registry, make_plugin_manager
    from netspec.registry import LayerType

    bare = LayerType(SCALE.name, SCALE.params, SCALE.shape, SCALE.build)  # no macs/window rules

    class Plugin:
        @netspec.hookimpl
        def netspec_register_layers(self):
            return [bare]

    registry = collect_registry(make_plugin_manager(entry_points=False, extra=(Plugin(),)))
    spec = netspec.load(
        {
            "input": [2, 8, 8],
            "layers": [
                {"type": "conv", "out_channels": 2, "kernel_size": 3},
                {"type": "scale"},
                {"type": "relu"},
            ],
        },
        registry=registry,
    )
    summary = summarize(spec)
    assert summary.rows[1].macs is UNKNOWN and summary.rows[1].field is UNKNOWN
    assert summary.rows[2].field is UNKNOWN  # unknown propagates
    assert not summary.totals.macs_complete
    assert summary_dict(summary)["layers"][1]["macs"] is None
    assert "?" in render_table(summary, full=True)
    assert "+ unknown" in render_table(summary, full=True)


# ---- golden outputs on specs/lenet.yaml (regenerate: NETSPEC_REGOLD=1 pytest tests/test_summary.py)


@pytest.mark.parametrize(
    ("fmt", "render"),
    [
        ("txt", lambda s: render_table(s, full=True, width=120)),
        ("json", render_json),
        ("md", render_markdown),
    ],
)
def test_golden_lenet(fmt, render, monkeypatch):
    import os

    monkeypatch.chdir(REPO)
    text = render(summarize(netspec.load("specs/lenet.yaml")))
    golden = GOLDEN / f"lenet.{fmt}"
    if os.environ.get("NETSPEC_REGOLD"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_json_document_shape():
    doc = json.loads(render_json(summarize(netspec.load(REPO / "specs/segnet.yaml"))))
    assert doc["format"] == "netspec-summary" and doc["version"] == 1
    top = {
        "format": str,
        "version": int,
        "name": str,
        "source": str,
        "input": list,
        "batch_size": int,
        "layers": list,
        "outputs": list,
        "totals": dict,
    }
    assert {k: type(v) for k, v in doc.items()} == top
    layer_keys = {
        "index": int,
        "name": str,
        "type": str,
        "inputs": list,
        "output": list,
        "params": int,
        "trainable_params": int,
        "macs": int,
        "receptive_field": (list, type(None)),
        "jump": (list, type(None)),
        "receptive_field_status": str,
        "line": int,
    }
    for layer in doc["layers"]:
        assert set(layer) == set(layer_keys)
        for key, kind in layer_keys.items():
            assert isinstance(layer[key], kind), (layer["name"], key)
        assert layer["receptive_field_status"] in ("defined", "undefined", "unknown")
    totals = {
        "params",
        "trainable_params",
        "non_trainable_params",
        "buffers",
        "macs",
        "macs_complete",
        "flops",
        "param_bytes",
        "activation_bytes",
        "training_bytes_estimate",
        "training_memory",
        "params_counted_by_building",
    }
    assert set(doc["totals"]) == totals
    memory = doc["totals"]["training_memory"]
    assert memory["total"] == doc["totals"]["training_bytes_estimate"]
    parts = ("weights", "gradients", "optimizer_state", "activations", "workspace")
    assert memory["total"] == sum(memory[p] for p in parts)
    assert memory["assumptions"] and all(isinstance(a, str) for a in memory["assumptions"])
    assert doc["totals"]["flops"] == 2 * doc["totals"]["macs"]
    assert doc["totals"]["macs"] == sum(layer["macs"] for layer in doc["layers"])


# ---- no memory, no forward pass


def test_huge_network_is_summarised_without_allocating(tmp_path):
    """10 billion parameters and a 3×4096×4096 input: fast, and near a bare `import torch` in memory."""
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "input: [3, 4096, 4096]\nlayers:\n"
        "  - {type: conv, out_channels: 64, kernel_size: 3, padding: 1}\n"
        "  - {type: global_avgpool}\n"
        "  - {type: linear, out_features: 100000}\n"
        "  - {type: linear, out_features: 100000}\n"
    )
    code = (
        "import resource, sys, torch\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "from netspec.cli import main\n"
        f"rc = main(['build', {str(spec)!r}, '--summary', '--format', 'json'])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('RSS_GROWTH_KIB', peak - base, file=sys.stderr); sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["totals"]["params"] == 64 * 27 + 64 + 64 * 100_000 + 100_000 + 100_000**2 + 100_000
    growth_kib = int(out.stderr.split("RSS_GROWTH_KIB")[1])
    assert growth_kib < 300 * 1024  # 40 GB of float32 parameters never materialise


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "specs/unet.yaml", "--summary"],
        ["build", "specs/resnet50.yaml", "--format", "json"],
        ["build", "specs/lenet.yaml", "--explain"],
        ["schema"],
        ["plugins"],
    ],
    ids=lambda a: "-".join(a[:3]),
)
def test_analysis_commands_never_import_torch_or_lightning(argv):
    """Parameters are counted by rules, not by building: build, summary, explain, schema, plugins
    stay below the cost of `import torch`."""
    code = (
        "import sys\nfrom netspec.cli import main\n"
        f"status = main({argv!r})\n"
        "print('STATUS', status, 'TORCH', 'torch' in sys.modules, "
        "'LIGHTNING', 'pytorch_lightning' in sys.modules or 'lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert "STATUS 0 TORCH False LIGHTNING False" in out.stdout


def test_a_plugin_type_without_a_parameter_rule_is_counted_by_building_it():
    from netspec.summary import counted_by_building, parameter_counts

    spec = netspec.load(
        {
            "input": [4, 8, 8],
            "layers": [
                {"type": "squeeze_excite", "reduction": 2},
                {"type": "conv", "out_channels": 2, "kernel_size": 1},
            ],
        }
    )
    assert counted_by_building(spec) == ["squeeze_excite_0"]
    counts, _ = parameter_counts(spec)
    model = spec.build()
    assert counts["squeeze_excite_0"][0] == sum(
        p.numel() for p in model.get_submodule("squeeze_excite_0").parameters()
    )
    assert counts["conv_1"] == (10, 10)


def test_folding_blocks_keeps_every_total_and_names_the_blocks(capsys):
    from netspec.cli import main
    from netspec.summary import fold

    spec = netspec.load(REPO / "specs/resnet50.yaml")
    full = summarize(spec)
    for depth, rows in ((1, 10), (2, 22)):
        folded = fold(full, depth, spec.document.blocks)
        assert len(folded.rows) == rows
        assert sum(r.params for r in folded.rows) == full.totals.params == 25_557_032
        assert sum(r.macs for r in folded.rows) == full.totals.macs
    by_name = {r.name: r for r in fold(full, 1, spec.document.blocks).rows}
    assert by_name["layer3"].type == "bottleneck ×6" and by_name["layer3"].output == (1024, 14, 14)
    assert by_name["layer2"].inputs == ("layer1",)  # inputs name the folded rows, not their insides
    assert main(["build", str(REPO / "specs/resnet50.yaml")]) == 0  # folded to depth 2 by default
    out = capsys.readouterr().out
    assert "layer2.3  bottleneck" in out and "layer2.3.conv1" not in out
    assert main(["build", str(REPO / "specs/resnet50.yaml"), "--depth", "0"]) == 0
    assert "layer2.3.conv1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "layers",
    [
        [{"type": "maxpool", "name": "p", "kernel_size": 2}, {"type": "unpool", "indices": "p"}],
        [{"type": "upsample", "scale_factor": 0.5, "mode": "area"}],
        [{"type": "adaptive_avgpool", "output_size": 999_999_937}],
    ],
)
def test_a_billion_wide_input_is_summarised_in_constant_time(layers):
    """Loops over output windows took 87 s (unpool's padding check) or hung (area MACs) here."""
    import time

    summarize(netspec.load({"input": [1, 8], "layers": [{"type": "relu"}]}))  # imports, warm-up
    start = time.perf_counter()
    summary = summarize(netspec.load({"input": [1, 10**9], "layers": layers}))
    assert time.perf_counter() - start < 2.0
    assert summary.rows[-1].output[-1] >= 10**8


def test_area_upsample_macs_sum_the_adaptive_windows():
    """Area mode is adaptive average pooling: window i covers [floor(i·in/out), ceil((i+1)·in/out))."""
    spec = netspec.load({"input": [2, 10], "layers": [{"type": "upsample", "size": 4, "mode": "area"}]})
    windows = [math.ceil((i + 1) * 10 / 4) - math.floor(i * 10 / 4) for i in range(4)]  # 3+3+3+3
    assert summarize(spec).rows[0].macs == 2 * sum(windows)


def test_receptive_fields_stay_cheap_when_resizes_alternate_between_coprime_sizes():
    """Exact fractions grew a few digits per layer: 1,200 such layers took 3 s, cubic in depth."""
    import time

    pool = {"type": "maxpool", "kernel_size": 1, "stride": 3}
    layers = []
    for i in range(600):
        layers += [{"type": "upsample", "size": 997 if i % 2 else 1009}, pool]
    spec = netspec.load({"input": [1, 1000], "layers": layers})
    start = time.perf_counter()
    field = summarize(spec).rows[-1].field
    assert time.perf_counter() - start < 2.0
    assert 0 < field.jump[0].denominator <= 2**32
    small = summarize(netspec.load({"input": [1, 1000], "layers": layers[:5]}))  # still exact
    exact = Fraction(1000, 1009) * 3 * Fraction(337, 997) * 3 * Fraction(333, 1009)  # 1009 → 337 → 997 …
    assert small.rows[-1].field.jump == (exact,)


def test_sizes_read_in_the_largest_fitting_unit():
    from netspec.report import human_bytes

    assert [human_bytes(n) for n in (512, 1536, 3 << 20, 934 << 30, 5 << 40, 3 << 50)] == [
        "512 B",
        "1.50 KiB",
        "3.00 MiB",
        "934.00 GiB",
        "5.00 TiB",  # was "5120.00 GiB"
        "3.00 PiB",
    ]


def _rich_table(header: list[str], rows: list[list[str]], right: set[int], width: int, color: bool):
    """The table as rich draws it: what netspec's own aligner must give, byte for byte, where it fits."""
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for i, title in enumerate(header):
        table.add_column(title, justify="right" if i in right else "left", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    out = io.StringIO()
    console = Console(
        file=out, width=width, color_system="auto" if color else None, force_terminal=color, highlight=False
    )
    console.print(table)
    return [line.rstrip() for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("path", sorted((REPO / "specs").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_table_is_what_rich_draws_in_time_linear_in_its_rows(path):
    """netspec aligns the columns itself (rich took 20 s for 10,000 rows); where the table fits,
    the text is rich's to the byte, colour codes included, folded or not."""
    from netspec.columns import aligned
    from netspec.report import table_rows
    from netspec.summary import fold

    spec = netspec.load(path)
    full = summarize(spec)
    for summary in (full, fold(full, 2, spec.document.blocks)):
        for totals in (False, True):
            header, rows, right = table_rows(summary, totals)
            widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
            if sum(widths) + 2 * (len(widths) - 1) <= 200:
                for color in (False, True):
                    ours = aligned(header, rows, right, 200, color)
                    assert ours == _rich_table(header, rows, right, 200, color)


WIDE_FROM = """
input: [3, 8, 8]
layers:
  - {name: a_branch_with_a_long_name, type: conv, out_channels: 1549, kernel_size: 1}
  - {name: another_branch_with_a_long_name, type: conv, out_channels: 7, kernel_size: 1, from: input}
  - {name: a_third_branch_with_a_long_name, type: conv, out_channels: 7, kernel_size: 1, from: input}
  - {name: joined, type: concat, from: [a_branch_with_a_long_name, another_branch_with_a_long_name,
                                         a_third_branch_with_a_long_name, a_branch_with_a_long_name]}
"""


@pytest.mark.parametrize("width", [None, 250, 200, 150, 100])
def test_a_wide_table_wraps_its_from_and_name_columns_and_never_cuts_a_number(width):
    """rich fitted a table wider than the terminal by cutting cells (``1,549,0…``) and dropping
    columns, and took 200 columns for a file or a pipe: Inception v3's --summary lost 107 numbers."""
    from netspec.report import render_table, table_rows

    spec = netspec.load(WIDE_FROM)
    summary = summarize(spec)
    header, rows, _ = table_rows(summary, True)
    text = render_table(summary, full=True, width=width)
    table = text.split("\n\n")[0].splitlines()
    assert "…" not in text
    for cells in rows:  # every number whole, each on its row's first line
        first = next(line for line in table if line[: len(table[0].split()[0]) + 2].strip() == cells[0])
        for i in (header.index("params"), header.index("MACs")):
            assert f" {cells[i]} " in f" {first} "
    natural = sum(max(len(c[i]) for c in [header, *rows]) for i in range(len(header))) + 2 * (len(header) - 1)
    if width is None or width >= natural:
        assert len(table) == len(rows) + 1  # nothing wrapped
    else:
        assert len(table) > len(rows) + 1 and max(map(len, table)) <= width
    start = table[0].index("from")
    concat = next(k for k, line in enumerate(table) if line.lstrip().startswith("3 "))
    joined = [line[start:].split("  ")[0].strip() for line in table[concat:]]
    names = [f"{a}_with_a_long_name" for a in ("a_branch", "another_branch", "a_third_branch")]
    assert "".join(joined).replace(" ", "") == ",".join([*names, names[0]])  # every name, in order


def test_a_narrow_column_is_not_widened_when_the_table_must_shrink():
    """The fuzz round: a 4-character `name` column was padded to the 12 a folded column keeps."""
    from netspec.report import render_table

    spec = netspec.load(
        "input: [3, 8, 8]\nlayers:\n  - {name: a, type: conv, out_channels: 4, kernel_size: 1}\n"
        "  - {name: b, type: conv, out_channels: 4, kernel_size: 1, from: input}\n"
        "  - {name: c, type: concat, from: [a, b, a, b, a, b, a, b]}\n"
    )
    table = render_table(summarize(spec), full=False, width=44).split("\n\n")[0].splitlines()
    assert table[0].startswith("#  name  type    from ")
    assert max(map(len, table)) == 49  # `from` at the 12 characters it keeps; nothing else narrower


def test_a_folded_row_shows_the_line_where_its_block_was_used(tmp_path):
    """It showed the line of the block's first layer, inside the block's definition."""
    from netspec.cli import main
    from netspec.summary import fold

    path = REPO / "specs/resnet.yaml"
    spec = netspec.load(path)
    rows = {r.name: r for r in fold(summarize(spec), 1, spec.document.blocks, spec.document.block_lines).rows}
    text = path.read_text().splitlines()
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f"name: {stage}," in text[rows[stage].line - 1]
    rows = {r.name: r for r in fold(summarize(spec), 2, spec.document.blocks, spec.document.block_lines).rows}
    assert (
        "name: layer2," in text[rows["layer2.1"].line - 1] and rows["layer2.0"].line == rows["layer2.1"].line
    )
    if shutil.which("dot"):
        return  # Graphviz draws .svg, every layer
    svgs = {}  # netspec's own SVG follows --depth, as the table does
    for depth in ("0", "2"):
        out = tmp_path / f"d{depth}.svg"
        assert main(["build", str(path), "--graph", str(out), "--depth", depth]) == 0
        svgs[depth] = out.read_text()
    assert "layer2.0.conv1" in svgs["0"] and "layer2.0.conv1" not in svgs["2"]


def test_a_spatial_slice_keeps_the_receptive_field_and_strides_the_jump():
    """It ended the receptive field ('—': every output sees the whole input), which a slice never does."""
    spec = netspec.load(
        {
            "input": [3, 16, 16],
            "layers": [
                {"type": "conv", "out_channels": 4, "kernel_size": 3},
                {"type": "slice", "dim": 1, "start": 1, "step": 2},
                {"type": "slice", "stop": 2},
            ],
        }
    )
    rows = summarize(spec).rows
    assert (rows[1].field.size, rows[1].field.jump) == ((3, 3), (2, 1))
    assert (rows[2].field.size, rows[2].field.jump) == ((3, 3), (2, 1))

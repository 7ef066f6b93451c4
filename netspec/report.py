"""Summaries rendered for people (a rich table, Markdown, formulas, a graph) and tools (JSON)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from netspec.columns import aligned
from netspec.shapes import describe
from netspec.summary import UNKNOWN, Summary

JSON_FORMAT_VERSION = 1


def _frac(x: Fraction) -> str:
    return str(int(x)) if x.denominator == 1 else f"{float(x):.3g}"


def field_text(row_field: Any, which: str) -> str:
    """``5×5``; ``—`` where undefined (after flatten/linear/global pool); ``?`` where unknown."""
    if row_field is UNKNOWN:
        return "?"
    if row_field is None:
        return "—"
    return "×".join(_frac(v) for v in getattr(row_field, which))


def macs_text(macs: Any) -> str:
    return "?" if macs is UNKNOWN else f"{macs:,}"


def human(n: float, unit: str = "") -> str:
    """1234567 → '1.23 M'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def human_bytes(n: int) -> str:
    units = ((1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))
    for scale, suffix in units:
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n} B"


def _is_graph(summary: Summary) -> bool:
    previous = "input"
    for row in summary.rows:
        if row.inputs != (previous,):
            return True
        previous = row.name
    return False


def table_rows(summary: Summary, full: bool) -> tuple[list[str], list[list[str]], set[int]]:
    """Header, cells and the indices of right-aligned (numeric) columns."""
    graph = _is_graph(summary)
    header = ["#", "name", "type", *(["from"] if graph else []), "output", "params"]
    if full:
        header += ["MACs", "receptive field", "jump", "line"]
    rows = []
    for r in summary.rows:
        cells = [str(r.index), r.name, r.type, *([", ".join(r.inputs)] if graph else []), describe(r.output)]
        cells.append(f"{r.params:,}")
        if full:
            cells += [
                macs_text(r.macs),
                field_text(r.field, "size"),
                field_text(r.field, "jump"),
                str(r.line or ""),
            ]
        rows.append(cells)
    right = {0, header.index("params")} | ({len(header) - 4, len(header) - 1} if full else set())
    return header, rows, right


def totals_lines(summary: Summary) -> list[str]:
    t = summary.totals
    macs = f"{t.macs:,} ({human(t.macs)})" + ("" if t.macs_complete else " + unknown (layers marked ?)")
    flops = f"{t.flops:,} ({human(t.flops)})"
    per = "per sample" if summary.batch_size == 1 else f"for a batch of {summary.batch_size}"
    return [
        f"parameters: {t.params:,} (trainable {t.trainable:,}, non-trainable {t.non_trainable:,}); "
        f"buffers: {t.buffers:,}",
        f"MACs per sample: {macs}",
        f"FLOPs per sample: {flops} (FLOPs = 2 · MACs)",
        f"parameter memory: {human_bytes(t.param_bytes)} (float32 parameters and buffers)",
        f"activation memory, forward pass {per}: {human_bytes(t.activation_bytes)}",
        *memory_lines(summary),
    ] + (
        [
            f"note: parameters of {', '.join(summary.built_to_count)} layers were counted by building them "
            "on the meta device (their plugin gives no parameters rule)"
        ]
        if summary.built_to_count
        else []
    )


def memory_lines(summary: Summary) -> list[str]:
    """The training-memory estimate: its peak, the parts alive then, and what it assumes."""
    m = summary.totals.memory
    per = "per sample" if summary.batch_size == 1 else f"for a batch of {summary.batch_size}"
    parts = [
        ("weights", m.weights),
        ("gradients", m.gradients),
        ("optimizer state", m.optimizer_state),
        ("activations kept for backward", m.activations),
        ("workspace", m.workspace),
    ]
    shown = " + ".join(f"{name} {human_bytes(size)}" for name, size in parts if size)
    return [
        f"training memory estimate {per}: {human_bytes(m.total)}, peak at {m.peak_at} ({shown}); "
        f"{m.assumptions[0]}"
    ]


def memory_dict(summary: Summary) -> dict[str, Any]:
    """The training-memory estimate for JSON: the parts alive at its peak (they sum to total), assumptions."""
    m = summary.totals.memory
    t = m.training
    return {
        "precision": t.precision,
        "optimizer": t.optimizer,
        "momentum": t.momentum,
        "batch_size": m.batch_size,
        "weights": m.weights,
        "gradients": m.gradients,
        "optimizer_state": m.optimizer_state,
        "activations": m.activations,
        "workspace": m.workspace,
        "total": m.total,
        "peak_at": m.peak_at,
        "saved_for_backward": m.saved_for_backward,
        "assumptions": list(m.assumptions),
    }


def outputs_line(summary: Summary) -> str:
    outs = ", ".join(f"{name} {describe(shape)}" for name, shape in summary.outputs)
    return f"{summary.name}: input {describe(summary.input)} → {outs}"


def render_table(summary: Summary, *, full: bool, width: int | None = None, color: bool = False) -> str:
    """The table, followed by the totals. ``width``: the terminal's (None: a file or a pipe, no limit)."""
    header, rows, right = table_rows(summary, full)
    lines = aligned(header, rows, right, width, color)
    lines += ["", outputs_line(summary)]
    lines += totals_lines(summary) if full else [f"total parameters: {summary.totals.params:,}"]
    return "\n".join(lines) + "\n"


def render_markdown(summary: Summary) -> str:
    header, rows, right = table_rows(summary, full=True)
    align = ["---:" if i in right else ":---" for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    parts = [f"### {summary.name}", "", line(header), line(align), *map(line, rows), ""]
    parts += [f"- {outputs_line(summary)}", *(f"- {t}" for t in totals_lines(summary))]
    return "\n".join(parts) + "\n"


def summary_dict(summary: Summary) -> dict:
    """The stable JSON document (see docs/summary-json.md)."""
    t = summary.totals

    def field(f, which):
        if f is UNKNOWN or f is None:
            return None
        return [float(v) if v.denominator != 1 else int(v) for v in getattr(f, which)]

    return {
        "format": "netspec-summary",
        "version": JSON_FORMAT_VERSION,
        "name": summary.name,
        "source": summary.source,
        "input": list(summary.input),
        "batch_size": summary.batch_size,
        "layers": [
            {
                "index": r.index,
                "name": r.name,
                "type": r.type,
                "inputs": list(r.inputs),
                "output": list(r.output),
                "params": r.params,
                "trainable_params": r.trainable,
                "macs": None if r.macs is UNKNOWN else r.macs,
                "receptive_field": field(r.field, "size"),
                "jump": field(r.field, "jump"),
                "receptive_field_status": "unknown"
                if r.field is UNKNOWN
                else "undefined"
                if r.field is None
                else "defined",
                "line": r.line,
            }
            for r in summary.rows
        ],
        "outputs": [{"name": n, "shape": list(s)} for n, s in summary.outputs],
        "totals": {
            "params": t.params,
            "trainable_params": t.trainable,
            "non_trainable_params": t.non_trainable,
            "buffers": t.buffers,
            "macs": t.macs,
            "macs_complete": t.macs_complete,
            "flops": t.flops,
            "param_bytes": t.param_bytes,
            "activation_bytes": t.activation_bytes,
            "training_bytes_estimate": t.training_bytes,
            "training_memory": memory_dict(summary),
            "params_counted_by_building": list(summary.built_to_count),
        },
    }


def render_json(summary: Summary) -> str:
    return json.dumps(summary_dict(summary), indent=2) + "\n"


def render_explain(summary: Summary, layer: str | None = None) -> str:
    """Per layer: its output shape and the formulas behind it (see :mod:`netspec.teach`)."""
    from netspec.teach import render_explain as teach

    return teach(summary, layer)


def render_dot(summary: Summary, aux_edges: list[tuple[str, str, str]]) -> str:
    """Graphviz DOT: one box per layer, blocks as clusters, shapes on the edges, dashed edges for indices."""
    shapes = {"input": summary.input, **{r.name: r.output for r in summary.rows}}

    def q(s: str) -> str:
        return '"' + s.replace('"', '\\"') + '"'

    lines = [
        f"digraph {q(summary.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f"  input [shape=ellipse, label={q('input ' + describe(summary.input))}];",
    ]
    lines += _dot_clusters(summary.rows, q)
    for r in summary.rows:
        for src in r.inputs:
            lines.append(f"  {q(src)} -> {q(r.name)} [label={q(describe(shapes[src]))}];")
    for src, dst, label in aux_edges:
        lines.append(f"  {q(src)} -> {q(dst)} [style=dashed, label={q(label)}];")
    for name, shape in summary.outputs:
        lines.append(f"  {q('out:' + name)} [shape=ellipse, label={q('output ' + describe(shape))}];")
        lines.append(f"  {q(name)} -> {q('out:' + name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_clusters(rows, q) -> list[str]:
    """Node declarations, each block instance (``layer2.0``) a nested cluster labelled by its path."""
    tree: dict = {}
    for r in rows:
        node = tree
        for part in r.name.split(".")[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(None, []).append(r)

    def emit(node: dict, path: str, indent: str) -> list[str]:
        out = []
        for r in node.get(None, []):
            label = "\\n".join([r.name.rsplit(".", 1)[-1], r.type, describe(r.output)])
            out.append(f"{indent}{q(r.name)} [label={q(label)}];")
        for part, child in node.items():
            if part is None:
                continue
            inner = f"{path}.{part}" if path else part
            out.append(f"{indent}subgraph {q('cluster_' + inner)} {{")
            out.append(f'{indent}  label={q(inner)}; style=rounded; color="#888888";')
            out += emit(child, inner, indent + "  ")
            out.append(f"{indent}}}")
        return out

    return emit(tree, "", "  ")

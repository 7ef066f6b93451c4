"""A self-contained HTML report: the summary table, an SVG picture, each layer's explanation on click.

``netspec build SPEC --html report.html``. Everything is inline (CSS, SVG, script, data), so
the file opens offline. The picture is laid out in pure Python (no Graphviz): top to bottom
by depth in the graph, block instances drawn as clusters, each node with its type, key
parameters and parameter count, shapes on the edges, skip connections bowed to the side, and
colours by layer family.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from netspec.report import table_rows, totals_lines
from netspec.shapes import describe
from netspec.summary import Summary

NODE_W, NODE_H, COL_W, ROW_H = 210, 54, 250, 92
MARGIN_X, MARGIN_Y = 200, 30

FAMILIES = {
    "conv": "#cfe2ff",
    "tconv": "#e2d9f3",
    "pool": "#d1e7dd",
    "norm": "#fff3cd",
    "activation": "#eeeeee",
    "merge": "#ffe5d0",
    "linear": "#f8d7da",
    "block": "#e0f0f5",
    "other": "#ffffff",
}
_OWNER_FAMILY = {
    "netspec.layers.conv": "conv",
    "netspec.layers.tconv": "tconv",
    "netspec.layers.pool": "pool",
    "netspec.layers.unpool": "tconv",
    "netspec.layers.upsample": "tconv",
    "netspec.layers.norm": "norm",
    "netspec.layers.activation": "activation",
    "netspec.layers.merge": "merge",
}


@dataclass
class _Node:
    name: str
    label: str
    detail: str
    params: str
    family: str
    level: int = 0
    column: int = 0

    @property
    def x(self) -> int:
        return MARGIN_X + self.column * COL_W

    @property
    def y(self) -> int:
        return MARGIN_Y + self.level * ROW_H


def _family(spec, row_type: str) -> str:
    if row_type not in spec.registry.layers:
        return "block"
    if row_type == "linear":
        return "linear"
    return _OWNER_FAMILY.get(spec.registry.owners.get(row_type, ""), "other")


def _key_params(spec, name: str) -> str:
    """``3×3 /2 d2 g4 p1``: kernel, stride, dilation, groups, padding where set."""
    try:
        params = spec.layer(name).params
    except KeyError:
        return ""

    def size(value) -> str:
        return "×".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    parts = []
    if getattr(params, "kernel_size", None) is not None:
        parts.append(size(params.kernel_size))
    for attr, prefix, default in (("stride", "/", 1), ("dilation", "d", 1), ("groups", "g", 1)):
        value = getattr(params, attr, None)
        if value is not None and value != default and not (attr == "stride" and value == params.kernel_size):
            parts.append(prefix + size(value))
    padding = getattr(params, "padding", None)
    if padding not in (None, 0):
        parts.append(f"pad {size(padding)}")
    for attr in ("out_channels", "out_features"):
        value = getattr(params, attr, None)
        if value is not None:
            parts.append(f"→{value}")
    return " ".join(parts)


def layout(summary: Summary, spec) -> tuple[list[_Node], dict[str, _Node], int, int]:
    """Levels by longest path from the input; columns by order within a level."""
    nodes: dict[str, _Node] = {
        "input": _Node("input", "input", describe(summary.input), "", "other", 0, 0),
    }
    per_level: dict[int, int] = {0: 1}
    for row in summary.rows:
        level = 1 + max(nodes[n].level for n in row.inputs if n in nodes) if row.inputs else 1
        column = per_level.get(level, 0)
        per_level[level] = column + 1
        nodes[row.name] = _Node(
            row.name,
            row.name,
            f"{row.type} {_key_params(spec, row.name)}".strip(),
            f"{row.params:,} params" if row.params else "",
            _family(spec, row.type),
            level,
            column,
        )
    out_level = 1 + max(n.level for n in nodes.values())
    for i, (name, shape) in enumerate(summary.outputs):
        nodes[f"output:{name}"] = _Node(
            f"output:{name}", "output", describe(shape), "", "other", out_level, i
        )
    width = MARGIN_X * 2 + max(per_level.values() or [1]) * COL_W + 260
    height = MARGIN_Y * 2 + (out_level + 1) * ROW_H
    return list(nodes.values()), nodes, width, height


def render_svg(summary: Summary, spec) -> str:
    ordered, nodes, width, height = layout(summary, spec)
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    parts += _clusters(ordered)
    shapes = {"input": summary.input, **{r.name: r.output for r in summary.rows}}
    edges = [(src, row.name) for row in summary.rows for src in row.inputs]
    edges += [(name, f"output:{name}") for name, _ in summary.outputs]
    for layer in spec.layers:  # max-pool indices that an unpool uses: dotted, labelled
        for ref in layer.record.refs:
            src, dst = layer.refs.get(ref.field), layer.name
            if src in nodes and dst in nodes:
                a, b = nodes[src], nodes[dst]
                x1, y1, x2, y2 = a.x, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
                bend = 30 + 9 * min(b.level - a.level, 14)
                parts.append(
                    f'<path d="M {x1} {y1} C {x1 - bend} {y1}, {x2 - bend} {y2}, {x2} {y2}" fill="none" '
                    f'stroke="#a33" stroke-dasharray="2 3" marker-end="url(#arrow)"/>'
                    f'<text x="{x1 - bend * 0.75 - 44}" y="{(y1 + y2) / 2}" fill="#a33" font-size="10">'
                    f"{esc(ref.output)}</text>"
                )
    for src, dst in edges:
        a, b = nodes[src], nodes[dst]
        x1, y1 = a.x + NODE_W / 2, a.y + NODE_H
        x2, y2 = b.x + NODE_W / 2, b.y
        span = b.level - a.level
        if span > 1 and a.column == b.column:  # a skip connection: from side to side, bowed out
            x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
            x2, y2 = b.x + NODE_W, b.y + NODE_H / 2
            bend = 30 + 9 * min(span, 14)
            d = f"M {x1} {y1} C {x1 + bend} {y1}, {x2 + bend} {y2}, {x2} {y2}"
            lx, ly = x1 + bend * 0.75 + 4, (y1 + y2) / 2
        else:
            d = f"M {x1} {y1} C {x1} {y1 + 25}, {x2} {y2 - 25}, {x2} {y2}"
            lx, ly = (x1 + x2) / 2 + 6, (y1 + y2) / 2 + 4
        style = ' stroke-dasharray="5 3"' if span > 1 else ""
        parts.append(
            f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.2"{style} marker-end="url(#arrow)"/>'
        )
        if src in shapes:
            parts.append(
                f'<text x="{lx}" y="{ly}" fill="#444" font-size="10">{esc(describe(shapes[src]))}</text>'
            )
    for node in ordered:
        fill = FAMILIES.get(node.family, "#fff")
        is_end = node.name == "input" or node.name.startswith("output:")
        rx = NODE_H / 2 if is_end else 8
        parts.append(
            f'<g class="node" data-name="{esc(node.name)}" tabindex="0"><title>{esc(node.name)}</title>'
            f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="{rx}" '
            f'fill="{fill}" stroke="#333" stroke-width="1"/>'
        )
        lines = [(node.label, "bold"), (node.detail, "normal"), (node.params, "normal")]
        lines = [(t, w) for t, w in lines if t]
        top = node.y + NODE_H / 2 - (len(lines) - 1) * 7 + 4
        for i, (text, weight) in enumerate(lines):
            parts.append(
                f'<text x="{node.x + NODE_W / 2}" y="{top + i * 14}" text-anchor="middle" '
                f'font-weight="{weight}">{esc(_clip(text))}</text>'
            )
        parts.append("</g>")
    parts.append(_legend(width))
    parts.append("</svg>")
    return "\n".join(parts)


def _clip(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clusters(nodes: list[_Node]) -> list[str]:
    """A rounded box behind every block instance (the name's first part, e.g. ``enc2``)."""
    groups: dict[str, list[_Node]] = {}
    for node in nodes:
        if "." in node.name and not node.name.startswith("output:"):
            groups.setdefault(node.name.split(".")[0], []).append(node)
    out = []
    for name, members in groups.items():
        x0 = min(n.x for n in members) - 12
        y0 = min(n.y for n in members) - 22
        x1 = max(n.x for n in members) + NODE_W + 12
        y1 = max(n.y for n in members) + NODE_H + 10
        out.append(
            f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="12" fill="#f7f9fc" '
            f'stroke="#9aa7b8" stroke-dasharray="4 3"/>'
            f'<text x="{x0 + 8}" y="{y0 + 14}" fill="#556" font-style="italic">{html.escape(name)}</text>'
        )
    return out


def _legend(width: int) -> str:
    items = [f for f in FAMILIES if f != "other"]
    out = []
    for i, family in enumerate(items):
        y = 20 + i * 18
        out.append(
            f'<rect x="{width - 120}" y="{y}" width="14" height="12" '
            f'fill="{FAMILIES[family]}" stroke="#333"/>'
            f'<text x="{width - 100}" y="{y + 10}" font-size="11">{family}</text>'
        )
    return "\n".join(out)


CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header { padding: 12px 20px; background: #24324a; color: white; }
header h1 { margin: 0; font-size: 20px; }
main { display: flex; gap: 16px; padding: 16px; align-items: flex-start; }
#picture { flex: 0 1 auto; max-width: 62vw; overflow: auto; max-height: 92vh; border: 1px solid #ccd;
  background: white; }
#side { flex: 1 1 0; min-width: 320px; overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { padding: 3px 7px; border-bottom: 1px solid #e3e6ea; text-align: left; white-space: nowrap; }
td.num { text-align: right; }
tr.layer { cursor: pointer; }
tr.layer:hover, tr.selected { background: #eef4ff; }
#explain { white-space: pre-wrap; overflow-wrap: anywhere; font-family: Menlo, Consolas, monospace;
  font-size: 12px; background: #f6f8fa; border: 1px solid #d0d7de; padding: 10px; min-height: 80px;
  margin-bottom: 12px; }
.node { cursor: pointer; }
.node.selected rect { stroke: #d33; stroke-width: 3; }
ul.totals { font-size: 12px; }
"""

SCRIPT = """
const EXPLAIN = JSON.parse(document.getElementById('explanations').textContent);
function show(name) {
  const box = document.getElementById('explain');
  box.textContent = EXPLAIN[name] || (name + ': no explanation');
  box.dataset.layer = name;
  document.querySelectorAll('.selected').forEach(e => e.classList.remove('selected'));
  document.querySelectorAll('[data-name="' + CSS.escape(name) + '"]')
    .forEach(e => e.classList.add('selected'));
}
document.querySelectorAll('[data-name]')
  .forEach(e => e.addEventListener('click', () => show(e.dataset.name)));
const wanted = new URLSearchParams(location.hash.slice(1)).get('layer');
if (wanted) {
  const target = document.querySelector('.node[data-name="' + CSS.escape(wanted) + '"]');
  if (target) target.dispatchEvent(new MouseEvent('click', {bubbles: true}));
}
"""


def render_html(summary: Summary, full: Summary, spec) -> str:
    """The report for ``summary`` (possibly folded); explanations come from the unfolded ``full``."""
    from netspec.teach import explanations as explain_rows

    esc = html.escape
    shown = {row.name for row in summary.rows}
    texts: dict[str, list[str]] = {name: [] for name in shown}
    for name, text in explain_rows(full).items():  # each layer's, under its row (a folded block's)
        parts = name.split(".")
        prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
        row = next((prefix for prefix in prefixes if prefix in shown), None)
        if row is not None:
            texts[row].append(text)
    explanations = {name: "".join(parts) for name, parts in texts.items()}
    explanations["input"] = f"input {describe(summary.input)}: the per-sample shape (the batch is implicit)"
    for name, shape in summary.outputs:
        explanations[f"output:{name}"] = f"output {name}: {describe(shape)}"
    header, rows, right = table_rows(summary, full=True)
    table = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for row, cells in zip(summary.rows, rows, strict=True):
        table.append(f'<tr class="layer" data-name="{esc(row.name)}">')
        table += [f'<td class="{"num" if i in right else ""}">{esc(c)}</td>' for i, c in enumerate(cells)]
        table.append("</tr>")
    table.append("</tbody></table>")
    data = json.dumps(explanations, ensure_ascii=False).replace("</", "<\\/")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(summary.name)} — netspec report</title>",
            f"<style>{CSS}</style></head><body>",
            f"<header><h1>{esc(summary.name)}</h1><div>{esc(spec.source)}: input "
            f"{esc(describe(summary.input))} → "
            + esc(", ".join(f"{n} {describe(s)}" for n, s in summary.outputs))
            + "</div></header>",
            "<main>",
            f'<div id="picture">{render_svg(summary, spec)}</div>',
            '<div id="side"><h2>Explanation</h2>',
            '<div id="explain">Click a layer in the picture or the table to see how its shape, '
            "channels and parameters come about.</div>",
            "<h2>Summary</h2>",
            *table,
            '<ul class="totals">',
            *(f"<li>{esc(line)}</li>" for line in totals_lines(summary)),
            "</ul></div></main>",
            f'<script type="application/json" id="explanations">{data}</script>',
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )

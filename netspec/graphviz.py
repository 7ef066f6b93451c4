"""``--graph FILE``: the network as Graphviz DOT, rendered by ``dot`` when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from netspec.errors import NetspecError
from netspec.report import render_dot
from netspec.spec import Spec
from netspec.summary import Summary

RENDERED = {".svg", ".png", ".pdf"}


def write_graph(spec: Spec, summary: Summary, path: str | Path) -> Path:
    """Write ``path`` (.dot, or .svg/.png/.pdf through Graphviz); returns what was written."""
    path = Path(path)
    aux = [
        (layer.refs[ref.field], layer.name, ref.output) for layer in spec.layers for ref in layer.record.refs
    ]
    dot_text = render_dot(summary, aux)
    suffix = path.suffix.lower()
    if suffix not in RENDERED:
        path.write_text(dot_text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        fallback = path.with_suffix(".dot")
        fallback.write_text(dot_text)
        raise NetspecError(
            f"Graphviz `dot` is not installed, so {path} cannot be rendered; wrote {fallback} instead "
            "(install graphviz, or render it elsewhere with `dot -T" + suffix[1:] + "`)"
        )
    result = subprocess.run(
        [dot, f"-T{suffix[1:]}", "-o", str(path)], input=dot_text, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise NetspecError(f"`dot` failed to render {path}: {result.stderr.strip()}")
    return path

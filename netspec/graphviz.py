"""``--graph FILE``: the network as Graphviz DOT, rendered by ``dot`` when it is installed
(``.svg`` without Graphviz: netspec's own pure-Python layout)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from netspec.errors import NetspecError
from netspec.outfiles import path_problem, write_text
from netspec.report import render_dot
from netspec.spec import Spec
from netspec.summary import Summary

DOT_TEXT = {".dot", ".gv"}  # written as DOT text, no Graphviz needed
RENDERED = {".svg", ".png", ".pdf", ".jpg", ".jpeg"}  # rendered by Graphviz `dot -T<format>`
INSTALL_GRAPHVIZ = "apt install graphviz, brew install graphviz or conda install graphviz"


def graph_path_problem(path: str | Path) -> str | None:
    """Why ``--graph path`` cannot be written, or None: checked before any work is done.

    A suffix netspec cannot produce, a format that needs a missing Graphviz, a missing or
    read-only directory are user errors, not failures halfway through (or, as a .jpg that
    holds DOT text, silent nonsense).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    formats = "DOT text (.dot, .gv), .svg or, with Graphviz installed, .png, .pdf, .jpg"
    if suffix not in DOT_TEXT | RENDERED:
        return f"--graph {path}: cannot write {suffix or 'a file without suffix'}; netspec writes {formats}"
    problem = path_problem("--graph", path, "network.dot")
    if problem:
        return problem
    if suffix in RENDERED and suffix != ".svg" and shutil.which("dot") is None:
        return (
            f"--graph {path} needs Graphviz's `dot` program, which is not on PATH: install Graphviz "
            f"({INSTALL_GRAPHVIZ}), or write {path.with_suffix('.dot')} and render it elsewhere "
            f"with `dot -T{suffix[1:]}`"
        )
    return None


def write_graph(spec: Spec, summary: Summary, path: str | Path, depth: int = 2) -> Path:
    """Write ``path`` (.dot/.gv, or .svg/.png/.pdf/.jpg through Graphviz); returns what was written.
    Graphviz draws every layer; netspec's own .svg folds block instances below ``depth`` (0: none),
    as the table does.

    Check the path with :func:`graph_path_problem` first: this raises for what it refuses.
    """
    path = Path(path)
    problem = graph_path_problem(path)
    if problem:
        raise NetspecError(problem)
    aux = [
        (layer.refs[ref.field], layer.name, ref.output) for layer in spec.layers for ref in layer.record.refs
    ]
    dot_text = render_dot(summary, aux)
    suffix = path.suffix.lower()
    if suffix in DOT_TEXT:
        write_text("--graph", path, dot_text)
        return path
    if suffix == ".svg" and shutil.which("dot") is None:  # no Graphviz: netspec's own layout
        from netspec.htmlreport import render_svg
        from netspec.summary import fold

        blocks = spec.document.blocks
        shown = fold(summary, depth, blocks, spec.document.block_lines) if blocks and depth else summary
        write_text("--graph", path, render_svg(shown, spec) + "\n")
        return path
    fmt = "jpg" if suffix == ".jpeg" else suffix[1:]
    result = subprocess.run(
        [shutil.which("dot") or "dot", f"-T{fmt}", "-o", str(path)],
        input=dot_text,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise NetspecError(f"`dot` failed to render {path}: {result.stderr.strip()}")
    return path

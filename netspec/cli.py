"""The ``netspec`` command line. Imports torch only for commands that build modules."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    from netspec import __version__

    parser = argparse.ArgumentParser(
        prog="netspec",
        description="Build PyTorch networks from YAML specs, with every shape inferred before anything runs.",
    )
    parser.add_argument("--version", action="version", version=f"netspec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="validate a spec and print each layer's output shape and parameters",
        description="Validate SPEC, infer every layer's shape and print them with parameter counts. "
        "Exit status: 0 valid, 2 invalid spec, 1 internal failure.",
    )
    build.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status instead of raising."""
    args = _parser().parse_args(argv)
    from netspec.errors import NetspecError, SpecError

    try:
        if args.command == "build":
            return _build(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except NetspecError as exc:
        print(f"netspec: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: no traceback unless asked for
        if os.environ.get("NETSPEC_DEBUG"):
            traceback.print_exc()
        else:
            print(
                f"netspec: internal error: {exc!r}\n"
                "  this is a bug in netspec or a plugin; rerun with NETSPEC_DEBUG=1 for the traceback",
                file=sys.stderr,
            )
        return EXIT_INTERNAL
    return EXIT_INTERNAL


def _build(args: argparse.Namespace) -> int:
    import netspec
    from netspec.counting import parameter_counts
    from netspec.shapes import describe

    spec = netspec.load(args.spec)
    counts = parameter_counts(spec)
    graph = any(
        layer.inputs != ((spec.layers[i - 1].name,) if i else ("input",))
        for i, layer in enumerate(spec.layers)
    )
    header = ["#", "name", "type", *(["from"] if graph else []), "output", "params"]
    rows = [
        [
            str(layer.index),
            layer.name,
            layer.type,
            *([", ".join(layer.inputs)] if graph else []),
            describe(layer.output_shape),
            f"{counts[layer.name]:,}",
        ]
        for layer in spec.layers
    ]
    print(_table(header, rows, right={0, len(header) - 1}))
    print(
        f"\n{spec.name}: input {describe(spec.input_shape)} → "
        + ", ".join(f"{n} {describe(spec.layer(n).output_shape)}" for n in spec.outputs)
    )
    print(f"total parameters: {sum(counts.values()):,}")
    return EXIT_OK


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Plain aligned columns; ``right`` are the right-aligned (numeric) column indices."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in pairs]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)

"""The ``netspec`` command line. Imports torch only for commands that build modules."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import traceback
from collections.abc import Sequence

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID = 0, 1, 2
ENV_DISABLE, ENV_BLOCK, ENV_ALLOW = (
    "NETSPEC_DISABLE_PLUGIN_AUTOLOAD",
    "NETSPEC_BLOCK_PLUGINS",
    "NETSPEC_PLUGINS",
)


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
        help="validate a spec; print each layer's shape and parameters (--summary for everything)",
        description="Validate SPEC, infer every layer's shape and print them with parameter counts, "
        "computed without running the network. Exit status: 0 valid, 2 invalid spec or broken "
        "`expect:` contract, 1 internal failure.",
    )
    build.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    build.add_argument(
        "--summary",
        action="store_true",
        help="full summary: MACs, receptive field, jump, YAML line, memory totals",
    )
    build.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default=None,
        help="output format (json and markdown imply --summary); default: table",
    )
    build.add_argument(
        "--input",
        metavar="C,H,W",
        type=_shape,
        default=None,
        help="override the spec's input shape, e.g. 3,512,512",
    )
    build.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive,
        default=1,
        help="batch size for the memory estimates (default 1)",
    )
    build.add_argument(
        "--explain",
        metavar="LAYER",
        nargs="?",
        const="",
        default=None,
        help="show each layer's shape formula with the numbers filled in (or one layer's)",
    )
    build.add_argument(
        "--graph",
        metavar="FILE",
        default=None,
        help="write a Graphviz picture: .dot always; .svg/.png/.pdf when `dot` is installed",
    )
    train = commands.add_parser(
        "train",
        help="train the network with PyTorch Lightning (offline digits data by default)",
        description="Train SPEC as its `train:` section says (everything optional: the default is the "
        "offline digits set). Writes a run directory with checkpoints, metrics.csv, the resolved spec "
        "and a plot. Exit status: 0 done, 2 invalid spec/config or data that does not fit, 1 failure.",
    )
    train.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    _add_set(train)
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue a stopped run from RUN_DIR/checkpoints/last.ckpt",
    )
    train.add_argument(
        "--data-dir", metavar="DIR", default=None, help="where dataset files live (default data/)"
    )
    evaluate = commands.add_parser("eval", help="report a checkpoint's metrics on the test split")
    evaluate.add_argument("spec", metavar="SPEC")
    evaluate.add_argument("--checkpoint", metavar="CKPT", required=True)
    evaluate.add_argument("--data-dir", metavar="DIR", default=None)
    _add_set(evaluate)
    export = commands.add_parser("export", help="export the network (with a checkpoint's weights) to ONNX")
    export.add_argument("spec", metavar="SPEC")
    export.add_argument("--checkpoint", metavar="CKPT", default=None)
    export.add_argument("--onnx", metavar="FILE", required=True)
    plugins = commands.add_parser(
        "plugins",
        help="list loaded plugins: origin, distribution, hooks, layer types; and broken ones",
        description="List every plugin: built-in or entry point, its distribution and version, the hooks "
        "it implements and the layer types it registers; then the plugins that failed to load, and why. "
        f"Switches: {ENV_DISABLE}=1, {ENV_BLOCK}=a,b, {ENV_ALLOW}=a,b (allow-list).",
    )
    plugins.add_argument("--format", choices=("table", "json"), default="table")
    schema = commands.add_parser(
        "schema",
        help="write the JSON Schema of the spec language, installed plugins' layer types included",
        description="Write the JSON Schema of netspec specs (for editor completion with a YAML language "
        "server), including the layer types of every installed plugin.",
    )
    schema.add_argument(
        "-o", "--output", metavar="FILE", default=None, help="write to FILE instead of stdout"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status instead of raising."""
    args = _parser().parse_args(argv)
    from netspec.data import DataError
    from netspec.errors import NetspecError, SpecError

    try:
        _warn_broken_plugins()
        if args.command == "build":
            return _build(args)
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "export":
            return _export(args)
        if args.command == "plugins":
            return _plugins(args)
        if args.command == "schema":
            return _schema(args)
    except (SpecError, DataError) as exc:
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


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override a spec value, e.g. --set train.optimizer.lr=0.01 (repeatable)",
    )


def _train(args: argparse.Namespace) -> int:
    from netspec.training.run import fit

    result = fit(args.spec, overrides=args.overrides, resume=args.resume, data_dir=args.data_dir)
    if result.rank != 0:  # DDP: the other ranks ran the same command; rank 0 reports
        return EXIT_OK
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
    print(f"done: {result.epochs} epochs, {result.steps} steps; {shown}")
    print(f"best checkpoint: {result.best_checkpoint}\nrun directory: {result.run_dir}")
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    from netspec.training.run import evaluate

    metrics = evaluate(args.spec, args.checkpoint, overrides=args.overrides, data_dir=args.data_dir)
    print(", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from netspec.training.run import export_onnx

    path = export_onnx(args.spec, args.checkpoint, args.onnx)
    print(f"ONNX model written to {path}")
    return EXIT_OK


def _warn_broken_plugins() -> None:
    from netspec.plugins import default_registry

    for failure in default_registry().failures:
        print(f"netspec: warning: plugin {failure.label} is not loaded: {failure.error}", file=sys.stderr)


def _plugins(args: argparse.Namespace) -> int:
    import json

    from netspec.plugins import default_registry

    registry = default_registry()
    infos = sorted(registry.plugins.values(), key=lambda i: (i.origin != "built-in", i.name))
    if args.format == "json":
        rows = [
            {
                "name": i.name,
                "origin": i.origin,
                "distribution": i.distribution,
                "version": i.version,
                "hooks": list(i.hooks),
                "layer_types": list(i.layer_types),
                "error": i.error,
            }
            for i in [*infos, *registry.failures]
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ["plugin", "origin", "distribution", "hooks", "layer types"]
    rows = [
        [
            i.name,
            i.origin,
            f"{i.distribution or '-'} {i.version or ''}".strip(),
            ", ".join(i.hooks),
            f"{len(i.layer_types)}: {', '.join(i.layer_types)}",
        ]
        for i in infos
    ]
    print(_table(header, rows, right=set()))
    print(f"\n{len(registry.layers)} layer types from {len(infos)} plugins")
    if registry.failures:
        print("\nbroken plugins (not loaded):")
        for failure in registry.failures:
            print(f"  {failure.label} [{failure.origin}]: {failure.error}")
        return EXIT_INTERNAL
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    import json

    from netspec.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"schema written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        shape = []
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 3,224,224; got {text!r}")
    return shape


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def _build(args: argparse.Namespace) -> int:
    import netspec
    from netspec import report
    from netspec.summary import summarize

    spec = netspec.load(args.spec, input_shape=args.input)
    summary = summarize(spec, batch_size=args.batch_size)  # its meta-device build checks `expect:`
    if args.explain is not None:
        names = {r.name for r in summary.rows} | {str(r.index) for r in summary.rows}
        if args.explain and args.explain not in names:
            print(f"netspec: no layer {args.explain!r} in {spec.source}", file=sys.stderr)
            return EXIT_INVALID
        sys.stdout.write(report.render_explain(summary, args.explain or None))
    elif args.format == "json":
        sys.stdout.write(report.render_json(summary))
    elif args.format == "markdown":
        sys.stdout.write(report.render_markdown(summary))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
        sys.stdout.write(report.render_table(summary, full=args.summary, width=width, color=color))
    if args.graph:
        from netspec.graphviz import write_graph

        written = write_graph(spec, summary, args.graph)
        print(f"graph written to {written}", file=sys.stderr)
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

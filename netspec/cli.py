"""The ``netspec`` command line. Imports torch only for commands that build modules."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import traceback
from collections.abc import Sequence

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID = 0, 1, 2
DEFAULT_DEPTH = 2  # `build` folds block instances below layer2.0 unless --depth says otherwise
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
    parser.commands = commands  # _parse_args reports a command's unknown options with its own usage
    build = commands.add_parser(
        "build",
        help="validate a spec; print each layer's shape and parameters (--summary for everything)",
        description="Validate SPEC, infer every layer's shape and print them with parameter counts, "
        "computed without running the network. Exit status: 0 valid, 2 invalid spec, broken "
        "`expect:` contract or invalid option, 1 internal failure.",
        epilog="Combinations: --format json/markdown include everything --summary shows; --batch-size, "
        "--precision and --optimizer need an output with memory estimates (--summary, --format json or "
        "markdown); --explain prints formulas instead of the table, so it takes none of --summary, "
        "--format, --batch-size, --precision, --optimizer; "
        "--graph and --input combine with all of these; --sizes lists input sizes instead of the "
        "table, so it takes none of them. A flag that would do nothing is an error.",
    )
    build.set_defaults(build_parser=build)
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
        help="override the spec's input sizes, e.g. 3,512,512; same number of dimensions as the spec's",
    )
    build.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive,
        default=None,
        help="batch size for the memory estimates of --summary/json/markdown (default 1)",
    )
    build.add_argument(
        "--precision",
        choices=("32", "bf16-mixed", "16-mixed"),
        default=None,
        help="precision the training-memory estimate assumes (default: the spec's train.precision, else 32)",
    )
    build.add_argument(
        "--optimizer",
        metavar="NAME",
        type=_optimizer,
        default=None,
        help="optimizer the training-memory estimate assumes: sgd, sgd:MOMENTUM (e.g. sgd:0.9), adam or "
        "adamw (default: the spec's train.optimizer, else adam)",
    )
    build.add_argument(
        "--explain",
        metavar="LAYER",
        nargs="?",
        const="",
        default=None,
        help="show each layer's shape formula with the numbers filled in (or one layer's), "
        "instead of the table",
    )
    _add_set(build)
    build.add_argument(
        "--depth",
        metavar="N",
        type=_non_negative,
        default=None,
        help="fold block instances deeper than N name parts into one row (0: unfold everything); "
        "default 2 for specs with blocks",
    )
    build.add_argument(
        "--graph",
        metavar="FILE",
        default=None,
        help="also write the graph: .dot/.gv and .svg always; .png/.pdf/.jpg with Graphviz `dot` installed",
    )
    build.add_argument(
        "--html",
        metavar="FILE",
        type=_ending_in(".html", ".htm"),
        default=None,
        help="also write a self-contained HTML report: summary table, picture, explanations on click",
    )
    build.add_argument(
        "--sizes",
        metavar="LO:HI",
        default=None,
        help="list the square input sizes n in LO..HI the spec builds for, and the rule when simple "
        "(n ≡ 0 (mod 8)); DIM=LO:HI (e.g. W=32:128) varies one spatial dim only",
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
        help="continue a stopped or finished run from RUN_DIR/checkpoints/last.ckpt (a larger "
        "train.max_epochs/max_steps continues a finished one; any other change is refused)",
    )
    train.add_argument(
        "--init",
        metavar="CKPT",
        default=None,
        help="start from these weights: a netspec .ckpt or a state_dict .pt/.pth; tensors of matching "
        "name and shape are loaded, the rest reported (same as train.init, but relative to here)",
    )
    train.add_argument(
        "--data-dir", metavar="DIR", default=None, help="where dataset files live (default data/)"
    )
    tune = commands.add_parser(
        "tune",
        help="find a learning rate: Lightning's finder, a plot and the --set to train with",
        description="Train SPEC for --steps optimizer steps while the learning rate grows exponentially "
        "from --min-lr to --max-lr, and suggest the rate where the smoothed loss falls fastest per "
        "decade. Writes lr_find.png, lr_find.csv and the resolved spec into --out (default "
        "runs/<name>-tune-<time>); "
        "prints the suggestion and the --set to train with. train.init and train.freeze apply; the "
        "schedule does not. Exit status: 0 done, 2 invalid spec/data or no suggestion possible.",
    )
    tune.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    _add_set(tune)
    tune.add_argument(
        "--out", metavar="DIR", type=_directory, default=None, help="directory for the plot and points"
    )
    tune.add_argument(
        "--steps",
        metavar="N",
        type=_finder_steps,
        default=100,
        help=f"learning rates to try, one step each (100; at most {MAX_FINDER_STEPS:,})",
    )
    tune.add_argument("--min-lr", metavar="LR", type=_rate, default=1e-7, help="first rate (1e-7)")
    tune.add_argument("--max-lr", metavar="LR", type=_rate, default=1.0, help="last rate (1)")
    tune.add_argument(
        "--data-dir", metavar="DIR", default=None, help="where dataset files live (default data/)"
    )
    evaluate = commands.add_parser("eval", help="report a checkpoint's metrics on the test split")
    evaluate.add_argument("spec", metavar="SPEC")
    evaluate.add_argument("--checkpoint", metavar="CKPT", required=True)
    evaluate.add_argument("--data-dir", metavar="DIR", default=None)
    _add_set(evaluate)
    export = commands.add_parser("export", help="export the network (with a checkpoint's weights) to ONNX")
    export.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    export.add_argument(
        "--checkpoint",
        metavar="CKPT",
        default=None,
        help="weights: a .ckpt, a run directory or a plain state_dict (default: a seeded random init)",
    )
    export.add_argument(
        "--onnx",
        metavar="FILE",
        type=_ending_in(".onnx"),
        required=True,
        help="the .onnx file to write (missing directories are made)",
    )
    _add_set(export)
    _add_predict(commands)
    show = commands.add_parser(
        "show",
        help="push one input through the network and write a PNG of each layer's feature maps",
        description="Write into DIR input.png and, for each chosen layer (default: every conv and pool "
        "layer), a PNG grid of its output channels, each min-max normalised; with TensorBoard "
        "installed, the same images to DIR/tensorboard. The input is an image file or a test sample "
        "of the spec's dataset (train.data, default digits). Exit status: 0 done, 2 bad input.",
    )
    show.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    show.add_argument("--checkpoint", metavar="CKPT", default=None, help="weights (default: random init)")
    source = show.add_mutually_exclusive_group()
    source.add_argument("--image", metavar="FILE", default=None, help="a PNG/JPEG image as input")
    source.add_argument(
        "--sample",
        metavar="N",
        type=_non_negative,
        default=None,
        help="test sample N of the dataset (default 0)",
    )
    show.add_argument(
        "--layers", metavar="A,B", type=_layer_names, default=None, help="layer names (e.g. layer1.0.conv1)"
    )
    show.add_argument("--out", metavar="DIR", type=_directory, required=True, help="directory for the PNGs")
    show.add_argument("--input", metavar="C,H,W", type=_shape, default=None, help="override input sizes")
    show.add_argument("--data-dir", metavar="DIR", default=None, help="where dataset files live")
    _add_set(show)
    explain = commands.add_parser(
        "explain",
        help="explain one layer without a spec: output shape, parameters, MACs and the formulas",
        description="Explain a single layer of any registered type (plugins included), e.g. "
        "`netspec explain conv --input 3,32,32 out_channels=6 kernel_size=3`. Values are read as "
        "YAML like --set values (kernel_size=[2,3]); merge layers take one --input per input. "
        "Exit status: 0 done, 2 invalid layer or values.",
    )
    explain.add_argument("type", metavar="TYPE", help="a layer type, e.g. conv, maxpool, tconv")
    explain.add_argument(
        "params",
        metavar="KEY=VALUE",
        nargs=argparse.REMAINDER,
        help="--input C,H,W (repeat for merges) and the layer's parameters",
    )
    plugins = commands.add_parser(
        "plugins",
        help="list loaded plugins: origin, distribution, hooks, layer types; and broken ones",
        description="List every plugin: built-in or entry point, its distribution and version, the hooks "
        "it implements and the layer types it registers; then the plugins that failed to load, and why. "
        f"Switches: {ENV_DISABLE}=1, {ENV_BLOCK}=a,b, {ENV_ALLOW}=a,b (allow-list).",
    )
    plugins.add_argument("--format", choices=("table", "json"), default="table")
    _add_datasets(commands)
    schema = commands.add_parser(
        "schema",
        help="write the JSON Schema of the spec language, installed plugins' layer types included",
        description="Write the JSON Schema of netspec specs (for editor completion with a YAML language "
        "server), including the layer types of every installed plugin.",
    )
    schema.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=_output_or_stdout,
        default=None,
        help="write to FILE instead of stdout (- is stdout)",
    )
    for command in (parser, *commands.choices.values()):
        command.allow_abbrev = False  # `train --in 3` was read as --init 3: an option is spelled out
    return parser


def console() -> None:
    """The ``netspec`` command (and ``python -m netspec``): ``main``'s status as the process's.

    The process ends here, so its heap is frozen first: the interpreter's teardown would
    otherwise run several full collections over every object torch and Lightning left, 1.2 s
    after ``netspec train`` on a 2-core machine."""
    from netspec.heap import freeze_for_exit

    code = main()
    freeze_for_exit()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status instead of raising."""
    args = _parse_args(argv)
    if args.command == "build":
        _check_build_flags(args)
    from netspec.data import DataError
    from netspec.errors import NetspecError, SpecError

    try:
        _warn_broken_plugins()
        if args.command == "build":
            return _build(args)
        if args.command == "train":
            return _train(args)
        if args.command == "tune":
            return _tune(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "export":
            return _export(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "plugins":
            return _plugins(args)
        if args.command == "datasets":
            return _datasets(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "show":
            return _show(args)
        if args.command == "schema":
            return _schema(args)
    except (SpecError, DataError) as exc:
        _say(str(exc))
        return EXIT_INVALID
    except NetspecError as exc:
        if os.environ.get("NETSPEC_DEBUG"):  # a broken plugin or a bug: the traceback, with its cause
            traceback.print_exc()
        _say(f"netspec: {exc}")
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing left to say
        _silence_output()
        return EXIT_OK
    except Exception as exc:  # the last line of defence: no traceback unless asked for
        if os.environ.get("NETSPEC_DEBUG"):
            traceback.print_exc()
        else:
            _say(
                f"netspec: internal error: {exc!r}\n"
                "  this is a bug in netspec or a plugin; rerun with NETSPEC_DEBUG=1 for the traceback"
            )
        return EXIT_INTERNAL
    return EXIT_INTERNAL


def _say(text: str) -> None:
    """The error message on stderr; a reader that closed it (``2>&1 | head``) does not turn the
    exit status into 1."""
    try:
        print(text, file=sys.stderr, flush=True)
    except BrokenPipeError:
        _silence_output()


def _silence_output() -> None:
    """Point both streams at /dev/null, so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """``parse_args``, except that predict's INPUTS may also follow its options (argparse alone
    would take them all before the first option, and refuse the rest)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "predict" and not any(item.startswith("-") for item in extra):
        args.inputs, extra = [*args.inputs, *extra], []
    if extra:
        command = parser.commands.choices[args.command]  # its usage, not netspec's: the user is in it
        command.error(f"unrecognized arguments: {' '.join(extra)}" + _unrecognized_hint(extra))
    return args


def _unrecognized_hint(extra: list[str]) -> str:
    """``--input`` where only build and show take it: the way every command changes the input."""
    given = next((item for item in extra if item == "--input" or item.startswith("--input=")), None)
    if given is None:
        return ""
    at = extra.index(given)
    value = given.partition("=")[2] if "=" in given else extra[at + 1] if at + 1 < len(extra) else ""
    sizes = [part.strip() for part in value.split(",")]
    shaped = all(size.isascii() and size.isdigit() for size in sizes)  # only a shape is repeated
    shape = ", ".join(sizes) if shaped else "C, H, W"
    return f" (this command reads the input shape from the spec: --set 'input=[{shape}]' changes it)"


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override a spec value, e.g. --set train.optimizer.lr=0.01, --set params.width=32 (repeatable)",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        type=_variant,
        action="append",
        dest="overrides",
        help="build this variant of the spec's `variants:` (the same as --set variant=NAME)",
    )


def _variant(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"expected a variant name, got {text!r}")
    return f"variant={text}"


def _train(args: argparse.Namespace) -> int:
    from netspec.training.run import fit

    result = fit(
        args.spec, overrides=args.overrides, resume=args.resume, data_dir=args.data_dir, init=args.init
    )
    if result.rank != 0:  # DDP: the other ranks ran the same command; rank 0 reports
        return EXIT_OK
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
    from netspec.training.finetune import counted

    print(f"done: {counted(result.epochs, 'epoch')}, {counted(result.steps, 'step')}; {shown}")
    if not result.test_split:
        from netspec.training.run import NO_TEST_SPLIT

        print(NO_TEST_SPLIT, file=sys.stderr)
    print(f"best checkpoint: {result.best_checkpoint}\nrun directory: {result.run_dir}")
    return EXIT_OK


def _tune(args: argparse.Namespace) -> int:
    import shlex

    from netspec.training.tune import find_lr, lr_text

    with contextlib.redirect_stdout(sys.stderr):
        result = find_lr(
            args.spec,
            overrides=args.overrides,
            data_dir=args.data_dir,
            out=args.out,
            min_lr=args.min_lr,
            max_lr=args.max_lr,
            steps=args.steps,
        )
    lr = lr_text(result.suggestion)
    kept = [o for o in args.overrides if not o.replace(" ", "").startswith("train.optimizer.lr=")]
    command = ["netspec", "train", args.spec, *(arg for o in kept for arg in ("--set", o))]
    print(f"suggested learning rate: {lr}")
    print(f"plot: {result.plot}")
    print(f"train with: --set train.optimizer.lr={lr}")
    print(f"  {shlex.join([*command, '--set', f'train.optimizer.lr={lr}'])}")
    return EXIT_OK


def _eval(args: argparse.Namespace) -> int:
    from netspec.training.run import evaluate

    metrics = evaluate(args.spec, args.checkpoint, overrides=args.overrides, data_dir=args.data_dir)
    print(", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from netspec.training.run import export_onnx

    path = export_onnx(args.spec, args.checkpoint, args.onnx, overrides=args.overrides)
    print(f"ONNX model written to {path}")
    return EXIT_OK


def _add_predict(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="run a trained network on images, arrays or a dataset split and write its predictions",
        description="Predict INPUTS (PNG/JPEG files, directories of them, .npy/.npz/.pt arrays of samples) "
        "and/or --split of the spec's dataset with CKPT's weights. Per output, as the checkpoint recorded "
        "its task: classes (predictions.csv/.jsonl, a table on stdout), segmentation masks (palette PNGs, "
        "masks.npy, overview.png) or values (<output>.npy; reconstructions also as PNGs). "
        "Exit status: 0 done, 2 bad input, checkpoint or output directory.",
    )
    predict.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    predict.add_argument("inputs", metavar="INPUTS", nargs="*", help="image files, directories, arrays")
    predict.add_argument("--checkpoint", metavar="CKPT", required=True, help="a run's best.ckpt or last.ckpt")
    predict.add_argument(
        "--split", choices=("test", "val", "train"), default=None, help="a split of train.data"
    )
    predict.add_argument(
        "--out",
        metavar="DIR",
        type=_directory,
        default="predictions",
        help="output directory (default predictions)",
    )
    predict.add_argument("--batch-size", metavar="N", type=_positive, default=64, help="default 64")
    predict.add_argument(
        "--top-k", metavar="K", type=_positive, default=5, help="classes listed per input (default 5)"
    )
    predict.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: a GPU if any"
    )
    predict.add_argument("--data-dir", metavar="DIR", default=None, help="where dataset files live (--split)")
    _add_set(predict)


def _predict(args: argparse.Namespace) -> int:
    from netspec.predict import predict

    with contextlib.redirect_stdout(sys.stderr):  # plugin or library prints cannot corrupt the table
        result = predict(
            args.spec,
            args.checkpoint,
            args.inputs,
            split=args.split,
            out_dir=args.out,
            batch_size=args.batch_size,
            top_k=args.top_k,
            device=args.device,
            overrides=args.overrides,
            data_dir=args.data_dir,
        )
    print(result.report)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from netspec.show import show

    with contextlib.redirect_stdout(sys.stderr):
        result = show(
            args.spec,
            args.out,
            checkpoint=args.checkpoint,
            image=args.image,
            sample=args.sample,
            layers=args.layers,
            input_shape=args.input,
            overrides=args.overrides,
            data_dir=args.data_dir,
        )
    for path in [result.input_png, *result.pictures.values()]:
        print(path)
    if result.tensorboard is not None:
        print(f"TensorBoard images in {result.tensorboard}", file=sys.stderr)
    return EXIT_OK


def _warn_broken_plugins() -> None:
    from netspec.plugins import default_registry

    for failure in default_registry().failures:
        print(f"netspec: warning: plugin {failure.label} is not loaded: {failure.error}", file=sys.stderr)


def _explain(args: argparse.Namespace) -> int:
    from netspec.teach import explain_layer

    inputs, assignments, rest = [], [], list(args.params)
    while rest:
        item = rest.pop(0)
        if item == "--input" or item.startswith("--input="):
            value = item.partition("=")[2] if "=" in item else (rest.pop(0) if rest else "")
            try:
                inputs.append(_shape(value))
            except argparse.ArgumentTypeError as exc:
                print(f"netspec explain: --input: {exc}", file=sys.stderr)
                return EXIT_INVALID
        else:
            assignments.append(item)
    with contextlib.redirect_stdout(sys.stderr):
        text = explain_layer(args.type, inputs, assignments)
    sys.stdout.write(text)
    return EXIT_OK


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
            for i in [*infos, *registry.failures, *registry.skipped]
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ["plugin", "origin", "distribution", "hooks", "provides"]
    rows = [
        [
            i.name,
            i.origin,
            f"{i.distribution or '-'} {i.version or ''}".strip(),
            ", ".join(i.hooks),
            "; ".join(
                f"{len(names)} {kind}{'s' if len(names) > 1 else ''}: {', '.join(names)}"
                for kind, names in (("layer type", i.layer_types), ("dataset", i.dataset_types))
                if names
            )
            or "-",
        ]
        for i in infos
    ]
    print(_table(header, rows, right=set()))
    counts = f"{len(registry.layers)} layer types and {len(registry.datasets)} datasets"
    print(f"\n{counts} from {len(infos)} plugins")
    if registry.skipped:
        print("\nleft out by the environment (not loaded):")
        for info in registry.skipped:
            print(f"  {info.label}: {info.error}")
    if registry.failures:
        print("\nbroken plugins (not loaded):")
        for failure in registry.failures:
            print(f"  {failure.label} [{failure.origin}]: {failure.error}")
        # a plugin that fails is its author's bug; a name in the environment that matches none, the user's
        return EXIT_INTERNAL if any(f.origin != "environment" for f in registry.failures) else EXIT_INVALID
    return EXIT_OK


def _add_datasets(commands) -> None:
    datasets = commands.add_parser(
        "datasets",
        help="list the dataset types for train.data: options, and which files each reads from where",
        description="List every registered dataset type (built-in and plugin, with the plugin it comes "
        "from): its summary, its options and the files it expects where, and how to get them. With "
        "NAME, that one in detail: each option's type, default and meaning. Exit status: 0 done, 2 "
        "unknown NAME.",
    )
    datasets.add_argument(
        "name", metavar="NAME", nargs="?", default=None, help="one dataset type, e.g. mnist"
    )
    datasets.add_argument("--format", choices=("text", "json"), default="text")


def _datasets(args: argparse.Namespace) -> int:
    from netspec.datasetinfo import datasets_command

    status, out, err = datasets_command(args.name, args.format)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return status


def _schema(args: argparse.Namespace) -> int:
    import json

    from netspec.outfiles import check, write_text
    from netspec.schema import spec_json_schema

    if args.output:
        check("-o", args.output, "netspec.schema.json", "netspec schema")
    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        write_text("-o", args.output, text)
        print(f"schema written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _shape(text: str) -> list[int]:
    """``3,224,224`` or ``3x224x224``: every part a positive integer (an empty one is a typo)."""
    parts = re.split(r"[,x×]", text.strip())
    try:
        shape = [int(part) for part in parts if part.strip().isdigit()]
    except ValueError:
        shape = []
    if len(shape) != len(parts) or not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 3,224,224; got {text!r}")
    return shape


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 1e3):  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a learning rate in (0, 1000]; got {text!r}")
    return value


MAX_FINDER_STEPS = 100_000  # a range test longer than this is a typo, not a finer curve


def _finder_steps(text: str) -> int:
    steps = _positive(text)
    if steps > MAX_FINDER_STEPS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_FINDER_STEPS:,} steps; got {text!r}")
    return steps


def _directory(text: str) -> str:
    """An output directory's name: an empty one would quietly mean the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "expected a directory; got an empty name (write . for this directory)"
        )
    return text


def _output_or_stdout(text: str) -> str | None:
    """``-o FILE``; ``-`` is stdout, as for most tools (it wrote a file named "-")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name (or - for stdout); got an empty name")
    return None if text == "-" else text


def _ending_in(*suffixes: str):
    """An output file with its format's suffix: a slip of the shell (``--onnx spec.yaml``,
    ``--html best.ckpt``) must not replace the file being read."""

    def output_file(text: str) -> str:
        if not text.lower().endswith(suffixes) and not os.path.isdir(text):  # a directory: named later
            raise argparse.ArgumentTypeError(
                f"expected a file name ending in {' or '.join(suffixes)}; got {text!r}"
            )
        return text

    return output_file


def _layer_names(text: str) -> list[str]:
    """``A,B``: layer names, each non-empty (spaces around them are dropped)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected layer names separated by commas; got {text!r}")
    return names


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def _optimizer(text: str) -> str:
    name, colon, momentum = text.partition(":")
    try:
        ok = name in ("sgd", "adam", "adamw") and (not colon or (name == "sgd" and 0 <= float(momentum) < 1))
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            f"expected sgd, sgd:MOMENTUM (0 <= MOMENTUM < 1), adam or adamw; got {text!r}"
        )
    return text


def _check_build_flags(args: argparse.Namespace) -> None:
    """Refuse (exit 2, with usage) a flag that would do nothing in this combination, or a bad --graph."""
    problem = _flag_problem(args)
    if problem is None and args.graph:
        from netspec.graphviz import graph_path_problem

        problem = graph_path_problem(args.graph)
    if problem is None and args.html:
        from netspec.outfiles import path_problem

        problem = path_problem("--html", args.html, "report.html")
    if problem:
        args.build_parser.error(problem)


def _flag_problem(args: argparse.Namespace) -> str | None:
    if args.sizes is not None:
        from netspec.sizes import parse_range

        try:
            parse_range(args.sizes)
        except ValueError as exc:
            return f"--sizes: {exc}"
        flags = [f for f, v in (("--explain", args.explain), ("--format", args.format)) if v is not None]
        flags += [
            f for f, v in (("--summary", args.summary), ("--input", args.input), ("--graph", args.graph)) if v
        ]
        if flags:
            return f"--sizes lists input sizes instead of the table, so {', '.join(flags)} would do nothing"
    if args.explain is not None:
        ignored = [
            flag
            for flag, given in (
                ("--summary", args.summary),
                ("--format", args.format is not None),
                ("--batch-size", args.batch_size is not None),
                ("--precision", args.precision is not None),
                ("--optimizer", args.optimizer is not None),
            )
            if given
        ]
        if ignored:
            flags = ", ".join(ignored)
            return f"--explain prints shape formulas instead of the table, so {flags} would do nothing"
    folds_a_picture = args.html or str(args.graph or "").lower().endswith(".svg")
    if args.depth is not None and not folds_a_picture and (args.format == "json" or args.explain is not None):
        what = "--format json lists every layer" if args.format == "json" else "--explain prints formulas"
        return (
            f"--depth folds the table's rows (and --html's, and a --graph .svg's); {what}, "
            "so --depth would do nothing"
        )
    shows_memory = args.summary or args.format in ("json", "markdown")
    memory_flags = [
        flag
        for flag, value in (
            ("--batch-size", args.batch_size),
            ("--precision", args.precision),
            ("--optimizer", args.optimizer),
        )
        if value is not None
    ]
    if memory_flags and not shows_memory:
        what = (
            "scales"
            if memory_flags == ["--batch-size"]
            else "changes"
            if len(memory_flags) == 1
            else "change"
        )
        return (
            f"{', '.join(memory_flags)} {what} the memory estimates, which only --summary, --format json or "
            "markdown show"
        )
    return None


def _build(args: argparse.Namespace) -> int:
    import netspec
    from netspec import report
    from netspec.errors import SpecError
    from netspec.summary import fold, summarize
    from netspec.yamlio import read_spec_file

    if args.sizes is not None:
        from netspec.sizes import parse_range, render, scan

        with contextlib.redirect_stdout(sys.stderr):
            text = render(scan(args.spec, *parse_range(args.sizes), overrides=args.overrides))
        sys.stdout.write(text)
        return EXIT_OK
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # plugin code that prints cannot corrupt the output
        document = read_spec_file(args.spec)
        try:
            spec = netspec.load(document, input_shape=args.input, overrides=args.overrides)
        except SpecError as exc:
            if args.explain is None:
                raise
            from netspec.diagnose import explain_failure  # explain the failing layer, exit 2 all the same

            print(exc, file=sys.stderr)
            out.write(explain_failure(args.spec, input_shape=args.input, overrides=args.overrides) or "")
            return EXIT_INVALID
        if args.input is not None and spec.model.expect is None and "expect" in (document.data or {}):
            print("netspec: note: expect: contracts describe the spec at its own input: not checked")
        training = {"precision": args.precision, "optimizer": args.optimizer}
        training = {key: value for key, value in training.items() if value is not None}
        full = summarize(spec, batch_size=args.batch_size or 1, **training)  # checks `expect:` contracts
        depth = args.depth if args.depth is not None else DEFAULT_DEPTH if spec.document.blocks else 0
        folded = depth and args.format != "json" and args.explain is None
        summary = fold(full, depth, spec.document.blocks, spec.document.block_lines) if folded else full
        if args.explain is not None:
            names = {r.name for r in summary.rows} | {str(r.index) for r in summary.rows}
            if args.explain and args.explain not in names:
                raise SpecError([spec.no_such_layer(args.explain)])
            text = report.render_explain(summary, args.explain or None)
        elif args.format == "json":
            text = report.render_json(summary)
        elif args.format == "markdown":
            text = report.render_markdown(summary)
        else:
            text = report.render_table(summary, full=args.summary, width=width, color=color)
        if args.html:
            from netspec.htmlreport import render_html
            from netspec.outfiles import write_text

            shown = fold(full, depth, spec.document.blocks, spec.document.block_lines) if depth else full
            write_text("--html", args.html, render_html(shown, full, spec))
            print(f"HTML report written to {args.html}", file=sys.stderr)
        if args.graph:
            from netspec.graphviz import write_graph

            written = write_graph(spec, full, args.graph, depth=depth)
            print(f"graph written to {written}", file=sys.stderr)
    out.write(text)
    return EXIT_OK


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """Plain aligned columns; ``right`` are the right-aligned (numeric) column indices."""
    from netspec.columns import aligned

    return "\n".join(aligned(header, rows, right))

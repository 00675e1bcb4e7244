"""The `digitlab` command: flags and a call into an importable function, nothing more.

Each subcommand imports its stage lazily, so `digitlab fetch` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from digitlab.errors import DigitlabError


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where MNIST lives (default: $DIGITLAB_DATA or ~/.cache/digitlab)",
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    from digitlab.fetch import fetch_mnist

    result = fetch_mnist(args.data_dir, source_dir=args.source, force=args.force, verify=args.verify)
    if result.source == "cache":
        print(f"MNIST already verified in {result.data_dir}" + (" (full re-hash)" if args.verify else ""))
    else:
        print(f"MNIST verified in {result.data_dir} (source: {result.source})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from digitlab.data import describe, format_summary, load_splits, save_sample_grid
    from digitlab.fetch import default_data_dir

    splits = load_splits(args.data_dir, validation_size=args.validation_size, seed=args.seed)
    print(format_summary(describe(splits)))
    grid = args.grid or Path(args.data_dir or default_data_dir()) / "samples.png"
    save_sample_grid(splits.x_train, splits.y_train, grid)
    print(f"sample grid: {grid}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from digitlab.config import resolve_config

    flags = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    config = resolve_config(args.model, args.recipe, **flags)  # validate before importing TensorFlow
    from digitlab.train import train_and_evaluate

    train_and_evaluate(config)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from digitlab.evaluate import evaluate_model, format_summary

    result = evaluate_model(args.target, split=args.split, out=args.out, data_dir=args.data_dir)
    print(format_summary(result.metrics))
    print(f"report: {result.out_dir / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from digitlab.evaluate import compare_runs

    _, table = compare_runs(args.runs, out=args.out)
    print(table)
    print(f"saved: {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from digitlab.predict import run_predict

    return run_predict(args.paths, args.model, args.top_k, args.json, args.save_processed)


def cmd_serve(args: argparse.Namespace) -> int:
    from digitlab.serve import ServeConfig, serve

    config = ServeConfig(
        model=str(args.model),
        max_body_bytes=args.max_body_bytes,
        max_pixels=args.max_pixels,
        feedback_dir=str(args.feedback_dir) if args.feedback_dir else None,
        cors_origins=tuple(args.cors_origin),
    )
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from digitlab.launch import launch

    return launch(args.command, workers=args.workers, timeout=args.timeout)


def cmd_models(args: argparse.Namespace) -> int:
    from digitlab.config import RECIPES
    from digitlab.models import MODELS

    print("models:")
    for name, spec in MODELS.items():
        print(f"  {name:<10} {spec.description}" + ("" if spec.keras_loop else "  [custom loop only]"))
    print("recipes:")
    for name, recipe in RECIPES.items():
        print(f"  {name:<10} {recipe.description}")
    return 0


_TRAIN_FLAGS = (
    "epochs", "batch_size", "lr", "seed", "out", "loop", "strategy", "clip_norm", "validation_size", "limit",
    "dropout", "weight_decay", "initializer", "schedule", "optimizer", "patience", "bn_momentum", "data_dir",
)  # fmt: skip


def _train_args(p: argparse.ArgumentParser) -> None:
    from digitlab.config import LOOPS, OPTIMIZERS, SCHEDULES, STRATEGIES, recipe_names
    from digitlab.models import model_names

    p.add_argument("--model", default=None, help=f"one of {', '.join(model_names())} (default: the recipe's, cnn)")
    p.add_argument("--recipe", default="default", help=f"hyper-parameter set: {', '.join(recipe_names())} (default)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: recipe; early stopping may end sooner)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: recipe, 128)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: recipe, 1e-3)")
    p.add_argument("--seed", type=int, help="seed for weights, shuffling and the split (default 0)")
    p.add_argument(
        "--out", help="run directory (default runs/<model>-<timestamp>; an unfinished identical run resumes)"
    )
    p.add_argument("--loop", choices=LOOPS, help="fit (Keras model.fit, default) or custom (GradientTape)")
    p.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy for the custom loop (default auto)")
    p.add_argument("--clip-norm", type=float, help="clip gradients to this global norm (default: off)")
    p.add_argument("--validation-size", type=int, help="training images held out for validation (default 5000)")
    p.add_argument("--limit", type=int, help="train on this many examples only, for smoke tests (default: all)")
    p.add_argument("--dropout", type=float, help="dropout rate (default: the model's)")
    p.add_argument("--weight-decay", type=float, help="L2 penalty on kernels (default 0)")
    p.add_argument("--initializer", help="kernel initializer, e.g. he_normal, glorot_uniform (default he_normal)")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (default: recipe)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (default: recipe, adam)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs, 0 = off (default: recipe)")
    p.add_argument("--bn-momentum", type=float, help="BatchNorm momentum (default: recipe, 0.99)")
    p.add_argument("--data-dir", help="where MNIST lives (default: $DIGITLAB_DATA or ~/.cache/digitlab)")


def build_parser() -> argparse.ArgumentParser:
    from digitlab import __version__

    parser = argparse.ArgumentParser(
        prog="digitlab", description="MNIST handwritten digits with TensorFlow/Keras: data to served page."
    )
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", help="download and verify MNIST into the data directory")
    _data_dir_arg(p)
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="folder with the four IDX files (raw or .gz) or Keras' mnist.npz; tried first",
    )
    p.add_argument("--verify", action="store_true", help="re-hash the stored files instead of trusting the stamp")
    p.add_argument("--force", action="store_true", help="fetch again even if verified data is present")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("info", help="per-class counts per split, pixel statistics and a sample grid PNG")
    _data_dir_arg(p)
    p.add_argument("--validation-size", type=int, default=5000, help="images held out of training (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified validation split (default 0)")
    p.add_argument(
        "--grid", type=Path, default=None, help="where to save the sample grid (default DATA_DIR/samples.png)"
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a model into a run directory (config, model.keras, history, metrics)")
    _train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metrics, calibration, plots and an HTML report for a run or model")
    p.add_argument("target", type=Path, metavar="RUN_DIR_OR_MODEL", help="a run directory or a .keras file")
    p.add_argument("--split", choices=("test", "validation"), default="test", help="data to evaluate (default test)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/report)")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict digits in image files or folders (any common format)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files and/or folders (recursive)")
    p.add_argument("--model", required=True, type=Path, help="a run directory or a .keras file")
    p.add_argument("--top-k", type=int, default=3, help="how many top classes to show (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--save-processed", type=Path, default=None, help="write the 28×28 each image became here")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="the draw-a-digit page and the REST API")
    p.add_argument("--model", required=True, type=Path, help="a run directory or a .keras file")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    p.add_argument("--max-body-bytes", type=int, default=5 * 1024 * 1024, help="request size limit (default 5 MiB)")
    p.add_argument("--max-pixels", type=int, default=16_000_000, help="decoded image size limit (default 16 MP)")
    p.add_argument("--feedback-dir", type=Path, default=None, help="where corrections go (default RUN/feedback)")
    p.add_argument("--cors-origin", action="append", default=[], help="allow this origin (repeatable; default none)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("compare", help="a side-by-side table of the main metrics of several runs")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (or .keras files)")
    p.add_argument("--out", type=Path, default=Path("runs/comparison"), help="saves OUT.md and OUT.json")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "launch",
        help="run a command as N local workers of one tf.distribute cluster (loopback ports)",
        description="Example: digitlab launch --workers 2 -- train --model cnn --loop custom",
    )
    p.add_argument("--workers", type=int, default=2, help="number of worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=None, help="stop all workers after this many seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the digitlab command each worker runs")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("models", help="list the models and the recipes")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DigitlabError as e:
        print(f"digitlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130

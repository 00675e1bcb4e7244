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
    p.add_argument(
        "--verify", action="store_true", help="re-hash the stored files instead of trusting the stamp"
    )
    p.add_argument("--force", action="store_true", help="fetch again even if verified data is present")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("info", help="per-class counts per split, pixel statistics and a sample grid PNG")
    _data_dir_arg(p)
    p.add_argument(
        "--validation-size", type=int, default=5000, help="images held out of training (default 5000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified validation split (default 0)")
    p.add_argument(
        "--grid", type=Path, default=None, help="where to save the sample grid (default DATA_DIR/samples.png)"
    )
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # keep TensorFlow's C++ start-up chatter out of the CLI
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DigitlabError as e:
        print(f"digitlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130

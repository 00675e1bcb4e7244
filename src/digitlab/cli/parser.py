"""The `digitlab` command line: every subcommand, flag, default and help line (argparse)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digitlab.cli.commands import (
    cmd_compare,
    cmd_ensemble,
    cmd_evaluate,
    cmd_explain,
    cmd_export,
    cmd_fetch,
    cmd_finetune,
    cmd_import,
    cmd_info,
    cmd_launch,
    cmd_models,
    cmd_predict,
    cmd_read,
    cmd_serve,
    cmd_train,
)
from digitlab.explain.options import BASELINES, METHODS


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where MNIST lives (default: $DIGITLAB_DATA or ~/.cache/digitlab)",
    )


def add_setting_flags(
    p: argparse.ArgumentParser, config_class: type, default_help: Callable[[dataclasses.Field], str] | None = None
) -> None:
    """One flag per field of a settings dataclass that has help text (`digitlab.settings.setting`).

    The flag's name is the field's, its type the field's annotation, its choices and help the field's metadata,
    and its default None ("not given": the dataclass or the recipe decides); `default_help` writes the help's
    default. Fields of a `group` are listed in that section of the help.

    Args:
        p: The subcommand's parser.
        config_class: The dataclass (`TrainConfig`, `FinetuneConfig`).
        default_help: The default's text for a field, e.g. "default 12; recipe fast 1" (default:
            `settings.default_text`, the field's own default).
    """
    from digitlab.settings import default_text, flag_name

    default_help = default_help or default_text

    groups: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        if not meta.get("help"):
            continue
        kind = str(f.type).split("|")[0].strip()
        options: dict[str, Any] = {"default": None, "help": f"{meta['help']} ({default_help(f)})".replace("%", "%%")}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = {"int": int, "float": float}.get(kind, str)
        if meta.get("choices"):
            options["choices"] = list(meta["choices"])
        if meta.get("metavar"):
            options["metavar"] = meta["metavar"]
        group = meta.get("group")
        if group and group not in groups:
            groups[group] = p.add_argument_group(group)
        (groups[group] if group else p).add_argument(flag_name(f.name), **options)


def _runtime_arg(p: argparse.ArgumentParser) -> None:
    from digitlab.inference.runtimes import RUNTIMES

    p.add_argument(
        "--runtime",
        default="auto",
        choices=RUNTIMES,
        help="what runs the model: auto (ONNX Runtime, else LiteRT, else Keras; exports on demand into "
        "RUN/export), keras, onnx or litert (default auto)",
    )


def _add_fetch(sub: Any) -> None:
    p = sub.add_parser("fetch", help="download and verify MNIST into the data directory")
    _data_dir_arg(p)
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="folder with the four IDX files (raw or gzip) or Keras' mnist.npz: the only source, and final (if it "
        "fails nothing is changed); with verified data in place it is checked against it",
    )
    p.add_argument("--verify", action="store_true", help="re-hash the stored files instead of trusting the stamp")
    p.add_argument("--force", action="store_true", help="fetch again even if verified data is present")
    p.set_defaults(func=cmd_fetch)


def _add_info(sub: Any) -> None:
    from digitlab.data.mnist import DEFAULT_VALIDATION_SIZE

    p = sub.add_parser("info", help="per-class counts per split, pixel statistics and a sample grid PNG")
    _data_dir_arg(p)
    p.add_argument(
        "--validation-size",
        type=int,
        default=DEFAULT_VALIDATION_SIZE,
        help=f"images held out of training (default {DEFAULT_VALIDATION_SIZE})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified validation split (default 0)")
    p.add_argument(
        "--grid", type=Path, default=None, help="where to save the sample grid (default DATA_DIR/samples.png)"
    )
    p.set_defaults(func=cmd_info)


def _add_train(sub: Any) -> None:
    from digitlab.models.registry import model_names
    from digitlab.training.config import TrainConfig, default_help
    from digitlab.training.recipes import recipe_names

    p = sub.add_parser("train", help="train a model into a run directory (config, model.keras, history, metrics)")
    p.add_argument("--model", default=None, help=f"one of {', '.join(model_names())} (default: the recipe's, cnn)")
    p.add_argument("--recipe", default="default", help=f"hyper-parameter set: {', '.join(recipe_names())} (default)")
    add_setting_flags(p, TrainConfig, default_help)
    _data_dir_arg(p)
    p.set_defaults(func=cmd_train, tensorflow=True)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="metrics, calibration, plots and an HTML report for a run or model")
    p.add_argument("target", type=Path, metavar="RUN_DIR_OR_MODEL", help="a run directory or a .keras file")
    p.add_argument("--split", choices=("test", "validation"), default="test", help="data to evaluate (default test)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/report)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="write the fitted temperature to the model's calibration.json even if it has one (predict and serve "
        "use it); without it, only a model with none gets one",
    )
    _data_dir_arg(p)
    p.set_defaults(func=cmd_evaluate, tensorflow=True)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="predict digits in image files or folders (any common format)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files and/or folders (recursive)")
    p.add_argument("--model", required=True, type=Path, help="a run directory or a .keras file")
    p.add_argument("--top-k", type=int, default=3, help="how many top classes to show (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--save-processed", type=Path, default=None, help="write the 28×28 each image became here")
    p.add_argument(
        "--workers", type=int, default=None, help="preprocessing processes (default: one per CPU; 1 = in-process)"
    )
    _runtime_arg(p)
    p.set_defaults(func=cmd_predict)


def _add_read(sub: Any) -> None:
    p = sub.add_parser(
        "read",
        help="read whole numbers: one line of handwritten digits per image (e.g. '42')",
        description="Segments the ink into digits (touching ones are cut where the model recognises both parts) "
        "and reads them left to right. One line of digits per image; no decimal points, signs or separators.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files and/or folders (recursive)")
    p.add_argument("--model", required=True, type=Path, help="a run directory or any model file")
    p.add_argument("--json", action="store_true", help="one JSON object per line: text, digits with boxes, confidence")
    p.add_argument("--save-processed", type=Path, default=None, help="write each digit's 28×28 here")
    _runtime_arg(p)
    p.set_defaults(func=cmd_read)


def _add_serve(sub: Any) -> None:
    from digitlab.serving.config import ServeConfig

    p = sub.add_parser("serve", help="the draw-a-digit page and the REST API")
    p.add_argument("--model", required=True, type=Path, help="a run directory or a .keras file")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    add_setting_flags(p, ServeConfig)
    p.add_argument("--cors-origin", action="append", default=[], help="allow this origin (repeatable; default none)")
    _runtime_arg(p)
    p.set_defaults(func=cmd_serve)


def _add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="how the model reaches its answer: layer maps and attributions per image")
    p.add_argument("paths", nargs="+", type=Path, metavar="IMAGE", help="image files and/or folders (recursive)")
    p.add_argument("--model", required=True, type=Path, help="a run directory or a .keras file")
    p.add_argument(
        "--method",
        default="all",
        choices=[*METHODS, "all"],
        help="attribution method (default all; layercam: LayerCAM, Jiang et al. 2021; gradcam: Grad-CAM, "
        "Selvaraju et al. 2017)",
    )
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the prediction)")
    p.add_argument("--contrast", type=int, default=None, help="explain target rather than this class (why 9, not 4?)")
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    p.add_argument("--baseline", default="blur", choices=BASELINES, help="Integrated Gradients baseline (default blur)")
    p.add_argument("--out", type=Path, default=Path("explanations"), help="folder for the PNG panels")
    p.add_argument("--json", action="store_true", help="one JSON object per image, with every map's 28×28 values")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_explain, tensorflow=True)


def _add_export(sub: Any) -> None:
    from digitlab.models.export import FORMATS

    p = sub.add_parser(
        "export",
        help="export a model as a TF Serving SavedModel, ONNX and/or LiteRT, each checked against Keras",
    )
    p.add_argument("target", type=Path, metavar="RUN", help="a run directory or a .keras file")
    p.add_argument(
        "--format",
        default="all",
        choices=[*FORMATS, "all", "web"],
        help="savedmodel, onnx, litert or all (default all); web: a static page running the model in the browser",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/export, web: RUN/export/web)")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_export, tensorflow=True)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="a side-by-side table of the main metrics of several runs")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (or .keras files)")
    p.add_argument("--out", type=Path, default=Path("runs/comparison"), help="saves OUT.md and OUT.json")
    p.set_defaults(func=cmd_compare, tensorflow=True)


def _add_ensemble(sub: Any) -> None:
    p = sub.add_parser(
        "ensemble",
        help="average finished runs' probabilities into one ordinary run directory (one model.keras)",
        description="Example: digitlab ensemble runs/best/seed-{0,1,2,3,4} --out runs/best/ensemble-5",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished runs sharing one validation split")
    p.add_argument("--out", type=Path, required=True, help="the new run directory")
    p.add_argument(
        "--tta",
        choices=("off", "auto", "on"),
        default="off",
        help="test-time augmentation, ±1 px shifts: off (default), auto (kept only if validation errors drop), on",
    )
    _data_dir_arg(p)
    p.set_defaults(func=cmd_ensemble, tensorflow=True)


def _add_launch(sub: Any) -> None:
    p = sub.add_parser(
        "launch",
        help="run a command as N local workers of one tf.distribute cluster (loopback ports)",
        description="Example: digitlab launch --workers 2 -- train --model cnn --loop custom",
    )
    p.add_argument("--workers", type=int, default=2, help="number of worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=None, help="stop all workers after this many seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the digitlab command each worker runs")
    p.set_defaults(func=cmd_launch)


def _add_finetune(sub: Any) -> None:
    from digitlab.training.finetune import FinetuneConfig

    p = sub.add_parser(
        "finetune",
        help="fine-tune a model on the corrections collected by the draw page, into a new run directory",
        description="Preprocesses each stored correction exactly as serving does, holds a seeded share out for a "
        "before/after comparison, trains on the rest mixed with replayed MNIST training images at a low learning "
        "rate, and writes a new run (model.keras, metrics.json, summary.txt, history.csv, calibration.json).",
    )
    p.add_argument("--model", required=True, type=Path, help="the served model: a run directory or a .keras file")
    p.add_argument("--feedback", type=Path, default=None, help="the feedback folder (default MODEL_RUN/feedback)")
    p.add_argument("--out", type=Path, default=None, help="new run directory (default runs/<run>-finetune-<time>)")
    add_setting_flags(p, FinetuneConfig)
    _data_dir_arg(p)
    p.set_defaults(func=cmd_finetune, tensorflow=True)


def _add_import(sub: Any) -> None:
    from digitlab.models.contract import LAYOUTS, OUTPUTS, SCALE_WORDS, SCALES

    p = sub.add_parser(
        "import",
        help="import any MNIST classifier (.keras, .h5, .onnx, SavedModel) as a run the other commands take",
        description="Detects the model's input layout, scale, polarity and output kind on 1,000 MNIST training "
        "digits (or takes them from the flags) and writes a run directory with contract.json. Any command that "
        "takes --model RUN also takes a model file directly: it is imported on the fly into a cache.",
    )
    p.add_argument("source", type=Path, nargs="?", metavar="MODEL", help="a .keras/.h5/.onnx file or SavedModel folder")
    p.add_argument("--out", type=Path, default=None, help="the new run directory (default runs/<name>-import)")
    p.add_argument("--input-layout", choices=list(LAYOUTS), help="default: the input shape")
    p.add_argument(
        "--input-scale",
        choices=SCALES,
        help="pixels in " + ", ".join(f"{k}: {v}" for k, v in SCALE_WORDS.items()) + " (default: detected)",
    )
    p.add_argument("--outputs", choices=OUTPUTS, help="what it answers (default: detected)")
    p.add_argument(
        "--signature",
        metavar="NAME",
        help="the SavedModel signature to call (default: serving_default if it classifies digits, else the only "
        "one that does; an unclear choice lists them)",
    )
    p.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the model wants black ink on white (default: detected)",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow Python code (Lambda layers) in a Keras file; only if you trust it",
    )
    p.add_argument("--clear-cache", action="store_true", help="empty the cache of models imported on the fly")
    _data_dir_arg(p)
    p.set_defaults(func=cmd_import, tensorflow=True)


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list the models and the recipes")
    p.set_defaults(func=cmd_models)


def build_parser() -> argparse.ArgumentParser:
    """The `digitlab` parser: every subcommand with its flags; each sets `func` (and `tensorflow` if it needs it)."""
    from digitlab import __version__

    parser = argparse.ArgumentParser(
        prog="digitlab", description="MNIST handwritten digits with TensorFlow/Keras: data to served page."
    )
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show an error's full chained traceback, and TensorFlow's own start-up and C++ log lines (those "
        "also with DIGITLAB_LOG=debug)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_fetch,
        _add_info,
        _add_train,
        _add_evaluate,
        _add_predict,
        _add_read,
        _add_serve,
        _add_explain,
        _add_export,
        _add_compare,
        _add_ensemble,
        _add_launch,
        _add_finetune,
        _add_import,
        _add_models,
    ):
        add(sub)
    return parser

"""One function per subcommand: read the parsed flags, call one importable function, print what a person reads.

Each imports its plane lazily, so `digitlab fetch` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_fetch(args: argparse.Namespace) -> int:
    """`digitlab fetch`: make sure the data directory holds verified MNIST (fetching it if needed); 0."""
    from digitlab.data.fetch import fetch_mnist

    result = fetch_mnist(args.data_dir, source_dir=args.source, force=args.force, verify=args.verify)
    if result.source == "cache":
        checked = f"; {result.checked}" if result.checked else ""
        print(f"MNIST already verified in {result.data_dir}" + (" (full re-hash)" if args.verify else "") + checked)
    else:
        print(f"MNIST verified in {result.data_dir} (source: {result.source})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """`digitlab info`: print per-class counts and pixel statistics per split and save a sample grid PNG; 0."""
    from digitlab.data.fetch import default_data_dir
    from digitlab.data.mnist import describe, format_summary, load_splits, save_sample_grid

    splits = load_splits(args.data_dir, validation_size=args.validation_size, seed=args.seed)
    print(format_summary(describe(splits)))
    grid = args.grid or Path(args.data_dir or default_data_dir()) / "samples.png"
    save_sample_grid(splits.x_train, splits.y_train, grid)
    print(f"sample grid: {grid}")
    return 0


def _config_values(args: argparse.Namespace, config_class: type, skip: tuple[str, ...] = ()) -> dict:
    """The flags given (not None) that are fields of `config_class` (a dataclass), paths as strings (JSON-ready).

    The flags' names are the fields' names, so the list of settings lives in the dataclass alone; a flag not
    given leaves the dataclass's (or the recipe's) default.
    """
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)} - set(skip)
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}


def cmd_train(args: argparse.Namespace) -> int:
    """`digitlab train`: resolve and validate the settings, then train (or reuse a finished identical run)."""
    from digitlab.training.config import TrainConfig, resolve_config

    flags = _config_values(args, TrainConfig, skip=("model", "recipe"))
    # op determinism on, as the CLI always had it: same command, same weights
    config = resolve_config(args.model, args.recipe, deterministic=True, **flags)  # validated before TensorFlow
    from digitlab.training.train import train_and_evaluate

    train_and_evaluate(config)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`digitlab evaluate`: evaluate a run or model on a split; print its metrics and the report's path; 0."""
    from digitlab.evaluation.evaluate import evaluate_model, format_metrics_summary

    result = evaluate_model(
        args.target, split=args.split, out=args.out, data_dir=args.data_dir, calibrate=args.calibrate or None
    )
    print(format_metrics_summary(result.metrics))
    print(result.calibration)
    print(f"report: {result.out_dir / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`digitlab compare`: print a table of several runs' main metrics and save it as Markdown and JSON; 0."""
    from digitlab.evaluation.compare import compare_runs

    _, table = compare_runs(args.runs, out=args.out)
    print(table)
    print(f"saved: {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    """`digitlab ensemble`: average finished runs into one run directory."""
    from digitlab.training.ensemble_run import make_ensemble

    metrics = make_ensemble(args.runs, args.out, tta=args.tta, data_dir=args.data_dir)
    print(f"run in {args.out} (test accuracy {metrics['test']['accuracy']:.4f})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`digitlab predict`: one line per image file; 1 if any file failed, else 0 (see `run_predict`)."""
    from digitlab.inference.predict import run_predict

    return run_predict(
        args.paths, args.model, args.top_k, args.json, args.save_processed, workers=args.workers, runtime=args.runtime
    )


def cmd_read(args: argparse.Namespace) -> int:
    """`digitlab read`: read the line of digits in each image; 1 if any image failed, else 0."""
    from digitlab.inference.read_command import run_read

    return run_read(args.paths, args.model, args.json, args.save_processed, runtime=args.runtime)


def cmd_serve(args: argparse.Namespace) -> int:
    """`digitlab serve`: serve the draw-a-digit page and the JSON API until interrupted; 0."""
    from digitlab.serving.config import ServeConfig
    from digitlab.serving.server import serve

    flags = _config_values(args, ServeConfig, skip=("model", "runtime"))
    config = ServeConfig(str(args.model), cors_origins=tuple(args.cors_origin), runtime=args.runtime, **flags)
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`digitlab export`: write a run's exported copies, each checked against the model, or the static web app; 0."""
    from digitlab.inference.export_command import export_run

    if args.format == "web":  # a static folder, not a model format: `--format all` leaves it out
        from digitlab.inference.web_export import export_web

        export_web(args.target, args.out, data_dir=args.data_dir)
        return 0

    results = export_run(args.target, args.format, args.out, data_dir=args.data_dir)
    print(f"{len(results)} export(s) written and checked; metadata beside each file")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """`digitlab explain`: layer maps and attributions per image; 1 if any image failed, else 0."""
    from digitlab.explain.explain_command import run_explain

    return run_explain(
        args.paths,
        args.model,
        args.method,
        args.target,
        args.contrast,
        args.out,
        args.steps,
        args.baseline,
        data_dir=args.data_dir,
        as_json=args.json,
    )


def cmd_launch(args: argparse.Namespace) -> int:
    """`digitlab launch`: run a command as N local workers of one cluster."""
    from digitlab.training.launch import launch

    return launch(args.command, workers=args.workers, timeout=args.timeout)


def cmd_finetune(args: argparse.Namespace) -> int:
    """`digitlab finetune`: fine-tune a model on its draw-page corrections into a new run."""
    from digitlab.training.finetune import FinetuneConfig, finetune, format_report

    config = FinetuneConfig(**_config_values(args, FinetuneConfig), deterministic=True)
    config.validate()
    result = finetune(config)
    print(format_report(result.metrics))
    print(f"run: {result.run_dir}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """`digitlab import`: import a foreign model into a run directory, or empty the import cache."""
    from digitlab.models.importing import ImportOptions, clear_cache, import_model

    if args.clear_cache:
        print(f"import cache emptied ({clear_cache()} cached imports removed)")
        if args.source is None:
            return 0
    if args.source is None:
        from digitlab.errors import ConfigError

        raise ConfigError("name a model file or folder to import (or pass --clear-cache)")
    options = ImportOptions(
        layout=args.input_layout,
        scale=args.input_scale,
        outputs=args.outputs,
        invert=args.invert,
        trust_code=args.trust_code,
        signature=args.signature,
    )
    run = import_model(args.source, args.out, options, data_dir=args.data_dir)
    print((run / "summary.txt").read_text(), end="")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """`digitlab models`: list the models and the recipes."""
    from digitlab.models.registry import MODELS
    from digitlab.training.recipes import RECIPES

    print("models:")
    for name, spec in MODELS.items():
        print(f"  {name:<10} {spec.description}" + ("" if spec.keras_loop else "  [custom loop only]"))
    print("recipes:")
    for name, recipe in RECIPES.items():
        print(f"  {name:<10} {recipe.description}")
    return 0

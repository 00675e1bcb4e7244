"""One function per subcommand: read the parsed flags, call one importable function, print what a person reads.

Each imports its plane lazily, so `digitlab fetch` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_fetch(args: argparse.Namespace) -> int:
    from digitlab.data.fetch import fetch_mnist

    result = fetch_mnist(args.data_dir, source_dir=args.source, force=args.force, verify=args.verify)
    if result.source == "cache":
        checked = f"; {result.checked}" if result.checked else ""
        print(f"MNIST already verified in {result.data_dir}" + (" (full re-hash)" if args.verify else "") + checked)
    else:
        print(f"MNIST verified in {result.data_dir} (source: {result.source})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from digitlab.data.fetch import default_data_dir
    from digitlab.data.mnist import describe, format_summary, load_splits, save_sample_grid

    splits = load_splits(args.data_dir, validation_size=args.validation_size, seed=args.seed)
    print(format_summary(describe(splits)))
    grid = args.grid or Path(args.data_dir or default_data_dir()) / "samples.png"
    save_sample_grid(splits.x_train, splits.y_train, grid)
    print(f"sample grid: {grid}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from digitlab.training.config import resolve_config

    flags = {k: getattr(args, k) for k in _TRAIN_FLAGS}
    config = resolve_config(args.model, args.recipe, **flags)  # validate before importing TensorFlow
    from digitlab.training.train import train_and_evaluate

    train_and_evaluate(config)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from digitlab.evaluation.evaluate import evaluate_model, format_summary

    result = evaluate_model(args.target, split=args.split, out=args.out, data_dir=args.data_dir)
    print(format_summary(result.metrics))
    print(f"report: {result.out_dir / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from digitlab.evaluation.compare import compare_runs

    _, table = compare_runs(args.runs, out=args.out)
    print(table)
    print(f"saved: {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from digitlab.training.ensemble import make_ensemble

    metrics = make_ensemble(args.runs, args.out, tta=args.tta, data_dir=args.data_dir)
    print(f"run in {args.out} (test accuracy {metrics['test']['accuracy']:.4f})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from digitlab.inference.predict import run_predict

    return run_predict(
        args.paths, args.model, args.top_k, args.json, args.save_processed, workers=args.workers, runtime=args.runtime
    )


def cmd_read(args: argparse.Namespace) -> int:
    from digitlab.inference.read_command import run_read

    return run_read(args.paths, args.model, args.json, args.save_processed, runtime=args.runtime)


def cmd_serve(args: argparse.Namespace) -> int:
    from digitlab.serving.app import ServeConfig
    from digitlab.serving.server import serve

    config = ServeConfig(
        model=str(args.model),
        max_body_bytes=args.max_body_bytes,
        body_seconds=args.body_timeout,
        max_pixels=args.max_pixels,
        feedback_dir=str(args.feedback_dir) if args.feedback_dir else None,
        cors_origins=tuple(args.cors_origin),
        runtime=args.runtime,
    )
    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from digitlab.inference.deploy import export_run

    if args.format == "web":  # a static folder, not a model format: `--format all` leaves it out
        from digitlab.inference.web_export import export_web

        export_web(args.target, args.out, data_dir=args.data_dir)
        return 0

    results = export_run(args.target, args.format, args.out, data_dir=args.data_dir)
    print(f"{len(results)} export(s) written and checked; metadata beside each file")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from digitlab.explain.command import run_explain

    return run_explain(
        args.paths, args.model, args.method, args.target, args.contrast, args.out, args.steps, args.baseline,
        data_dir=args.data_dir,
    )  # fmt: skip


def cmd_launch(args: argparse.Namespace) -> int:
    from digitlab.training.launch import launch

    return launch(args.command, workers=args.workers, timeout=args.timeout)


def cmd_experiment_transfer(args: argparse.Namespace) -> int:
    from digitlab.training.experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(
        n_per_class=tuple(args.n), seeds=args.seeds, epochs=args.epochs, min_steps=args.min_steps,
        batch_size=args.batch_size, pretrain_epochs=args.pretrain_epochs, pretrain_limit=args.pretrain_limit,
        out=str(args.out),
        data_dir=str(args.data_dir) if args.data_dir else None,
    )  # fmt: skip
    config.validate()  # before importing TensorFlow
    result = run_experiment(config)
    print(f"test accuracy (%) on digits 5–9, mean ± std over {config.seeds} seeds; {result.results['budget']}")
    print(result.table)
    gain = ", ".join(f"{m} {v:+.2f}" for m, v in result.results["transfer_gain_at_smallest_n_points"].items())
    print(f"transfer vs scratch at N={config.n_per_class[0]}: {gain} points")
    files = ", ".join(str(result.out_dir / name) for name in ("results.json", "table.md", "accuracy_vs_n.png"))
    print(f"saved: {files}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from digitlab.training.finetune import FinetuneConfig, finetune, format_report

    config = FinetuneConfig(
        model=str(args.model), feedback=str(args.feedback) if args.feedback else None,
        out=str(args.out) if args.out else None, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        repeat=args.repeat, replay_ratio=args.replay_ratio, holdout=args.holdout, min_feedback=args.min_feedback,
        seed=args.seed, data_dir=str(args.data_dir) if args.data_dir else None,
    )  # fmt: skip
    config.validate()
    result = finetune(config)
    print(format_report(result.metrics))
    print(f"run: {result.run_dir}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from digitlab.models.importing import ImportOptions, clear_cache, import_model

    if args.clear_cache:
        print(f"import cache emptied ({clear_cache()} cached imports removed)")
        if args.source is None:
            return 0
    if args.source is None:
        from digitlab.errors import ConfigError

        raise ConfigError("name a model file or folder to import (or pass --clear-cache)")
    options = ImportOptions(
        layout=args.input_layout, scale=args.input_scale, outputs=args.outputs, invert=args.invert,
        trust_code=args.trust_code,
    )  # fmt: skip
    run = import_model(args.source, args.out, options, data_dir=args.data_dir)
    print((run / "summary.txt").read_text(), end="")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from digitlab.models.registry import MODELS
    from digitlab.training.config import RECIPES

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
    "base", "weights", "input_size", "fine_tune_layers", "fine_tune_epochs", "fine_tune_lr",
    "beta_1", "beta_2", "augment", "ema", "keep", "full_train", "split_seed", "standardize", "order",
)  # fmt: skip

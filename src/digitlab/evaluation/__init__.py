"""Evaluation: metrics, calibration, the HTML report and `compare`, computed once on held-out data.

Accuracy, confusion, per-class P/R/F1, calibration (ECE, Brier, reliability). Uses `models`, `data` and the
core (never `training`).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "compare": ["compare_runs"],
        "evaluate": ["Evaluation", "evaluate_model", "format_metrics_summary"],
        "metrics": ["calibration_metrics", "classification_metrics", "expected_calibration_error"],
        "report": ["write_report"],
    },
)

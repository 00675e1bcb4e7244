"""The tf.distribute strategy, chosen by the environment as in nanoGPT (`RANK` there, `TF_CONFIG` here).

`--strategy auto`: a `TF_CONFIG` describing a cluster → MultiWorkerMirroredStrategy, several GPUs →
MirroredStrategy, else the default strategy. Only the chief (worker 0) writes the run.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from digitlab.errors import ConfigError


def cluster_size() -> int:
    """Number of tasks described by TF_CONFIG (0 when unset)."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except ValueError as e:
        raise ConfigError("TF_CONFIG is not valid JSON") from e
    return sum(len(tasks) for tasks in cluster.values())


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Pick the strategy; MultiWorkerMirroredStrategy must be created before any other TF op runs."""
    if name == "auto":
        if cluster_size() > 1:
            name = "multi-worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi-worker":
        if cluster_size() < 1:
            raise ConfigError("--strategy multi-worker needs TF_CONFIG describing the cluster (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: tf.distribute.Strategy | None) -> str:
    """The strategy's class name for config.json ("default" for none)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "default"


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Worker 0 (or the explicit chief) writes outputs; with no cluster everyone is the chief."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)

"""Candidates as pipeline runs: "ensure candidate at N, return its per-sample features and metrics".

The only bridge between the tuner and the run layer: it composes a candidate's pipeline config and
runs the sample and features stages (growing a run from N to 2N reuses the first N samples and
their per-shard features). It holds no search logic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose

from ssg_eval.cli import compose_context, config_names
from ssg_eval.errors import ConfigError, UnreadableFileError
from ssg_eval.runs.layout import FEATURES_NPZ, MANIFEST_JSON, run_dir
from ssg_eval.runs.records import read_record
from ssg_eval.tune.halving import Measurement
from ssg_eval.tune.space import Candidate
from ssg_eval.utils.logging import get_logger
from ssg_eval.validation import validate

__all__ = ["PipelineEvaluator", "RunFeatures"]

log = get_logger(__name__)
FEATURE_KEYS = ("pool", "spatial", "logits")


def _num_samples(directory: Path) -> int:
    """Samples a finished run holds (0 without a manifest, or with a damaged one: resampled)."""
    try:
        manifest = read_record(directory / MANIFEST_JSON, "manifest", need=("samples.num_samples",))
    except (FileNotFoundError, UnreadableFileError):
        return 0
    return int(manifest["samples"]["num_samples"])


@dataclass
class RunFeatures:
    """Per-sample features of one candidate at N, in sample-index order, and the cost paid now."""

    features: dict[str, np.ndarray]
    labels: np.ndarray
    run_dir: Path
    new_samples: int
    device_s: float


class PipelineEvaluator:
    """`ensure(candidate, n)` on the real stages, paired by construction.

    Every candidate composes `experiment=<tune.experiment> model=<tune.target>` with the
    baseline's or the SSG guidance group plus its own overrides, and keeps the baseline's
    `sampler.seed`, so sample i has the same label and per-sample seed in every run (paired).
    A candidate is one run, `tune_<name>_<candidate key>`, whatever N: N is not part of a run's
    identity (docs/RUNS.md, growing a run), so asking for a larger N makes the sample stage
    generate the new chunks only, and the features stage extracts the new shards only
    (per-shard feature cache). A run that already holds more than N samples answers with its
    first N rows: features are a pure function of each shard's bytes.

    Args:
        tune_cfg: the composed tune config.
        tune_dir: `<results>/tune/<name>`.
    """

    def __init__(self, tune_cfg: Any, tune_dir: Path):
        self.tune_cfg, self.tune_dir = tune_cfg, Path(tune_dir)
        models = config_names("model")
        if str(tune_cfg.target) not in models:
            raise ConfigError(f"tune.target={tune_cfg.target!r} is not a conf/model name; "
                              f"valid: {models} (make tune MODEL=var_d16)")  # fmt: skip
        results = Path(str(tune_cfg.results)).expanduser().resolve()
        self.common = [f"experiment={tune_cfg.experiment}", f"model={tune_cfg.target}",
                       f"paths.results={results}", *map(str, tune_cfg.overrides)]  # fmt: skip
        self._inception = None
        self._reference = None
        self._composed: dict[str, Any] = {}

    # ------------------------------------------------------------------ configs
    def run_name(self, cand: Candidate) -> str:
        """The candidate's run name (the same at every N)."""
        return f"tune_{self.tune_cfg.name}_{cand.key}"

    def overrides(self, cand: Candidate, n: int) -> list[str]:
        """Pipeline overrides of `cand` at `n` (also what a torchrun sample stage receives)."""
        group = self.tune_cfg.ssg_guidance if cand.ssg else self.tune_cfg.baseline_guidance
        return [*self.common, f"guidance={group}", *cand.overrides, f"sampler.num_samples={n}",
                f"run_name={self.run_name(cand)}"]  # fmt: skip

    def compose(self, cand: Candidate, n: int) -> Any:
        """The validated pipeline config of `cand` at `n`.

        Hydra composes each candidate once; other N are copies with `sampler.num_samples` set,
        exactly what the override would give.
        """
        if cand.key not in self._composed:
            with compose_context():
                self._composed[cand.key] = compose(config_name="config",
                                                   overrides=self.overrides(cand, n))  # fmt: skip
        cfg = self._composed[cand.key].copy()
        cfg.sampler.num_samples = int(n)
        validate(cfg)
        return cfg

    # ------------------------------------------------------------------ runs
    def inception(self, cfg: Any):
        """The Inception network of `metrics.inception_weights` (built once, for the reference)."""
        if self._inception is None:
            from ssg_eval.features.inception import build_inception
            from ssg_eval.utils.dist import resolve_device

            device = resolve_device(cfg.metrics.feature_device)
            self._inception = build_inception(cfg.metrics.inception_weights, device)
        return self._inception

    def _features(self, cfg: Any) -> dict[str, np.ndarray]:
        from ssg_eval.stages.features import run_features

        run_features(cfg)
        with np.load(run_dir(cfg) / FEATURES_NPZ) as data:
            return {key: data[key] for key in (*FEATURE_KEYS, "labels")}

    def ensure(self, cand: Candidate, n: int) -> RunFeatures:
        """Sample `cand` up to `n` (reusing what exists) and return its first `n` features."""
        from ssg_eval.stages.pipeline import ensure_samples
        from ssg_eval.stages.preflight import check_inputs

        cfg = self.compose(cand, n)
        directory = run_dir(cfg)
        have = _num_samples(directory)
        new_samples, device_s = 0, 0.0
        if have < n:
            check_inputs([cfg])
            chunk = int(cfg.sampler.chunk_size)
            start = time.perf_counter()
            ensure_samples(cfg, self.overrides(cand, n))
            processes = int(cfg.launch.nproc_per_node) * int(cfg.launch.nnodes)
            device_s += (time.perf_counter() - start) * processes
            new_samples = n - (have // chunk) * chunk  # a partial last chunk is regenerated
        else:
            cfg = self.compose(cand, have)  # the run's own N: its features, first n rows used
        start = time.perf_counter()
        feats = self._features(cfg)
        device_s += time.perf_counter() - start
        labels = feats.pop("labels")[:n]
        feats = {key: value[:n] for key, value in feats.items()}
        if len(labels) != n:
            raise RuntimeError(f"{directory}: features hold {len(labels)} samples, expected {n}")
        return RunFeatures(feats, labels, directory, new_samples, device_s)

    # ------------------------------------------------------------------ metrics
    def reference(self, cfg: Any):
        """The checked reference batch and its features (loaded once)."""
        if self._reference is None:
            from ssg_eval.metrics.reference import reference_features
            from ssg_eval.runs.layout import results_dir
            from ssg_eval.stages.metrics import load_checked_reference
            from ssg_eval.utils.dist import resolve_device

            reference = load_checked_reference(cfg)
            feats = reference_features(
                reference, self.inception(cfg), cache_dir=results_dir(cfg) / "cache",
                batch_size=int(cfg.metrics.feature_batch_size),
                device=resolve_device(cfg.metrics.feature_device), progress=False,
            )  # fmt: skip
            self._reference = (reference, feats)
        return self._reference

    def metrics_of(self, cfg: Any, run: RunFeatures) -> dict[str, float]:
        """ADM metrics of a run's features (the metrics stage's `compute_metrics`)."""
        from ssg_eval.metrics.compute import compute_metrics
        from ssg_eval.metrics.keys import ALL_METRICS

        reference, ref_feats = self.reference(cfg)
        m = cfg.metrics
        # The other metrics (fwd, fd_dinov2, kid, ...) need the run's images, other weights or
        # their own stage code; the search ranks by FID/IS, so it measures the ADM five only.
        return compute_metrics(
            run.features, reference, ref_feats, split_size=int(m.is_split_size), k=int(m.pr_k),
            block_size=int(m.pr_block_size), distance_dtype=str(m.pr_distance_dtype),
            fid_method=str(m.fid_method), metrics=[k for k in m.metrics if k in ALL_METRICS],
        )  # fmt: skip

    def measure(self, cand: Candidate, n: int) -> Measurement:
        """The halving engine's `measure`: ensure the run, then its metrics and cost."""
        run = self.ensure(cand, n)
        metrics = self.metrics_of(self.compose(cand, n), run)
        return Measurement(metrics, run.new_samples, run.device_s)

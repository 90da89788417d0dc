"""Candidates as pipeline runs: "ensure candidate at N, return its per-sample features and metrics".

The only bridge between the tuner and the run layer: it composes a candidate's pipeline config,
runs the sample stage, and extracts Inception features per shard (cached, so growing a candidate
from N to 2N reuses the first N samples and their features). It holds no search logic.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ssg_eval.config import ConfigError, validate
from ssg_eval.stage import CONF_DIR, run_dir
from ssg_eval.tune.halving import Measurement
from ssg_eval.tune.space import Candidate
from ssg_eval.utils.io import atomic_write_npz, sha256_of_file
from ssg_eval.utils.logging import get_logger

__all__ = ["PipelineEvaluator", "RunFeatures", "hydra_context"]

log = get_logger(__name__)
FEATURE_KEYS = ("pool", "spatial", "logits")


@contextmanager
def hydra_context():
    """Compose from the packaged conf/ (reuses a running Hydra app's initialisation)."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        yield


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

    Every candidate composes `experiment=<baseline>` plus its own overrides and keeps the
    baseline's `sampler.seed`, so sample i has the same label and per-sample seed in every run
    (paired). Run names are `tune_<name>_<candidate key>_n<N>` while the run identity includes
    `sampler.num_samples`; growing a candidate links the smaller run's complete shards into the
    new run dir, where the sample stage's resume check accepts them (same indices, labels and
    per-sample seeds), so only the new indices are generated. Features are cached per shard
    under `<tune dir>/features/<key>/`, keyed by the shard's and the Inception weights' sha256.

    Args:
        tune_cfg: the composed tune config.
        tune_dir: `<results>/tune/<name>`.
    """

    def __init__(self, tune_cfg: Any, tune_dir: Path):
        self.tune_cfg, self.tune_dir = tune_cfg, Path(tune_dir)
        model = str(tune_cfg.target)
        if model not in tune_cfg.baselines:
            raise ConfigError(
                f"tune.target={model!r} has no baseline experiment; valid: "
                f"{sorted(tune_cfg.baselines)} (or add model: experiment under baselines)"
            )
        results = Path(str(tune_cfg.results)).expanduser().resolve()
        self.common = [f"experiment={tune_cfg.baselines[model]}", f"paths.results={results}",
                       *map(str, tune_cfg.overrides)]  # fmt: skip
        self._inception = None
        self._reference = None
        self._composed: dict[str, Any] = {}

    # ------------------------------------------------------------------ configs
    def run_name(self, cand: Candidate, n: int) -> str:
        """The candidate's run name at N."""
        return f"tune_{self.tune_cfg.name}_{cand.key}_n{n}"

    def overrides(self, cand: Candidate, n: int) -> list[str]:
        """Pipeline overrides of `cand` at `n` (also what a torchrun sample stage receives)."""
        return [*self.common, *cand.overrides, f"sampler.num_samples={n}",
                f"run_name={self.run_name(cand, n)}"]  # fmt: skip

    def compose(self, cand: Candidate, n: int) -> Any:
        """The validated pipeline config of `cand` at `n`.

        Hydra composes each candidate once; other N are copies with `sampler.num_samples` and
        `run_name` set, exactly what the two overrides would give.
        """
        if cand.key not in self._composed:
            with hydra_context():
                self._composed[cand.key] = compose(config_name="pipeline",
                                                   overrides=self.overrides(cand, n))  # fmt: skip
        cfg = self._composed[cand.key].copy()
        cfg.sampler.num_samples = int(n)
        cfg.run_name = self.run_name(cand, n)
        validate(cfg)
        return cfg

    # ------------------------------------------------------------------ runs
    def _seed_from_smaller(self, cand: Candidate, n: int, directory: Path, chunk: int) -> int:
        """Hard-link complete shards of the largest smaller run of `cand`; returns their samples."""
        prefix = f"tune_{self.tune_cfg.name}_{cand.key}_n"
        smaller = []
        for other in directory.parent.glob(f"{prefix}*"):
            size = other.name.removeprefix(prefix)
            if size.isdigit() and int(size) < n and (other / "manifest.json").is_file():
                smaller.append((int(size), other))
        if not smaller or (directory / "manifest.json").is_file():
            return 0
        size, source = max(smaller)
        linked = 0
        (directory / "shards").mkdir(parents=True, exist_ok=True)
        for c in range(size // chunk):
            src = source / "shards" / f"chunk_{c:05d}.npz"
            dst = directory / "shards" / src.name
            if src.is_file() and not dst.exists():
                try:
                    os.link(src, dst)
                except OSError:  # another file system: copy
                    dst.write_bytes(src.read_bytes())
            linked += chunk if dst.is_file() else 0
        log.info("%s: reusing %d samples of %s", directory.name, linked, source.name)
        return linked

    def inception(self, cfg: Any):
        """The Inception network of `metrics.inception_weights` (built once)."""
        if self._inception is None:
            from ssg_eval.features.inception import build_inception
            from ssg_eval.utils.dist import resolve_device

            device = resolve_device(cfg.metrics.feature_device)
            self._inception = build_inception(cfg.metrics.inception_weights, device)
        return self._inception

    def _features(self, cfg: Any, cand: Candidate, directory: Path):
        from ssg_eval.features.extract import extract_features
        from ssg_eval.utils.dist import resolve_device

        device = resolve_device(cfg.metrics.feature_device)
        inception = self.inception(cfg)
        weights_sha = str(inception.weights_sha256)
        cache_dir = self.tune_dir / "features" / cand.key
        parts, spent = [], 0.0
        for shard in sorted((directory / "shards").glob("chunk_*.npz")):
            shard_sha = sha256_of_file(shard)
            cached = cache_dir / shard.name
            if cached.is_file():
                with np.load(cached) as data:
                    if str(data["shard_sha256"]) == shard_sha and str(
                        data["inception_sha256"]
                    ) == str(weights_sha):
                        parts.append({k: data[k] for k in (*FEATURE_KEYS, "labels", "indices")})
                        continue
            start = time.perf_counter()
            with np.load(shard) as data:
                images, labels, indices = data["images"], data["labels"], data["indices"]
            feats = extract_features([images], inception, progress=False, device=device,
                                     batch_size=int(cfg.metrics.feature_batch_size))  # fmt: skip
            spent += time.perf_counter() - start
            meta = {"shard_sha256": np.array(shard_sha), "inception_sha256": np.array(weights_sha)}
            atomic_write_npz(cached, labels=labels, indices=indices, **meta, **feats)
            parts.append({**feats, "labels": labels, "indices": indices})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.argsort(merged["indices"], kind="stable")
        return {k: v[order] for k, v in merged.items()}, spent

    def ensure(self, cand: Candidate, n: int) -> RunFeatures:
        """Sample `cand` at `n` (reusing what exists) and return its per-sample features."""
        from ssg_eval.pipeline import sample_stage, sampling_done
        from ssg_eval.preflight import check_inputs

        cfg = self.compose(cand, n)
        directory = run_dir(cfg)
        new_samples, device_s = 0, 0.0
        if not sampling_done(cfg):
            check_inputs([cfg])
            reused = self._seed_from_smaller(cand, n, directory, int(cfg.sampler.chunk_size))
            start = time.perf_counter()
            sample_stage(cfg, self.overrides(cand, n))
            device_s += (time.perf_counter() - start) * int(cfg.launch.nproc_per_node)
            new_samples = n - reused
        feats, feature_s = self._features(cfg, cand, directory)
        if len(feats["indices"]) != n or not np.array_equal(feats["indices"], np.arange(n)):
            raise RuntimeError(f"{directory}: features do not cover indices 0..{n - 1} once")
        labels = feats.pop("labels")
        feats.pop("indices")
        return RunFeatures(feats, labels, directory, new_samples, device_s + feature_s)

    # ------------------------------------------------------------------ metrics
    def reference(self, cfg: Any):
        """The checked reference batch and its features (loaded once)."""
        if self._reference is None:
            from ssg_eval.metrics.reference import reference_features
            from ssg_eval.metrics_stage import load_checked_reference
            from ssg_eval.stage import results_dir
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

        reference, ref_feats = self.reference(cfg)
        m = cfg.metrics
        return compute_metrics(
            run.features, reference, ref_feats, split_size=int(m.is_split_size), k=int(m.pr_k),
            block_size=int(m.pr_block_size), distance_dtype=str(m.pr_distance_dtype),
            fid_method=str(m.fid_method), metrics=list(m.metrics),
        )  # fmt: skip

    def measure(self, cand: Candidate, n: int) -> Measurement:
        """The halving engine's `measure`: ensure the run, then its metrics and cost."""
        run = self.ensure(cand, n)
        metrics = self.metrics_of(self.compose(cand, n), run)
        return Measurement(metrics, run.new_samples, run.device_s)

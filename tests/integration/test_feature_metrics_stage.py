"""Wiring: the metrics stage computes KID / density / coverage / FD∞ / per_class from the run's
features, writes per_class.csv, and the sample linter stops a failing file before Inception."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssg_eval.lint.findings import SampleLintError
from ssg_eval.metrics.density_coverage import density_coverage
from ssg_eval.metrics.kid import kid
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.runs.io import atomic_write_npz, read_json
from ssg_eval.smoke import synthetic_images

FEATURE_METRICS = "metrics.metrics=[fid,precision,kid,density,coverage,fd_inf,per_class]"


@pytest.mark.slow
def test_metrics_stage_writes_feature_metrics_and_lints_first(tiny_cfg, tmp_path, monkeypatch):
    import ssg_eval.features.inception as inception
    from ssg_eval.features.inception import make_random_inception_weights
    from ssg_eval.sampling.runner import sample_run
    from ssg_eval.stages.features import run_features
    from ssg_eval.stages.metrics import run_metrics

    weights = tmp_path / "inception.pth"
    make_random_inception_weights(weights, seed=0)
    ref_labels = np.arange(30) % 10
    atomic_write_npz(
        tmp_path / "ref.npz", arr_0=synthetic_images(30, 48, seed=1), labels=ref_labels
    )
    overrides = [
        "sampler.num_samples=20", "runtime.measure_latency=false", "metrics.pr_k=2",
        f"metrics.inception_weights={weights}", f"metrics.reference={tmp_path / 'ref.npz'}",
        "metrics.reference_name=ref.npz", FEATURE_METRICS,
    ]  # fmt: skip
    cfg = tiny_cfg(*overrides, config_name="config")
    sample_run(cfg)
    run_features(cfg)
    run = tmp_path / "runs" / str(cfg.run_name)
    metrics = read_json(run_metrics(cfg))["metrics"]

    with np.load(run / "features.npz") as data:
        pool, labels = data["pool"], data["labels"]
    cache = next((tmp_path / "cache").glob("*_features.npz"))
    with np.load(cache) as data:
        ref_pool = data["pool"]
    assert metrics["kid"] == pytest.approx(kid(pool, ref_pool, subset_size=20)[0], rel=1e-12)
    assert metrics["kid_subset_size"] == 20  # fewer than 1000 samples: smaller subsets
    density, coverage = density_coverage(ref_pool, pool)
    assert (metrics["density"], metrics["coverage"]) == pytest.approx((density, coverage))
    assert np.isfinite(metrics["fd_inf"]) and metrics["fd_inf_err"] >= 0
    table = pd.read_csv(run / "per_class.csv")
    assert table["class"].tolist() == sorted(set(labels.tolist()))
    precision, _ = precision_recall(ref_pool, pool, k=2)
    assert (table["n"] * table["precision"]).sum() / len(pool) == pytest.approx(precision)
    assert metrics["per_class"]["fid_available"] and table["fid"].notna().all()

    # the linter judges the scan the export made (no image read here): a scan of constant images
    # stops the stage before the Inception network is built
    with np.load(run / "samples_scan.npz") as data:
        stored = dict(data)
    manifest = read_json(run / "manifest.json")
    assert str(stored["images_sha256"]) == manifest["samples"]["images_sha256"]
    stored["maximum"] = stored["minimum"].copy()  # every image constant
    atomic_write_npz(run / "samples_scan.npz", **stored)

    def no_inception(*args, **kwargs):
        raise AssertionError("Inception was built before the linter stopped the stage")

    monkeypatch.setattr(inception, "build_inception", no_inception)
    again = tiny_cfg(*overrides, "overwrite=true", config_name="config")
    with pytest.raises(SampleLintError, match="constant_images"):
        run_metrics(again)
    # a run without a recorded scan (an older run) is scanned from its samples.npz instead
    (run / "samples_scan.npz").unlink()
    with np.load(run / "samples.npz") as data:
        black = np.zeros_like(data["arr_0"])
        atomic_write_npz(run / "samples.npz", arr_0=black, labels=data["labels"])
    with pytest.raises(SampleLintError, match="constant_images"):
        run_metrics(again)

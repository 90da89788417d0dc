"""Outputs a stage skips on are verified, and N moves both ways: no command loops on a dead end.

A damaged `features.npz` is recomputed by the features stage (it used to say "up to date"
forever while metrics asked for it); a damaged `samples.npz` is found by its recorded sha256 and
exported again; growing N and then shrinking it to a non-chunk-aligned N uses the first N
samples; the pipeline with a grown N recomputes features and metrics for the new N.
"""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from ssg_eval.errors import NpzError
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.runner import sample_run
from ssg_eval.sampling.shards import shard_path
from ssg_eval.stages.features import run_features
from ssg_eval.stages.metrics import run_metrics
from ssg_eval.stages.pipeline import run_cell
from tests.faults.conftest import tiny
from tests.faults.test_corruption import flip_bytes


def _logging(monkeypatch):
    monkeypatch.setattr(logging.getLogger("ssg_eval"), "propagate", True)


def test_damaged_features_npz_is_recomputed_not_skipped(tmp_path, with_reference, caplog,
                                                        monkeypatch):  # fmt: skip
    cfg = tiny(tmp_path, *with_reference, config_name="config")
    directory = sample_run(cfg)
    run_features(cfg)
    good = (directory / "features.npz").read_bytes()
    flip_bytes(directory / "features.npz", offset_from_end=3000)
    with pytest.raises(NpzError, match="rerun the features stage"):
        run_metrics(cfg)
    _logging(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        run_features(cfg)  # verifies what it would skip on: recomputed from the per-shard files
    assert "features.npz has sha256" in caplog.text
    assert (directory / "features.npz").read_bytes() == good
    assert json.loads(run_metrics(cfg).read_text())["num_samples"] == 20


def test_damaged_samples_npz_is_found_by_its_sha256_and_exported_again(tmp_path, reference, caplog,
                                                                      monkeypatch):  # fmt: skip
    cfg = tiny(tmp_path)
    directory = sample_run(cfg)
    manifest = json.loads((directory / "manifest.json").read_text())
    export = directory / "samples.npz"
    digest = hashlib.sha256(export.read_bytes()).hexdigest()
    assert manifest["samples"]["samples_npz_sha256"] == digest
    flip_bytes(export, offset_from_end=5000)
    _logging(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        sample_run(cfg)
    assert "does not have the sha256 recorded" in caplog.text
    assert export.read_bytes() == reference[1]
    export.write_bytes(export.read_bytes()[:-100])  # truncated: the pipeline's cheap size check
    from ssg_eval.stages.pipeline import ensure_samples, sampling_done

    assert not sampling_done(cfg)
    ensure_samples(cfg, [])
    assert export.read_bytes() == reference[1] and sampling_done(cfg)


def test_grow_then_shrink_to_a_non_aligned_n_uses_the_first_n_samples(tmp_path):
    def cfg(n):
        return tiny(tmp_path / "run", f"sampler.num_samples={n}")  # chunks of 8

    sample_run(cfg(20))
    sample_run(cfg(30))  # chunk 2 completed to 16..23, chunk 3 = 24..29
    directory = sample_run(cfg(20))  # chunk 2 is again 16..19; chunk 3 is not read
    fresh = sample_run(tiny(tmp_path / "fresh"))
    for chunk in range(3):
        assert shard_path(directory, chunk).read_bytes() == shard_path(fresh, chunk).read_bytes()
    assert (directory / "samples.npz").read_bytes() == (fresh / "samples.npz").read_bytes()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["samples"]["num_samples"] == 20 and len(manifest["shards"]) == 3
    mtimes = {p.name: p.stat().st_mtime_ns for p in (directory / "shards").glob("*.npz")}
    sample_run(cfg(20))  # a rerun rewrites nothing
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in (directory / "shards").glob("*.npz")}
    assert json.loads((directory / "manifest.json").read_text()) == manifest
    sample_run(cfg(30))  # and growing again reuses chunk 3
    assert shard_path(directory, 3).stat().st_mtime_ns == mtimes["chunk_00003.npz"]


def test_pipeline_with_a_grown_or_shrunk_n_recomputes_features_and_metrics(
    tmp_path, with_reference
):
    def cell(n):
        return tiny(tmp_path, *with_reference, f"sampler.num_samples={n}",
                    config_name="config")  # fmt: skip

    for n in (10, 20, 10):
        directory = run_cell(cell(n), [])
        assert json.loads((directory / "features.json").read_text())["num_samples"] == n
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["num_samples"] == n
        assert metrics["inputs"]["features_meta"]["num_samples"] == n
    assert run_dir(cell(10)) == directory

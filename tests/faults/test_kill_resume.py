"""SIGKILL at five points of the sample stage, then the same command: byte-identical results.

Also the features stage, features while sampling, and the metrics stage (mid-write of the shared
reference cache and of `metrics.json`): the rerun gives what an uninterrupted run gives.

Each crash runs in a forked child with one function wrapped to kill the process at that point;
the parent resumes in-process and compares shard contents and `samples.npz` bytes with an
uninterrupted run. No temp file survives the resume.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import ssg_eval.sampling.finalize as finalize
import ssg_eval.sampling.runner as run
import ssg_eval.sampling.shards as shards
from ssg_eval.runs.io import temp_path
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.runner import sample_run
from tests.faults.conftest import contents, in_child, kill_self, tiny


def _after_identity(monkeypatch):
    real = run.write_identity

    def write_then_die(*args):
        real(*args)
        kill_self()

    monkeypatch.setattr(run, "write_identity", write_then_die)


def _half_a_temp_then_die(path, data: bytes) -> None:
    """Half of `data` reaches `path`'s temp file (fsynced), then the process dies mid-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(temp_path(path), "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    kill_self()


def _inside_shard_write(monkeypatch):
    # Half of shard 1's bytes reach its temp file, then the process dies mid-write.
    real = shards.write_npz_sha256

    def half_then_die(path, **arrays):
        if path.name != "chunk_00001.npz":
            return real(path, **arrays)
        real(path.with_name("full.npz"), **arrays)
        data = path.with_name("full.npz").read_bytes()
        path.with_name("full.npz").unlink()
        _half_a_temp_then_die(path, data)

    monkeypatch.setattr(shards, "write_npz_sha256", half_then_die)


def _between_shards(monkeypatch):
    real = run.write_shard_sha256

    def write_then_die(directory, chunk, *args):
        digest = real(directory, chunk, *args)
        if chunk == 1:
            kill_self()
        return digest

    monkeypatch.setattr(run, "write_shard_sha256", write_then_die)


def _inside_export(monkeypatch):
    # samples.npz's temp file holds the first shard's images when the process dies.
    real = shards.iter_run_images

    def one_batch_then_die(*args, **kwargs):
        iterator = real(*args, **kwargs)
        yield next(iterator)
        kill_self()

    monkeypatch.setattr(shards, "iter_run_images", one_batch_then_die)


def _before_manifest(monkeypatch):
    real = finalize.atomic_write_json

    def die_before_manifest(path, payload):
        if path.name == "manifest.json":
            kill_self()
        return real(path, payload)

    monkeypatch.setattr(finalize, "atomic_write_json", die_before_manifest)


POINTS = {
    "after_identity": _after_identity,
    "inside_shard_write": _inside_shard_write,
    "between_shards": _between_shards,
    "inside_export": _inside_export,
    "before_manifest": _before_manifest,
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_sigkill_then_resume_is_byte_identical(point, tmp_path, reference, monkeypatch):
    cfg = tiny(tmp_path)

    def crash():
        POINTS[point](monkeypatch)
        sample_run(cfg)

    status = in_child(crash)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, status
    directory = run_dir(cfg)
    assert not (directory / "manifest.json").exists()
    if point in ("inside_shard_write", "inside_export"):
        assert list(directory.rglob("*.tmp")), "the crash must leave a temp file behind"
    sample_run(cfg)
    assert contents(directory) == reference[0]
    assert (directory / "samples.npz").read_bytes() == reference[1]
    assert not list(directory.rglob("*.tmp"))
    with np.load(directory / "samples.npz") as data:
        assert data["arr_0"].shape[0] == 20


def test_sigkill_during_features_then_resume_is_identical(tmp_path, stand_in_inception,
                                                          monkeypatch):  # fmt: skip
    import ssg_eval.sampling.shard_features as shard_features
    import ssg_eval.stages.features as features

    cfg = tiny(tmp_path, *stand_in_inception, config_name="config")
    directory = sample_run(cfg)
    real = shard_features.write_npz_sha256

    def die_on_second_cache(path, **arrays):
        if path.name.startswith("chunk_00001"):
            kill_self()
        return real(path, **arrays)

    def crash():
        monkeypatch.setattr(shard_features, "write_npz_sha256", die_on_second_cache)
        features.run_features(cfg)

    status = in_child(crash)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, status
    assert not (directory / "features.npz").exists()
    assert len(list((directory / "features_cache").glob("*.npz"))) == 1
    features.run_features(cfg)
    resumed = (directory / "features.npz").read_bytes()
    fresh = tiny(tmp_path / "fresh", *stand_in_inception, config_name="config")
    sample_run(fresh)
    features.run_features(fresh)
    assert resumed == (run_dir(fresh) / "features.npz").read_bytes()


def test_sigkill_between_a_shard_and_its_features_resumes_to_the_same_bytes(
    tmp_path, stand_in_inception, reference, monkeypatch
):
    # Features while sampling: the process dies after shard 1 is in place, before its features.
    import ssg_eval.sampling.shard_features as shard_features
    from ssg_eval.stages.features import run_features

    on = (*stand_in_inception, "metrics.features_while_sampling=true")
    cfg = tiny(tmp_path, *on, config_name="config")
    real = shard_features.write_npz_sha256

    def die_before_features_of_chunk_1(path, **arrays):
        if path.name.startswith("chunk_00001"):
            kill_self()
        return real(path, **arrays)

    def crash():
        monkeypatch.setattr(shard_features, "write_npz_sha256", die_before_features_of_chunk_1)
        sample_run(cfg)

    status = in_child(crash)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, status
    directory = run_dir(cfg)
    assert (directory / "shards" / "chunk_00001.npz").is_file()
    assert not list((directory / "features_cache").glob("chunk_00001*"))
    sample_run(cfg)  # shard 1 verifies and is kept; chunk 2 is sampled with its features
    run_features(cfg)  # extracts shard 1's features from the shard
    fresh = tiny(tmp_path / "fresh", *on, config_name="config")
    sample_run(fresh)
    run_features(fresh)
    assert contents(directory) == reference[0]
    assert (directory / "samples.npz").read_bytes() == reference[1]
    assert (directory / "features.npz").read_bytes() == (
        run_dir(fresh) / "features.npz"
    ).read_bytes()
    assert not list(directory.rglob("*.tmp"))


@pytest.mark.parametrize("point", ["reference_cache", "metrics_json"])
def test_sigkill_inside_the_metrics_stage_then_rerun_gives_the_same_metrics(
    point, tmp_path, with_reference, monkeypatch
):
    """Killed mid-write of the reference's feature cache or of `metrics.json`: the same command
    computes metrics equal to an uninterrupted run's, and no temp file or partial output stays."""
    import io
    import json
    import time

    import ssg_eval.metrics.reference as reference_module
    import ssg_eval.stages.metrics as metrics_stage
    from ssg_eval.stages.features import run_features

    cfg = tiny(tmp_path / "killed", *with_reference, config_name="config")
    directory = sample_run(cfg)
    run_features(cfg)
    cache_dir = tmp_path / "killed" / "cache"

    def crash():
        if point == "reference_cache":

            def die_in_cache(path, **arrays):
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                _half_a_temp_then_die(path, buffer.getvalue())

            monkeypatch.setattr(reference_module, "atomic_write_npz", die_in_cache)
        else:

            def die_in_metrics(path, payload):
                _half_a_temp_then_die(path, json.dumps(payload).encode())

            monkeypatch.setattr(metrics_stage, "atomic_write_json", die_in_metrics)
        metrics_stage.run_metrics(cfg)

    status = in_child(crash)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, status
    assert not (directory / "metrics.json").exists()
    left = list(cache_dir.glob("*.tmp")) + list(directory.glob("*.tmp"))
    assert left, "the crash must leave a temp file behind"
    earlier = time.time() - 2 * metrics_stage.SHARED_TEMP_AGE_S  # the crash was a while ago
    for path in left:
        os.utime(path, (earlier, earlier))
    metrics_stage.run_metrics(cfg)
    assert not list(cache_dir.glob("*.tmp")) and not list(directory.glob("*.tmp"))
    fresh = tiny(tmp_path / "fresh", *with_reference, config_name="config")
    sample_run(fresh)
    run_features(fresh)
    metrics_stage.run_metrics(fresh)
    resumed = json.loads((directory / "metrics.json").read_text())["metrics"]
    uninterrupted = json.loads((run_dir(fresh) / "metrics.json").read_text())["metrics"]
    assert resumed == uninterrupted and set(resumed) >= {"fid", "is", "precision", "recall"}

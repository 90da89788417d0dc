"""The sampling runner on the tiny CPU model: invariance to batch size, world size and resumes.

Every comparison is on shard contents (images, labels, indices); npz files carry zip timestamps,
so the shards' file bytes differ between writes, while samples.npz is compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import torch

import ssg_eval.models.load as model_load
from ssg_eval.errors import ConfigError
from ssg_eval.runs.identity import identity_hash, resolved_config
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.finalize import finalize_run
from ssg_eval.sampling.identity import identity_of
from ssg_eval.sampling.plan import plan_from_config
from ssg_eval.sampling.runner import run_rank, sample_run
from ssg_eval.sampling.shards import shard_path
from ssg_eval.stages.sample import sample_stage
from tests.shard_helpers import SimulatedCrash, crash_after_shards

_REAL_BUILD = model_load.build_model
_MODELS: dict[str, tuple] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: tiny ops are fastest that way on shared cores, and every run in
    this module then uses the same GEMM reduction split (the thread count changes CPU rounding)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def cached_models(monkeypatch):
    """Build each tiny model once per session (name-derived weights are deterministic)."""

    def build(model_cfg, device):
        key = f"{json.dumps(dict(model_cfg), sort_keys=True, default=str)}|{device}"
        if key not in _MODELS:
            _MODELS[key] = _REAL_BUILD(model_cfg, device)
        return _MODELS[key]

    monkeypatch.setattr(model_load, "build_model", build)


def no_build(*_, **__):
    raise AssertionError("the model must not be built here")


def contents(directory) -> dict[str, str]:
    """sha256 of every shard's arrays (not of its file bytes, which hold zip timestamps)."""
    out = {}
    for path in sorted((directory / "shards").glob("chunk_*.npz")):
        digest = hashlib.sha256()
        with np.load(path) as data:
            for key in ("images", "labels", "indices"):
                digest.update(data[key].tobytes())
        out[path.name] = digest.hexdigest()
    return out


FAST = ("runtime.measure_latency=false",)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process run (batch 4, N=20, chunks of 8), latency measured."""
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("reference")
    cfg = compose_config(
        ["model=tiny", "sampler=tiny", "runtime.device=cpu", f"paths.results={results}"]
    )
    directory = sample_run(cfg)
    return directory, contents(directory), (directory / "samples.npz").read_bytes()


def test_reference_run_has_complete_manifest_and_export(reference):
    directory, shards, samples = reference
    assert sorted(shards) == [f"chunk_{c:05d}.npz" for c in range(3)]
    manifest = json.loads((directory / "manifest.json").read_text())
    keys = ("config", "config_hash", "git", "versions", "device", "world_size", "plan",
            "chunk_size", "batch_size", "checkpoints", "runtime", "timings", "samples")  # fmt: skip
    assert set(keys) <= set(manifest)
    assert manifest["world_size"] == 1 and manifest["chunk_size"] == 8
    assert manifest["checkpoints"]["init"] == "names"
    latency = manifest["timings"]["latency"]
    assert latency["seconds_per_image"] > 0 and latency["batch_size"] == 1
    assert len(latency["times_s"]) == 3 and latency["device"] == "cpu"
    assert manifest["timings"]["images_per_s"] > 0 and manifest["timings"]["images_generated"] == 20
    with np.load(directory / "samples.npz") as data:
        arr = data["arr_0"]
        assert arr.shape == (20, 48, 48, 3) and arr.dtype == np.uint8
        assert np.array_equal(data["labels"], np.arange(20) % 10)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()
    assert manifest["samples"]["images_sha256"] == digest
    assert len({hashlib.sha256(img.tobytes()).digest() for img in arr}) == 20
    assert not list(directory.rglob("*.tmp"))


def all_shards(directory) -> dict[str, np.ndarray]:
    arrays = {"images": [], "labels": [], "indices": []}
    for path in sorted((directory / "shards").glob("chunk_*.npz")):
        with np.load(path) as data:
            for key, parts in arrays.items():
                parts.append(data[key])
    return {key: np.concatenate(parts) for key, parts in arrays.items()}


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_size_changes_no_sample(tiny_cfg, reference, batch_size):
    """Per-sample generators give every batch size the same tokens and latents, and decoding in
    groups of `sampler.decode_batch_size` aligned to chunk starts makes the pixels bit-identical.
    """
    directory = sample_run(tiny_cfg(f"sampler.batch_size={batch_size}", *FAST))
    got, want = all_shards(directory), all_shards(reference[0])
    for key in ("indices", "labels", "images"):
        assert np.array_equal(got[key], want[key]), key


def test_world_size_does_not_change_images(tiny_cfg, reference):
    cfg = tiny_cfg(*FAST)
    stats = [run_rank(cfg, rank, 3) for rank in range(3)]
    assert [s["chunks_assigned"] for s in stats] == [1, 1, 1]
    directory = run_dir(cfg)
    finalize_run(cfg, directory, plan_from_config(cfg), stats)
    assert contents(directory) == reference[1]
    assert (directory / "samples.npz").read_bytes() == reference[2]
    assert json.loads((directory / "manifest.json").read_text())["world_size"] == 3


def test_crash_then_resume_gives_identical_run(tiny_cfg, reference):
    cfg = tiny_cfg(*FAST)
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(cfg, 0, 1)
    directory = run_dir(cfg)
    assert len(contents(directory)) == 1 and not (directory / "manifest.json").exists()
    assert not list(directory.rglob("*.tmp"))
    before = shard_path(directory, 0).stat().st_mtime_ns
    sample_run(cfg)
    assert shard_path(directory, 0).stat().st_mtime_ns == before  # skipped, not rewritten
    assert contents(directory) == reference[1]
    assert (directory / "samples.npz").read_bytes() == reference[2]
    timings = json.loads((directory / "manifest.json").read_text())["timings"]
    assert timings["resumed"] and timings["chunks_skipped"] == 1


def test_deleted_or_corrupt_shard_is_regenerated(tiny_cfg, reference, monkeypatch, caplog):
    cfg = tiny_cfg(*FAST)
    directory = sample_run(cfg)
    shard_path(directory, 1).unlink()
    shard_path(directory, 2).write_bytes(b"garbage")
    monkeypatch.setattr(logging.getLogger("ssg_eval"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        sample_run(cfg)
    assert "chunk 2 is invalid" in caplog.text
    assert contents(directory) == reference[1]
    assert (directory / "samples.npz").read_bytes() == reference[2]
    # A complete rerun loads no weights and rewrites nothing.
    manifest = (directory / "manifest.json").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}
    monkeypatch.setattr(model_load, "build_model", no_build)
    sample_run(cfg)
    assert (directory / "manifest.json").read_bytes() == manifest
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()} == mtimes


def test_other_config_in_same_run_dir_is_refused(tiny_cfg, reference):
    cfg = tiny_cfg(*FAST, "run_name=shared")
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(cfg, 0, 1)  # identity is claimed before the manifest
    other = tiny_cfg(*FAST, "run_name=shared", "guidance.cfg_ramp.scale=3.0")
    with pytest.raises(ConfigError) as err:
        sample_run(other)
    message = str(err.value)
    assert "overwrite=true" in message and "run_name" in message
    for config in (cfg, other):
        assert identity_hash(identity_of(config)) in message
    # Keys that never change the images do not change the identity: the crashed run resumes.
    threads = "runtime.num_threads=1"
    neutral = ["sampler.batch_size=4", "runtime.latency_repeats=1", "dry_run=false",
               "sampler.save_samples_npz=false", threads, "runtime.dist_backend=gloo"]  # fmt: skip
    resumed = sample_run(tiny_cfg("run_name=shared", *neutral))
    assert contents(resumed) == reference[1]
    directory = sample_run(tiny_cfg(*FAST, "run_name=shared", "guidance.cfg_ramp.scale=3.0",
                                    "overwrite=true"))  # fmt: skip
    assert len(contents(directory)) == 3 and contents(directory) != reference[1]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["config"]["guidance"]["cfg_ramp"]["scale"] == 3.0


def test_official_rng_is_independent_of_world_and_batch_size(tiny_cfg, reference):
    one = sample_run(tiny_cfg(*FAST, "sampler.rng=official", "run_name=official_w1"))
    cfg = tiny_cfg(*FAST, "sampler.rng=official", "run_name=official_w2", "sampler.batch_size=1")
    stats = [run_rank(cfg, rank, 2) for rank in range(2)]
    finalize_run(cfg, run_dir(cfg), plan_from_config(cfg), stats)
    assert contents(one) == contents(run_dir(cfg)) != reference[1]


def test_dry_run_prints_plan_without_loading_weights(tiny_cfg, monkeypatch, capsys):
    cfg = tiny_cfg(*FAST, "run_name=dry")
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(cfg, 0, 1)
    monkeypatch.setattr(model_load, "build_model", no_build)
    assert sample_stage(tiny_cfg("dry_run=true", "run_name=dry", "launch.nproc_per_node=2")) is None
    out = capsys.readouterr().out
    assert "rank 0: chunks [0, 2] (1 done)" in out and "rank 1: chunks [1] (0 done)" in out
    assert "shards done: 1/3" in out and "same config" in out
    assert not (run_dir(cfg) / "manifest.json").exists()


def test_identity_hash_ignores_only_non_image_keys(tiny_cfg):
    def config_hash(cfg) -> str:
        return identity_hash(identity_of(cfg))

    base = config_hash(tiny_cfg())
    for override in ("sampler.batch_size=7", "sampler.save_samples_npz=false",
                     "runtime.num_threads=3", "runtime.measure_latency=false",
                     "runtime.latency_batch_size=2", "runtime.dist_backend=gloo",
                     "overwrite=true", "paths.results=/elsewhere"):  # fmt: skip
        assert config_hash(tiny_cfg(override)) == base, override
    for override in ("sampler.seed=1", "sampler.chunk_size=4", "sampler.uint8_rounding=truncate",
                     "runtime.autocast_dtype=bfloat16", "guidance=cfg_ssg",
                     "sampler.rng=official", "model.init_seed=1"):  # fmt: skip
        assert config_hash(tiny_cfg(override)) != base, override
    resolved = resolved_config(tiny_cfg())
    identity_of(resolved)
    assert resolved["sampler"]["batch_size"] == 4  # the caller's dict is not modified


def test_missing_export_is_rewritten_without_resampling(tiny_cfg, reference, monkeypatch):
    cfg = tiny_cfg(*FAST)
    directory = sample_run(cfg)
    timings = json.loads((directory / "manifest.json").read_text())["timings"]
    (directory / "samples.npz").unlink()
    monkeypatch.setattr(model_load, "build_model", no_build)
    sample_run(cfg)
    assert (directory / "samples.npz").read_bytes() == reference[2]
    assert json.loads((directory / "manifest.json").read_text())["timings"] == timings

"""Growing a run from N to 2N: the same run dir, only the new chunks sampled, old features reused.

With `sampler.rng=per_sample` sample i does not depend on N, so `sampler.num_samples` is not part
of the identity; features are cached per shard (keyed by the shard's and the Inception weights'
sha256), so the grown run extracts features of its new shards only.
"""

from __future__ import annotations

import json

import numpy as np

import ssg_eval.sampling.shards as shards
from ssg_eval.runs.layout import FEATURES_CACHE
from ssg_eval.sampling.runner import sample_run
from ssg_eval.stages.features import run_features
from tests.conftest import compose_config


def test_growing_n_samples_and_extracts_only_new_chunks(tmp_path, monkeypatch, stand_in_inception):

    def cfg(results, n):
        return compose_config(
            ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false",
             f"paths.results={results}", f"sampler.num_samples={n}", "sampler.chunk_size=10",
             *stand_in_inception],
            config_name="config",
        )  # fmt: skip

    small = cfg(tmp_path / "grown", 10)
    directory = sample_run(small)
    run_features(small)
    cache = {p.name: p.stat().st_mtime_ns for p in (directory / FEATURES_CACHE).glob("*.npz")}
    assert len(cache) == 1
    extracted = []
    read = shards.read_shard

    def counting(path, sha256=None):
        extracted.append(path.name)
        return read(path, sha256)

    grown = cfg(tmp_path / "grown", 20)
    assert sample_run(grown) == directory
    monkeypatch.setattr(shards, "read_shard", counting)
    run_features(grown)
    assert extracted == ["chunk_00001.npz"]  # chunk 0's features come from the cache
    for name, mtime in cache.items():
        assert (directory / FEATURES_CACHE / name).stat().st_mtime_ns == mtime
    meta = json.loads((directory / "features.json").read_text())
    assert meta["num_samples"] == 20

    monkeypatch.setattr(shards, "read_shard", read)
    fresh = cfg(tmp_path / "fresh", 20)
    sample_run(fresh)
    run_features(fresh)
    with (
        np.load(directory / "features.npz") as a,
        np.load(tmp_path / "fresh" / "runs" / str(fresh.run_name) / "features.npz") as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key

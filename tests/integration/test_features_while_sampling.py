"""Features while sampling: the sampler's per-shard features are the features stage's, bit for bit.

Each test samples with `metrics.features_while_sampling=true` (random-weight Inception, a forward
batch that does not divide the chunk), then moves the files the sampler wrote aside and lets the
features stage extract the same shards from disk: the per-shard files and `features.npz` must be
byte-identical, the shards and `samples.npz` must equal a run sampled with the features off, and
the stage must not read a shard when the sampler already extracted it. The overlapped chunk path
(CUDA's side-stream code, run on CPU without streams) must give the serial path's bytes.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ssg_eval.runs.iocount import count_io
from ssg_eval.runs.layout import FEATURES_CACHE, run_dir
from ssg_eval.sampling.runner import sample_run
from ssg_eval.stages.features import run_features
from tests.conftest import compose_config
from tests.inception_helpers import random_weights_path

TINY = ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, so both extractions split their reductions alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cell(results, *overrides: str):
    return compose_config(
        [*TINY, f"paths.results={results}", f"metrics.inception_weights={random_weights_path()}",
         "metrics.feature_batch_size=3", "sampler.num_samples=10", "sampler.chunk_size=4",
         *overrides],
        config_name="config",
    )  # fmt: skip


def files(directory, pattern: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob(pattern))}


def test_features_while_sampling_equal_the_stage_bit_for_bit(tmp_path):
    on = cell(tmp_path / "on", "metrics.features_while_sampling=true")
    directory = sample_run(on)
    made = files(directory / FEATURES_CACHE, "*.npz")
    assert len(made) == 3  # one file per shard, written by the sampler
    with count_io(directory) as counts:
        run_features(on)
    assert counts.total_read("shards") == 0  # merged, not extracted again
    merged = (directory / "features.npz").read_bytes()

    shutil.rmtree(directory / FEATURES_CACHE)  # now the stage extracts from the shards
    (directory / "features.npz").unlink()
    with count_io(directory) as counts:
        run_features(on)
    shard_bytes = sum(len(b) for b in files(directory / "shards", "*.npz").values())
    assert counts.total_read("shards") == shard_bytes  # each shard read once
    assert files(directory / FEATURES_CACHE, "*.npz") == made
    assert (directory / "features.npz").read_bytes() == merged

    off = cell(tmp_path / "off")
    plain = sample_run(off)
    assert files(plain / "shards", "*.npz") == files(directory / "shards", "*.npz")
    assert (plain / "samples.npz").read_bytes() == (directory / "samples.npz").read_bytes()
    assert not (plain / FEATURES_CACHE).exists()


def test_features_of_another_device_kind_are_not_merged(tmp_path, monkeypatch):
    """A run sampled (with its features) on one device kind, its features stage on another.

    The per-shard features carry the device kind in their cache name, so the stage extracts
    every shard again on its own device instead of merging the sampler's files (GPU models and
    the CPU round the network differently); the sampler's files stay as they were.
    """
    import ssg_eval.sampling.shard_features as shard_features

    on = cell(tmp_path / "on", "metrics.features_while_sampling=true")
    directory = sample_run(on)
    made = files(directory / FEATURES_CACHE, "*.npz")
    assert len(made) == 3 and all("-cpu" in name for name in made)
    monkeypatch.setattr(shard_features, "device_key", lambda device: "cuda-another_gpu")
    with count_io(directory) as counts:
        run_features(on)
    shard_bytes = sum(len(b) for b in files(directory / "shards", "*.npz").values())
    assert counts.total_read("shards") == shard_bytes  # extracted again, not merged
    after = files(directory / FEATURES_CACHE, "*.npz")
    assert {k: v for k, v in after.items() if k in made} == made
    assert sorted(set(after) - set(made)) == sorted(
        name.replace("-cpu", "-cuda-another_gpu") for name in made
    )


def test_device_key_names_the_gpu_model(monkeypatch):
    from ssg_eval.sampling.shard_features import device_key

    assert device_key(torch.device("cpu")) == "cpu"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert device_key(torch.device("cuda", 0)) == "cuda-nvidia_h100_80gb_hbm3"


def test_overlapped_chunk_path_gives_the_serial_bytes(tmp_path, monkeypatch):
    import ssg_eval.features.inception as inception
    from ssg_eval.sampling.generate import build_sampling_model
    from ssg_eval.sampling.overlap import decoded_chunks
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shard_features import feature_nets
    from tests.faults.conftest import PixelStatistics

    monkeypatch.setattr(inception, "build_inception", lambda *_: PixelStatistics())
    cfg = cell(tmp_path, "metrics.features_while_sampling=true")
    device = torch.device("cpu")
    model, plan, nets = build_sampling_model(cfg, device), plan_from_config(cfg), feature_nets(cfg)
    chunks = [2, 0, 1]  # any order; the last chunk is short
    serial = list(decoded_chunks(model, cfg, plan, chunks, device, nets, overlap=False))
    overlapped = list(decoded_chunks(model, cfg, plan, chunks, device, nets, overlap=True))
    assert [d.chunk for d in overlapped] == chunks
    for a, b in zip(serial, overlapped, strict=True):
        assert np.array_equal(a.images, b.images) and a.images.flags.owndata
        for key, value in a.features["inception"].items():
            assert np.array_equal(value, b.features["inception"][key]), key
    assert len(overlapped[0].images) == 2 and len(overlapped[1].images) == 4


@pytest.mark.slow
def test_features_while_sampling_equal_the_stage_on_the_d16_shape(tmp_path):
    # The d16 transformer and VQVAE (random weights), two classes, one chunk of two images.
    cfg = compose_config(
        ["model=var_d16", "sampler=var_eval", "guidance=cfg", "runtime.device=cpu",
         "runtime.measure_latency=false", "model.var_ckpt=null", "model.vae_ckpt=null",
         "model.num_classes=2", "sampler.num_samples=2", "sampler.chunk_size=2",
         "sampler.batch_size=2", f"paths.results={tmp_path}",
         f"metrics.inception_weights={random_weights_path()}", "metrics.feature_batch_size=1",
         "metrics.features_while_sampling=true"],
        config_name="config",
    )  # fmt: skip
    directory = sample_run(cfg)
    made = files(directory / FEATURES_CACHE, "*.npz")
    assert len(made) == 1
    run_features(cfg)
    merged = (directory / "features.npz").read_bytes()
    shutil.rmtree(directory / FEATURES_CACHE)
    (directory / "features.npz").unlink()
    run_features(cfg)
    assert files(directory / FEATURES_CACHE, "*.npz") == made
    assert (run_dir(cfg) / "features.npz").read_bytes() == merged

"""A run is its content: a moved checkpoint resumes, another beta is refused by every stage.

Refusals name the differing key with both values; the checkpoint enters the identity by its
sha256, so only its bytes matter, and NaN weights are refused naming the checkpoint.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ssg_eval.errors import CheckpointError, ConfigError, IdentityMismatch
from ssg_eval.models.load import build_var, build_vqvae, init_from_names
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.runner import run_rank, sample_run
from ssg_eval.stages.features import run_features
from ssg_eval.stages.metrics import run_metrics
from tests.faults.conftest import contents, tiny
from tests.shard_helpers import SimulatedCrash, crash_after_shards


@pytest.fixture
def checkpoints(tmp_path):
    """The tiny model's name-derived weights saved as checkpoint files (same images as null)."""
    cfg = tiny(tmp_path)
    folder = tmp_path / "ckpt_a"
    folder.mkdir()
    for build, name in ((build_var, "var.pth"), (build_vqvae, "vae.pth")):
        module = build(cfg.model)
        init_from_names(module, cfg.model.init_seed)
        torch.save(module.state_dict(), folder / name)
    return folder


def with_ckpts(results, folder, *overrides):
    return tiny(results, f"model.var_ckpt={folder / 'var.pth'}",
                f"model.vae_ckpt={folder / 'vae.pth'}", *overrides)  # fmt: skip


def test_moved_checkpoint_resumes(tmp_path, checkpoints, reference):
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(with_ckpts(tmp_path, checkpoints), 0, 1)
    moved = tmp_path / "ckpt_b"
    shutil.move(checkpoints, moved)
    cfg = with_ckpts(tmp_path, moved)
    directory = sample_run(cfg)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["timings"]["chunks_skipped"] == 1
    assert manifest["identity"]["model.var_ckpt"].startswith("sha256:")
    assert contents(directory) == reference[0]


def test_other_checkpoint_bytes_are_another_run(tmp_path, checkpoints):
    sample_run(with_ckpts(tmp_path, checkpoints))
    state = torch.load(checkpoints / "var.pth")
    next(iter(state.values())).add_(1.0)
    torch.save(state, checkpoints / "var.pth")
    with pytest.raises(IdentityMismatch, match=r"model\.var_ckpt: the run has \"?sha256:"):
        sample_run(with_ckpts(tmp_path, checkpoints))


def test_nan_checkpoint_is_refused_naming_it_and_nothing_is_written(tmp_path, checkpoints):
    state = torch.load(checkpoints / "vae.pth")
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key][...] = float("nan")
    torch.save(state, checkpoints / "vae.pth")
    cfg = with_ckpts(tmp_path, checkpoints)
    with pytest.raises(CheckpointError) as err:
        sample_run(cfg)
    assert "model.vae_ckpt" in str(err.value) and str(checkpoints / "vae.pth") in str(err.value)
    assert key in str(err.value)
    assert not list(run_dir(cfg).rglob("*.*"))


@pytest.fixture
def ssg_run(tmp_path):
    """A tiny run sampled with SSG at beta 0.5."""
    sample_run(tiny(tmp_path, "guidance=ssg", "run_name=ssg"))
    return tmp_path


@pytest.mark.parametrize("stage", [run_features, run_metrics])
def test_features_and_metrics_refuse_another_beta_naming_the_key(ssg_run, stage):
    cfg = tiny(ssg_run, "guidance=ssg", "run_name=ssg", "guidance.ssg.beta=1.0",
               config_name="config")  # fmt: skip
    with pytest.raises(IdentityMismatch) as err:
        stage(cfg)
    message = str(err.value)
    assert "guidance.ssg.beta: the run has 0.5, this command asks 1.0" in message
    assert "\n" not in message
    assert not (run_dir(cfg) / "features.npz").exists()


def test_sample_stage_refuses_another_beta_naming_the_key(ssg_run):
    with pytest.raises(
        ConfigError, match="guidance.ssg.beta: the run has 0.5, this command asks 1.0"
    ):
        sample_run(tiny(ssg_run, "guidance=ssg", "run_name=ssg", "guidance.ssg.beta=1.0"))


def test_growing_n_reuses_every_finished_chunk(tmp_path, reference):
    small = sample_run(tiny(tmp_path, "sampler.num_samples=10"))
    before = {p.name: p.stat().st_mtime_ns for p in (small / "shards").glob("*.npz")}
    grown = sample_run(tiny(tmp_path))  # N=20: the same run dir
    assert grown == small
    manifest = json.loads((grown / "manifest.json").read_text())
    assert manifest["samples"]["num_samples"] == 20
    # chunk 0 (indices 0-7) is reused; chunk 1 held 8-9 only and is completed; chunk 2 is new.
    assert (grown / "shards" / "chunk_00000.npz").stat().st_mtime_ns == before["chunk_00000.npz"]
    assert contents(grown) == reference[0]
    assert (grown / "samples.npz").read_bytes() == reference[1]
    with np.load(grown / "samples.npz") as data:
        assert data["arr_0"].shape[0] == 20


def test_identity_rules(tmp_path, checkpoints):
    from omegaconf import open_dict

    from ssg_eval.sampling.identity import identity_of

    base = identity_of(tiny(tmp_path))
    assert "sampler.num_samples" not in base and "model.init_seed" in base
    assert identity_of(tiny(tmp_path, "sampler.num_samples=40")) == base
    official = identity_of(tiny(tmp_path, "sampler.rng=official"))
    assert official["sampler.num_samples"] == 20
    assert identity_of(tiny(tmp_path, "guidance.ssg.beta=2.0")) == base  # SSG is off: inert
    with_files = identity_of(with_ckpts(tmp_path, checkpoints))
    assert "model.init_seed" not in with_files
    assert with_files["model.vae_ckpt"].startswith("sha256:")
    cfg = tiny(tmp_path)
    with open_dict(cfg):
        cfg.guide = {"guide_ckpt": str(checkpoints / "var.pth")}  # a model another method loads
    assert identity_of(cfg)["guide.guide_ckpt"] == with_files["model.var_ckpt"]
    with pytest.raises(FileNotFoundError, match="model.var_ckpt: checkpoint .* does not exist"):
        identity_of(tiny(tmp_path, f"model.var_ckpt={tmp_path / 'nothing.pth'}"))

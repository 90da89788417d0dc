"""Every checkpoint mistake fails before sampling, in one error naming file, key and fix."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from ssg_eval.errors import CheckpointError
from ssg_eval.models.checkpoint import load_checkpoint
from ssg_eval.models.load import build_model, build_var, build_vqvae, init_from_names
from tests.unit.test_models import load_model_config


@pytest.fixture(scope="module")
def tiny_model_cfg():
    return load_model_config("tiny")


@pytest.fixture(scope="module")
def state_dicts(tiny_model_cfg):
    var, vae = build_var(tiny_model_cfg), build_vqvae(tiny_model_cfg)
    init_from_names(var, seed_prefix=1)
    init_from_names(vae, seed_prefix=1)
    return var.state_dict(), vae.state_dict()


@pytest.fixture
def files(state_dicts, tmp_path):
    var_sd, vae_sd = state_dicts
    torch.save(var_sd, tmp_path / "var.pth")
    torch.save(vae_sd, tmp_path / "vae.pth")
    return tmp_path / "var.pth", tmp_path / "vae.pth"


def _cfg(base, var_path, vae_path, **changes):
    cfg = copy.deepcopy(base)
    cfg.var_ckpt = None if var_path is None else str(var_path)
    cfg.vae_ckpt = None if vae_path is None else str(vae_path)
    for key, value in changes.items():
        setattr(cfg, key, value)
    return cfg


def _expect(exc_type, call, *fragments):
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert str(fragment) in message, f"{fragment!r} not in: {message}"
    return message


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("which", ["var", "vae"])
def test_missing_file_is_reported_before_building(tiny_model_cfg, files, tmp_path, which):
    missing = tmp_path / "nope.pth"
    var_path, vae_path = files
    paths = (missing, vae_path) if which == "var" else (var_path, missing)
    cfg = _cfg(tiny_model_cfg, *paths)
    _expect(FileNotFoundError, lambda: build_model(cfg), f"model.{which}_ckpt", missing, "download")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tiny_model_cfg, files):
    var_path, vae_path = files
    var_path.chmod(0)
    try:
        cfg = _cfg(tiny_model_cfg, var_path, vae_path)
        _expect(FileNotFoundError, lambda: build_model(cfg), "model.var_ckpt", var_path, "readable")
    finally:
        var_path.chmod(0o644)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_truncated_or_corrupt_file(tiny_model_cfg, files, damage):
    var_path, _ = files
    data = var_path.read_bytes()
    var_path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint")
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError, lambda: load_checkpoint(var, var_path, "var"), "model.var_ckpt", var_path
    )


def test_non_dict_content(tiny_model_cfg, state_dicts, tmp_path):
    path = _save(tmp_path, "list.pth", list(state_dicts[1].values()))
    vae = build_vqvae(tiny_model_cfg)
    _expect(
        CheckpointError, lambda: load_checkpoint(vae, path, "vae"), "model.vae_ckpt", path, "list"
    )


def test_nested_training_checkpoint(tiny_model_cfg, state_dicts, tmp_path):
    path = _save(tmp_path, "train.pth", {"model": dict(state_dicts[0]), "epoch": torch.tensor(3)})
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError,
        lambda: load_checkpoint(var, path, "var"),
        "model.var_ckpt",
        path,
        "['model']",
    )


def test_wrong_depth_names_the_depth_fix(tiny_model_cfg, tmp_path):
    deeper = build_var(_cfg(tiny_model_cfg, None, None, depth=3))
    path = _save(tmp_path, "d3.pth", deeper.state_dict())
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError,
        lambda: load_checkpoint(var, path, "var"),
        "model.var_ckpt",
        path,
        "depth mismatch: file has 3 blocks, config model.depth=2",
        "model.depth=3",
    )


def test_released_depth_suggests_the_model_config(tiny_model_cfg, tmp_path):
    fake = {"class_emb.weight": torch.zeros(1), "blocks.19.attn.q_bias": torch.zeros(1)}
    path = _save(tmp_path, "d20.pth", fake)
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError,
        lambda: load_checkpoint(var, path, "var"),
        "file has 20 blocks, config model.depth=2",
        "use model=var_d20",
    )


def test_shared_adaln_mismatch(tiny_model_cfg, tmp_path):
    shared = build_var(_cfg(tiny_model_cfg, None, None, shared_aln=True))
    path = _save(tmp_path, "shared.pth", shared.state_dict())
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError, lambda: load_checkpoint(var, path, "var"), path, "model.shared_aln=true"
    )


@pytest.mark.parametrize(
    "edit,fragments",
    [
        ("missing", ["1 missing keys", "'head.bias'"]),
        ("extra", ["1 unexpected keys", "'extra.weight'"]),
        ("renamed", ["'head.weight'", "'head.kernel'", "missing", "unexpected"]),
        ("prefixed", ["prefix 'module.'", "strip it"]),
    ],
)
def test_missing_extra_and_renamed_keys(tiny_model_cfg, state_dicts, tmp_path, edit, fragments):
    sd = dict(state_dicts[0])
    if edit == "missing":
        del sd["head.bias"]
    elif edit == "extra":
        sd["extra.weight"] = torch.zeros(2)
    elif edit == "renamed":
        sd["head.kernel"] = sd.pop("head.weight")
    else:
        sd = {f"module.{k}": v for k, v in sd.items()}
    path = _save(tmp_path, f"{edit}.pth", sd)
    var = build_var(tiny_model_cfg)
    _expect(
        CheckpointError,
        lambda: load_checkpoint(var, path, "var"),
        "model.var_ckpt",
        path,
        *fragments,
    )


def test_shape_mismatch_lists_file_and_model_shapes(tiny_model_cfg, files):
    var_path, _ = files
    var = build_var(_cfg(tiny_model_cfg, None, None, vocab_size=32))
    before = {k: v.clone() for k, v in var.state_dict().items()}
    _expect(
        CheckpointError,
        lambda: load_checkpoint(var, var_path, "var"),
        "model.var_ckpt",
        var_path,
        "head.weight: file (16, 128) vs model (32, 128)",
        "check model.vocab_size",
    )
    assert all(torch.equal(before[k], v) for k, v in var.state_dict().items())  # nothing loaded


def test_var_checkpoint_given_as_vqvae_and_back(tiny_model_cfg, files):
    var_path, vae_path = files
    swapped = _cfg(tiny_model_cfg, vae_path, var_path)
    message = _expect(CheckpointError, lambda: build_model(swapped), "model.var_ckpt", vae_path)
    assert "looks like a VQVAE checkpoint passed as model.var_ckpt" in message
    only_vae_wrong = _cfg(tiny_model_cfg, var_path, var_path)
    _expect(
        CheckpointError,
        lambda: build_model(only_vae_wrong),
        "this looks like a VAR checkpoint passed as model.vae_ckpt",
        var_path,
    )


def test_ema_vocab_hit_with_other_scale_count_is_tolerated(tiny_model_cfg, state_dicts, tmp_path):
    sd = dict(state_dicts[1])
    sd["quantize.ema_vocab_hit_SV"] = torch.ones(7, tiny_model_cfg.vocab_size)
    path = _save(tmp_path, "vae_ema.pth", sd)
    vae = build_vqvae(tiny_model_cfg)
    load_checkpoint(vae, path, "vae")
    assert torch.equal(vae.quantize.ema_vocab_hit_SV, torch.ones(7, tiny_model_cfg.vocab_size))
    assert torch.equal(vae.quantize.embedding.weight, sd["quantize.embedding.weight"])


def test_good_files_load_and_unknown_kind_is_rejected(tiny_model_cfg, files):
    var_path, vae_path = files
    var, vae, info = build_model(_cfg(tiny_model_cfg, var_path, vae_path))
    assert info["init"] == "checkpoint" and info["vae_ckpt"] == str(vae_path)
    with pytest.raises(ValueError, match="kind"):
        load_checkpoint(var, var_path, "transformer")

"""Damaged files are named with their fix, and healed where the run layer can heal them.

A shard with flipped bytes is regenerated on resume (zip CRC) or refused by later readers
(recorded sha256); truncated JSON names the file; `overwrite=true` never reads what it replaces;
an image-size mismatch and an unwritable results path are one-line errors.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from ssg_eval.cli import run_cli
from ssg_eval.errors import UnreadableFileError
from ssg_eval.sampling.plan import plan_from_config
from ssg_eval.sampling.runner import sample_run
from ssg_eval.sampling.shards import export_samples_npz, shard_path
from ssg_eval.stages.features import run_features
from ssg_eval.stages.metrics import run_metrics
from tests.faults.conftest import contents, tiny


def flip_bytes(path, offset_from_end: int = 4000, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) - offset_from_end, len(data) - offset_from_end + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def sampled(tmp_path):
    cfg = tiny(tmp_path)
    return cfg, sample_run(cfg)


def test_flipped_bytes_in_a_shard_are_regenerated_on_resume(sampled, reference, caplog,
                                                           monkeypatch):  # fmt: skip
    cfg, directory = sampled
    flip_bytes(shard_path(directory, 1))  # inside the image data: headers still parse
    monkeypatch.setattr(logging.getLogger("ssg_eval"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        sample_run(cfg)
    assert "shard of chunk 1 is invalid" in caplog.text
    assert contents(directory) == reference[0]
    assert (directory / "samples.npz").read_bytes() == reference[1]


def test_flipped_shard_after_sampling_is_refused_by_export_naming_file_and_fix(sampled):
    cfg, directory = sampled
    manifest = json.loads((directory / "manifest.json").read_text())
    flip_bytes(shard_path(directory, 2))
    with pytest.raises(ValueError) as err:
        export_samples_npz(directory, plan_from_config(cfg), shard_sha256=manifest["shards"])
    assert "chunk_00002.npz" in str(err.value) and "rerun the sample stage" in str(err.value)


@pytest.mark.parametrize("name", ["manifest.json", "identity.json"])
def test_truncated_json_names_the_file_and_overwrite_replaces_it(sampled, name, reference):
    cfg, directory = sampled
    path = directory / name
    path.write_text(path.read_text()[:40])
    stage = run_features if name == "manifest.json" else sample_run
    with pytest.raises(UnreadableFileError) as err:
        stage(tiny(directory.parents[1], config_name="config"))
    assert str(path) in str(err.value) and "delete it" in str(err.value)
    sample_run(tiny(directory.parents[1], "overwrite=true"))
    assert contents(directory) == reference[0]
    assert json.loads((directory / "manifest.json").read_text())["samples"]["num_samples"] == 20


def test_image_size_mismatch_with_the_reference_is_refused(sampled, tmp_path):
    _, directory = sampled
    reference = tmp_path / "ref32.npz"
    np.savez(reference, arr_0=np.zeros((10, 32, 32, 3), np.uint8))
    cfg = tiny(tmp_path, f"metrics.reference={reference}", "metrics.reference_name=ref32.npz",
               config_name="config")  # fmt: skip
    with pytest.raises(ValueError, match="image size mismatch: the run's samples are 48x48"):
        run_metrics(cfg)
    assert not (directory / "metrics.json").exists()


def test_unwritable_results_path_and_ctrl_c_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = tiny(blocker / "results")
    with pytest.raises(SystemExit) as exit_info:
        run_cli("ssg-sample", lambda: sample_run(cfg))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and str(blocker) in err[0], err

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        run_cli("ssg-sample", interrupted)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 130 and len(err) == 1
    assert "rerun the same command to resume" in err[0]


def test_metrics_cli_checks_out_before_any_inception_work(tmp_path, capsys):
    from ssg_eval.metrics.cli import main

    samples = tmp_path / "samples.npz"
    np.savez(samples, arr_0=np.zeros((10, 48, 48, 3), np.uint8))
    out = tmp_path / "missing_dir" / "metrics.json"
    code = main([str(samples), str(tmp_path / "no_reference.npz"), "--out", str(out),
                 "--inception-weights", str(tmp_path / "no_weights.pth")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "missing_dir does not exist" in err[0], err

"""The numeric environment of every shard is recorded, and a resume never mixes environments.

Thread count changes CPU pixels (oneDNN splits reductions by thread), device model and library
versions change GPU pixels: a resume in another such environment is refused naming the key and
the fix; a difference that cannot change pixels only warns.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

import ssg_eval.sampling.runner as runner
from ssg_eval.errors import EnvironmentMismatch
from ssg_eval.sampling.environment import (
    check_resume,
    check_same_session,
    environment_path,
    write_shard_environment,
)
from ssg_eval.sampling.runner import run_rank, sample_run
from tests.faults.conftest import contents, tiny
from tests.shard_helpers import SimulatedCrash, crash_after_shards


def test_resume_at_another_thread_count_is_refused_and_pinning_it_resumes(tmp_path, reference):
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(tiny(tmp_path, "runtime.num_threads=1"), 0, 1)
    try:
        with pytest.raises(EnvironmentMismatch) as err:
            sample_run(tiny(tmp_path, "runtime.num_threads=2"))
    finally:
        torch.set_num_threads(1)
    message = str(err.value)
    assert "num_threads: the shards have 1, this process has 2" in message, message
    assert "runtime.num_threads=1" in message and "overwrite=true" in message
    directory = sample_run(tiny(tmp_path, "runtime.num_threads=1"))
    assert contents(directory) == reference[0]
    groups = json.loads((directory / "manifest.json").read_text())["numeric_environments"]
    assert [g["chunks"] for g in groups.values()] == [[0, 1, 2]]
    assert next(iter(groups.values()))["environment"]["num_threads"] == 1


def test_overwrite_regenerates_the_shards_of_another_environment(tmp_path):
    with pytest.raises(SimulatedCrash), crash_after_shards(2):
        run_rank(tiny(tmp_path, "runtime.num_threads=1"), 0, 1)
    try:
        directory = sample_run(tiny(tmp_path, "runtime.num_threads=2", "overwrite=true"))
    finally:
        torch.set_num_threads(1)
    groups = json.loads((directory / "manifest.json").read_text())["numeric_environments"]
    assert [g["chunks"] for g in groups.values()] == [[0, 1, 2]]
    assert next(iter(groups.values()))["environment"]["num_threads"] == 2


def test_a_difference_that_cannot_change_pixels_warns_and_resumes(
    tmp_path, reference, monkeypatch, caplog
):
    with pytest.raises(SimulatedCrash), crash_after_shards(1):
        run_rank(tiny(tmp_path), 0, 1)
    measured = runner.numeric_environment
    monkeypatch.setattr(runner, "numeric_environment",
                        lambda *a: {**measured(*a), "numpy": "0.0-other"})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        directory = sample_run(tiny(tmp_path))
    assert contents(directory) == reference[0]
    assert "numpy: the shards have" in caplog.text and "0.0-other" in caplog.text


def _env(**changes):
    base = {
        "device_type": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "num_threads": 8,
        "torch": "2.14.1",
        "cuda": "13.0",
        "cudnn": 92400,
        "cpu_capability": "AVX2",
    }
    return {**base, **changes}  # fmt: skip


def test_gpu_shards_of_another_device_model_are_refused_threads_are_not(tmp_path):
    (tmp_path / "shards").mkdir()
    for chunk in (0, 1):
        (tmp_path / "shards" / f"chunk_{chunk:05d}.npz").write_bytes(b"shard")
        write_shard_environment(tmp_path, chunk, _env())
    check_resume(tmp_path, 2, [], _env(num_threads=2, cpu_capability="AVX512"))
    with pytest.raises(EnvironmentMismatch, match="device_name: the shards have 'NVIDIA H100"):
        check_resume(tmp_path, 2, [], _env(device_name="NVIDIA A100-SXM4-80GB"))
    with pytest.raises(EnvironmentMismatch, match="cudnn"):
        check_resume(tmp_path, 2, [1], _env(cudnn=91000))  # chunk 0 is kept
    check_resume(tmp_path, 2, [0, 1], _env(cudnn=91000))  # both are regenerated
    environment_path(tmp_path, 1).unlink()  # a record without its shard never counts
    (tmp_path / "shards" / "chunk_00000.npz").unlink()
    check_resume(tmp_path, 2, [], _env(device_name="other"))


def test_ranks_of_one_session_must_share_the_environment():
    check_same_session([_env(), _env(num_threads=1)])
    with pytest.raises(EnvironmentMismatch, match="rank 1 differs from rank 0 in device_name"):
        check_same_session([_env(), _env(device_name="NVIDIA A100")])

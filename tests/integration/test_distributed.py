"""Two real gloo processes under torchrun give the same samples as one process; the CLI contract.

The subprocesses run `python -m ssg_eval.stages.sample` exactly as `make sample NPROC=2` does, on
CPU with one thread per process, and write into a tmp results dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssg_eval.sampling.runner import sample_run
from tests.shard_helpers import shard_contents as _contents

TINY = ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false",
        "runtime.num_threads=1"]  # fmt: skip


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_gloo_processes_match_one_process_and_cli_contract(tmp_path, tiny_cfg):
    two = tmp_path / "two"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ssg_eval.stages.sample",
           *TINY, f"paths.results={two}"]  # fmt: skip
    proc = _run(cmd, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    directory = two / "runs" / "tiny_cfg_s0"
    assert proc.stdout.strip().splitlines() == [f"ssg-sample: outputs in {directory}"]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["world_size"] == 2

    # One intra-op thread like each torchrun worker: on CPU the thread count changes how GEMMs
    # split their reductions, hence the float rounding (like the batch size does).
    threads = torch.get_num_threads()
    try:
        one = sample_run(tiny_cfg("runtime.measure_latency=false", "runtime.num_threads=1",
                                  f"paths.results={tmp_path / 'one'}"))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert _contents(directory) == _contents(one) and len(_contents(one)) == 3
    assert (directory / "samples.npz").read_bytes() == (one / "samples.npz").read_bytes()
    assert manifest["config_hash"] == json.loads((one / "manifest.json").read_text())["config_hash"]

    module = [sys.executable, "-m", "ssg_eval.stages.sample", *TINY, f"paths.results={two}"]
    script = str(Path(sys.executable).with_name("ssg-sample"))  # the console script entry
    dry = _run([script, *TINY, f"paths.results={two}", "dry_run=true", "launch.nproc_per_node=2"],
               tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-4000:]
    assert "shards done: 3/3" in dry.stdout and "rank 1: chunks [1] (1 done)" in dry.stdout

    clash = _run([*module, "guidance.cfg_ramp.scale=3.0"], tmp_path)
    assert clash.returncode != 0
    last = clash.stderr.strip().splitlines()[-1]
    assert last.startswith("ssg-sample: error: run dir") and "overwrite=true" in last
    assert manifest["config_hash"] in last


def test_runtime_helpers_without_torchrun(monkeypatch):
    from ssg_eval.errors import ConfigError
    from ssg_eval.utils import dist
    from tests.conftest import compose_config

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert dist.dist_env() == (0, 1, 0)
    assert not dist.init_process_group_if_needed("auto", torch.device("cpu"))
    assert dist.gather_objects({"a": 1}) == [{"a": 1}]
    dist.barrier()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist.dist_env() == (1, 2, 1)
    with pytest.raises(ConfigError, match="nccl"):
        dist.init_process_group_if_needed("nccl", torch.device("cpu"))
    assert dist.resolve_device("cpu") == torch.device("cpu")
    assert dist.autocast_dtype("float32") is None
    assert dist.autocast_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ConfigError):
        dist.autocast_dtype("float8")
    cfg = compose_config(["runtime=fast", f"runtime.num_threads={torch.get_num_threads()}"])
    try:
        applied = dist.setup_runtime(cfg.runtime)
        assert applied["use_tf32"] and torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and applied["cudnn_benchmark"]
    finally:
        applied = dist.setup_runtime(compose_config([]).runtime)
    assert not torch.backends.cudnn.allow_tf32 and applied["cudnn_deterministic"]
    assert applied["float32_matmul_precision"] == "highest"


def test_features_on_two_gloo_ranks_equal_one_process_byte_for_byte(tmp_path, tiny_cfg):
    # Rank r extracts the shards of chunks r, r+2, ...; rank 0 merges: same features.npz bytes.
    import shutil

    from ssg_eval.stages.features import run_features
    from tests.inception_helpers import random_weights_path

    overrides = [*TINY[:4], f"metrics.inception_weights={random_weights_path()}",
                 "metrics.feature_batch_size=3", "sampler.num_samples=10",
                 "sampler.chunk_size=4"]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny_cfg(*overrides, f"paths.results={tmp_path / 'one'}", config_name="config")
        one = sample_run(cfg)
        shutil.copytree(tmp_path / "one", tmp_path / "two")
        run_features(cfg)
    finally:
        torch.set_num_threads(threads)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = _run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m",
                 "ssg_eval.stages.features", *overrides, f"paths.results={tmp_path / 'two'}"],
                tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = tmp_path / "two" / "runs" / one.name
    assert (two / "features.npz").read_bytes() == (one / "features.npz").read_bytes()
    assert json.loads((two / "features.json").read_text()) == json.loads(
        (one / "features.json").read_text()
    )
    assert len(list((two / "features_cache").glob("*.npz"))) == 3

"""Multi-node sampling: the torchrun command per node, the rank mapping, and 2 nodes x 2 processes.

The slow test simulates two nodes on this machine: two torchrun invocations built by
`torchrun_command` (`launch.nnodes=2`, `launch.node_rank=0/1`) join one c10d rendezvous on
127.0.0.1, run 4 gloo workers on CPU, and must write the same shards and `samples.npz` bytes as a
single process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ssg_eval.errors import ConfigError
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.finalize import finalize_run
from ssg_eval.sampling.plan import plan_from_config
from ssg_eval.sampling.runner import run_rank, sample_run
from ssg_eval.utils import dist
from ssg_eval.validation import validate
from tests.conftest import compose_config
from tests.shard_helpers import shard_contents as contents

TINY = ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false",
        "runtime.num_threads=1"]  # fmt: skip


def launch(**values):
    base = {"nproc_per_node": 2, "nnodes": 1, "rdzv_endpoint": None, "rdzv_port": 29500,
            "rdzv_id": None, "node_rank": None}  # fmt: skip
    return OmegaConf.create({**base, **values})


def test_single_node_command_is_standalone():
    cmd = dist.torchrun_command(launch(), ["model=tiny"], "run", env={})
    assert Path(cmd[0]).name == "torchrun"
    stage = ["-m", "ssg_eval.stages.sample", "model=tiny"]
    assert cmd[1:] == ["--standalone", "--nproc_per_node=2", *stage]


def test_multi_node_command_under_slurm_uses_first_host_job_id_and_node_id():
    env = {"SLURM_JOB_NODELIST": "gpu[012-015,020]", "SLURM_JOB_ID": "4242", "SLURM_NODEID": "1"}
    cmd = dist.torchrun_command(launch(nnodes=4, nproc_per_node=8), ["x=1"], "run", env=env)
    assert cmd[1:] == ["--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d",
                       "--rdzv_endpoint=gpu012:29500", "--rdzv_id=4242_run", "--node_rank=1",
                       "-m", "ssg_eval.stages.sample", "x=1"]  # fmt: skip
    assert not dist.is_primary_node(launch(nnodes=4), env)
    assert dist.is_primary_node(launch(nnodes=4), {**env, "SLURM_NODEID": "0"})
    assert dist.is_primary_node(launch(nnodes=1), env)  # one node: always the primary


def test_explicit_endpoint_wins_and_missing_rendezvous_is_one_clear_error():
    cfg = launch(nnodes=2, rdzv_endpoint="10.0.0.5:1234", rdzv_id="abc", node_rank=0)
    cmd = dist.torchrun_command(cfg, [], "run", env={"SLURM_JOB_NODELIST": "n1"})
    assert "--rdzv_endpoint=10.0.0.5:1234" in cmd and "--rdzv_id=abc" in cmd
    assert "--node_rank=0" in cmd
    with pytest.raises(ConfigError, match=r"launch.nnodes=2 needs a rendezvous.*rdzv_endpoint"):
        dist.torchrun_command(launch(nnodes=2), [], "run", env={})


@pytest.mark.parametrize(
    "nodelist, first",
    [("node7", "node7"), ("gpu[003-005]", "gpu003"), ("a[1,4-6],b2", "a1"), ("x-1,x-2", "x-1")],
)
def test_first_slurm_host(nodelist, first):
    assert dist.first_slurm_host(nodelist) == first


@pytest.mark.parametrize(
    "override, match",
    [("launch.nnodes=0", "launch.nnodes=0 must be >= 1"),
     ("launch.node_rank=2", r"launch.node_rank=2 must be in \[0, launch.nnodes=2\)")],
)  # fmt: skip
def test_launch_validation(tiny_cfg, override, match):
    with pytest.raises(ConfigError, match=match):
        validate(tiny_cfg("launch.nnodes=2", override))


def test_slurm_launcher_spans_launch_nnodes_with_one_task_per_node():
    cfg = compose_config(
        ["hydra/launcher=slurm", "launch.nnodes=3", "launch.nproc_per_node=8",
         "experiment=beta_sweep"],
        config_name="config", return_hydra_config=True,
    )  # fmt: skip
    assert cfg.hydra.launcher.nodes == 3 and cfg.hydra.launcher.tasks_per_node == 1
    assert cfg.hydra.launcher.gpus_per_node == 8


def single_process_run(tiny_cfg, results: Path) -> Path:
    """The reference: one process, one intra-op thread (like each torchrun worker)."""
    threads = torch.get_num_threads()
    try:
        return sample_run(tiny_cfg("runtime.measure_latency=false", "runtime.num_threads=1",
                                   f"paths.results={results}"))  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def test_two_nodes_by_two_ranks_mapping_gives_single_process_bytes(tiny_cfg, tmp_path, monkeypatch):
    """torchrun's global ranks for 2 nodes x 2 processes, run as a loop (no torch.distributed)."""
    nnodes, nproc = 2, 2
    cfg = tiny_cfg(*TINY[3:], f"paths.results={tmp_path / 'four'}")
    stats = []
    for node_rank in range(nnodes):
        for local_rank in range(nproc):
            rank = node_rank * nproc + local_rank
            env = {"RANK": rank, "WORLD_SIZE": nnodes * nproc, "LOCAL_RANK": local_rank}
            for key, value in env.items():
                monkeypatch.setenv(key, str(value))
            assert dist.dist_env() == (rank, 4, local_rank)
            stats.append(run_rank(cfg, *dist.dist_env()[:2]))
    assert [s["chunks_assigned"] for s in stats] == [1, 1, 1, 0]  # 3 chunks over 4 ranks
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key)
    directory = run_dir(cfg)
    finalize_run(cfg, directory, plan_from_config(cfg), stats)
    one = single_process_run(tiny_cfg, tmp_path / "one")
    assert contents(directory) == contents(one) and len(contents(one)) == 3
    assert (directory / "samples.npz").read_bytes() == (one / "samples.npz").read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_simulated_nodes_by_two_gloo_processes_match_one_process(tiny_cfg, tmp_path):
    results = tmp_path / "nodes"
    overrides = [*TINY, f"paths.results={results}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    endpoint = f"127.0.0.1:{free_port()}"
    procs = []
    for node_rank in range(2):
        cfg = launch(nnodes=2, nproc_per_node=2, rdzv_endpoint=endpoint, rdzv_id="two_nodes",
                     node_rank=node_rank)  # fmt: skip
        cmd = dist.torchrun_command(cfg, overrides, "tiny", env={})
        assert f"--node_rank={node_rank}" in cmd and "--nnodes=2" in cmd
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-4000:]
    directory = results / "runs" / "tiny_cfg_s0"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["world_size"] == 4
    one = single_process_run(tiny_cfg, tmp_path / "one")
    assert contents(directory) == contents(one) and len(contents(one)) == 3
    assert (directory / "samples.npz").read_bytes() == (one / "samples.npz").read_bytes()
    assert manifest["config_hash"] == json.loads((one / "manifest.json").read_text())["config_hash"]

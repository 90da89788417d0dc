"""Dead ends of the command line, tried through the real console scripts (python -m ...).

An unusable results path (a file in the way, a read-only filesystem, a file-size limit), a run name
that leaves the results folder, an absurd N, a huge dry-run plan and a plain multirun sweep: each
either works or stops with one line and exit 2, before Hydra or a stage writes anything.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false"]


def stage(name: str, *args: str, preexec=None, prefix=()) -> subprocess.CompletedProcess:
    command = [*prefix, sys.executable, "-m", f"ssg_eval.stages.{name}", *args]
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        preexec_fn=preexec,
    )


def one_line(proc: subprocess.CompletedProcess, prog: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr[-3000:]
    return lines[0]


def test_results_path_that_is_a_file_is_one_line_before_hydra(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = one_line(stage("sample", *TINY, f"paths.results={blocker / 'r'}"), "ssg-sample")
    assert str(blocker) in line and "paths.results" in line


def _read_only_mount_works(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {where}"],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


def _in_private_mounts(script: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a private mount namespace (its mounts vanish with it), from the repo."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )


def test_read_only_results_folder_is_one_line_before_hydra(tmp_path):
    """Tests run as root, whom chmod does not stop: a read-only tmpfs in a private namespace."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if not _read_only_mount_works(mount):
        pytest.skip("no private mount namespace here (unshare -m / mount tmpfs not permitted)")
    script = (
        f"mount -t tmpfs -o ro tmpfs {mount} && exec {sys.executable} -m "
        f"ssg_eval.stages.pipeline {' '.join(TINY)} paths.results={mount / 'results'}"
    )
    proc = _in_private_mounts(script)
    line = one_line(proc, "ssg-pipeline")
    assert str(mount) in line and "Read-only file system" in line


def test_file_size_limit_is_one_line_naming_the_file(tmp_path):
    """RLIMIT_FSIZE: the log file and identity.json fail; no logging traceback, the file named."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    proc = stage("sample", *TINY, f"paths.results={tmp_path}", preexec=limit)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ssg-sample: error: ") and "identity.json" in last and "ulimit" in last


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".."])
def test_run_name_must_stay_inside_the_results_folder(tmp_path, name):
    results = tmp_path / "deep" / "results"
    line = one_line(stage("sample", *TINY, f"paths.results={results}", f"run_name={name}"),
                    "ssg-sample")  # fmt: skip
    assert "run_name=" in line and "not a folder name" in line
    assert not (tmp_path / "escape").exists() and not (tmp_path / "deep").exists()


def test_absurd_num_samples_is_one_line_and_a_huge_plan_stays_lazy(tmp_path, capsys):
    def cap_memory() -> None:  # without the check the base version grew to 21.7 GB
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    huge = stage("sample", *TINY, "sampler.num_samples=10000000000", "dry_run=true",
                 f"paths.results={tmp_path}", preexec=cap_memory)  # fmt: skip
    assert "sampler.num_samples=10000000000 is beyond the limit" in one_line(huge, "ssg-sample")
    from ssg_eval.stages.sample import print_sample_plan
    from tests.faults.conftest import tiny

    cfg = tiny(tmp_path, "sampler.num_samples=100000000", "dry_run=true")
    tracemalloc.start()
    print_sample_plan(cfg, 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out = capsys.readouterr().out
    assert peak < 20 << 20, peak  # a listed plan of 12.5M chunks needed ~1 GB
    assert len(out) < 1000 and "rank 1: chunks [1, 3, 5, ..., 12499999] (6250000 chunks)" in out
    assert not tmp_path.joinpath("runs").exists()


def test_plain_multirun_sweep_gets_one_run_per_point(tmp_path):
    """`-m guidance.ssg.beta=0,0.5` without a run_name: two runs, named by the swept key."""
    proc = stage("sample", "-m", *TINY, "guidance=cfg_ssg", "guidance.ssg.beta=0,0.5",
                 "sampler.num_samples=10", f"paths.results={tmp_path}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["tiny_cfg_ssg_s0_beta0.0", "tiny_cfg_ssg_s0_beta0.5"]
    for run in runs:
        assert (tmp_path / "runs" / run / "manifest.json").is_file()


def test_sweep_run_names_follow_the_template():
    from ssg_eval.utils.launch import sweep_run_name

    base = "${model.name}_${guidance.name}_s${sampler.seed}"
    assert sweep_run_name(base, ["model=a,b", "guidance=cfg,cfg_ssg", "sampler.seed=0,1"]) is None
    assert sweep_run_name(base, ["guidance.ssg.beta=0,1", "runtime=default,fast"]) == (
        "run_name='" + base + "_beta${guidance.ssg.beta}_${hydra:runtime.choices.runtime}'"
    )
    assert sweep_run_name(base, ["guidance.ssg.beta=0,1", "run_name=mine"]) is None
    sweep = "${model.name}_ssg_b${guidance.ssg.beta}_s${sampler.seed}"  # experiment=beta_sweep
    assert sweep_run_name(sweep, ["guidance.ssg.beta=0,1"]) is None


def test_a_full_disk_is_one_line_naming_the_file_and_the_run_resumes_once_freed(tmp_path):
    """A 120 kB tmpfs holds the first tiny shard, not the second: ENOSPC is one line naming the
    shard, nothing partial stays, and the same command resumes once the disk is larger."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not _read_only_mount_works(mount):
        pytest.skip("no private mount namespace here (unshare -m / mount tmpfs not permitted)")
    command = (f"{sys.executable} -m ssg_eval.stages.sample {' '.join(TINY)} "
               f"paths.results={mount / 'results'}")  # fmt: skip
    run = mount / "results" / "runs" / "tiny_cfg_s0"
    script = (
        f"mount -t tmpfs -o size=120k tmpfs {mount} || exit 90; "
        f"{command} 2> {tmp_path / 'full.err'}; echo $? > {tmp_path / 'full.rc'}; "
        f"find {run} -name '*.npz*' | sort > {tmp_path / 'left.txt'}; "
        f"mount -o remount,size=4m {mount} && {command} 2> {tmp_path / 'freed.err'} && "
        f"cp {run / 'samples.npz'} {tmp_path / 'resumed.npz'}"
    )
    proc = _in_private_mounts(script)
    full = (tmp_path / "full.err").read_text()
    assert (tmp_path / "full.rc").read_text().strip() == "2", full[-3000:]
    assert "Traceback" not in full and "Logging error" not in full, full[-3000:]
    last = full.strip().splitlines()[-1]
    assert last.startswith("ssg-sample: error: [Errno 28] cannot write ")
    assert "chunk_00001.npz" in last and "no space left" in last
    assert (tmp_path / "left.txt").read_text().split() == [str(run / "shards/chunk_00000.npz")]
    assert proc.returncode == 0, (tmp_path / "freed.err").read_text()[-3000:]
    reference = stage("sample", *TINY, f"paths.results={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = tmp_path / "reference" / "runs" / "tiny_cfg_s0" / "samples.npz"
    assert (tmp_path / "resumed.npz").read_bytes() == expected.read_bytes()

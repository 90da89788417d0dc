"""One writer per run dir, and one atomic writer that two processes can share.

A forked child samples slowly while the parent tries the same run: refused with the holder's
host and pid, `overwrite=true` included; the child's result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ssg_eval.sampling.overlap as overlap
from ssg_eval.errors import RunLockedError
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.runner import sample_run
from ssg_eval.stages.sample import sample_stage
from tests.faults.conftest import contents, fork_child, in_child, tiny

REPO = Path(__file__).resolve().parents[2]


def test_second_process_is_refused_and_first_result_is_intact(tmp_path, reference, monkeypatch):
    cfg = tiny(tmp_path)
    holder = tmp_path / "locks" / f"{cfg.run_name}.lock.holder.json"
    real = overlap.generate_chunk  # what the runner's chunk loop calls on CPU

    def slow(*args):
        time.sleep(1.0)
        return real(*args)

    def first():  # the stage function behind `ssg-sample` / `python -m ssg_eval.stages.sample`
        monkeypatch.setattr(overlap, "generate_chunk", slow)
        sample_stage(cfg)

    pid = fork_child(first)
    try:
        deadline = time.monotonic() + 30
        while not holder.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for overrides in ((), ("overwrite=true", "guidance.cfg_ramp.scale=3.0")):
            with pytest.raises(RunLockedError) as err:
                sample_run(tiny(tmp_path, *overrides))
            message = str(err.value)
            assert f"pid {pid}" in message and socket.gethostname() in message, message
            assert "since" in message and str(holder.with_suffix("").with_suffix("")) in message
            assert "\n" not in message
    finally:
        status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    directory = run_dir(cfg)
    assert contents(directory) == reference[0]
    assert (directory / "samples.npz").read_bytes() == reference[1]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["config"]["guidance"]["cfg_ramp"]["scale"] == 1.5
    assert not holder.exists()  # released on exit
    sample_run(cfg)  # the lock is free again: a rerun is a no-op
    assert (directory / "samples.npz").read_bytes() == reference[1]


WRITER = """
import json, sys
from ssg_eval.runs.io import atomic_write_json
path, name = sys.argv[1], sys.argv[2]
bad = 0
for i in range(400):
    atomic_write_json(path, {"writer": name, "i": i, "payload": "x" * 4000})
    try:
        json.loads(open(path).read())
    except (ValueError, FileNotFoundError):
        bad += 1
print(bad)
"""


def test_two_processes_times_400_atomic_writes_leave_no_corrupt_file(tmp_path):
    target = tmp_path / "shared.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(target), name], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "0", "a reader saw a missing or corrupt file"
    payload = json.loads(target.read_text())
    assert payload["i"] == 399 and payload["payload"] == "x" * 4000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.json"]


def test_in_child_reports_a_failing_child():
    """`in_child` reports a failing child (so the crash tests cannot pass vacuously)."""

    def fail():
        raise RuntimeError("boom")

    status = in_child(fail)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1

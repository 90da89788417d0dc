"""Every benchmark runs in quick mode (so none can rot) and writes its JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name", ["bench_processors", "bench_sampling", "bench_metrics", "bench_features"]
)
def test_benchmark_quick_mode(name, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2", SSG_EVAL_RESULTS=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--only", name],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [
        json.loads(line)
        for path in (tmp_path / "bench").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert lines, f"{name} wrote no JSON line under {tmp_path / 'bench'}"

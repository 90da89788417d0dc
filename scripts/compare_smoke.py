"""Compare two `make smoke` result trees: shard and samples.npz bytes, metrics.json values.

`python scripts/compare_smoke.py OLD/results/smoke NEW/results/smoke` prints, for the runs both
trees hold, how many shard files, shard arrays, samples.npz files and common metric values are
identical, and lists every difference (a restructure must leave all of them byte-identical at a
fixed thread count, e.g. OMP_NUM_THREADS=2).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_value(a: object, b: object) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a == b or both_nan


def compare(old: Path, new: Path) -> tuple[dict[str, list[int]], list[str]]:
    """`{kind: [identical, total]}` and the differences, over the runs of `old`."""
    counts = {"shard files": [0, 0], "shard arrays": [0, 0], "samples.npz": [0, 0],
              "metric values": [0, 0]}  # fmt: skip
    diffs: list[str] = []
    for run_a in sorted(p for p in (old / "runs").iterdir() if p.is_dir()):
        run_b = new / "runs" / run_a.name
        for shard in sorted((run_a / "shards").glob("chunk_*.npz")):
            other = run_b / "shards" / shard.name
            counts["shard files"][1] += 1
            counts["shard arrays"][1] += 1
            if other.is_file() and _sha(shard) == _sha(other):
                counts["shard files"][0] += 1
            else:
                diffs.append(f"{run_a.name}/{shard.name}: file bytes")
            with np.load(shard) as x, np.load(other) as y:
                keys = ("images", "labels", "indices")
                if all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in keys):
                    counts["shard arrays"][0] += 1
                else:
                    diffs.append(f"{run_a.name}/{shard.name}: arrays")
        if (run_a / "samples.npz").is_file():
            counts["samples.npz"][1] += 1
            same = (run_b / "samples.npz").is_file() and _sha(run_a / "samples.npz") == _sha(
                run_b / "samples.npz"
            )
            counts["samples.npz"][0] += same
            if not same:
                diffs.append(f"{run_a.name}/samples.npz")
        values_a = json.loads((run_a / "metrics.json").read_text())["metrics"]
        values_b = json.loads((run_b / "metrics.json").read_text())["metrics"]
        for key in sorted(set(values_a) & set(values_b)):
            counts["metric values"][1] += 1
            if _same_value(values_a[key], values_b[key]):
                counts["metric values"][0] += 1
            else:
                diffs.append(f"{run_a.name} {key}: {values_a[key]!r} vs {values_b[key]!r}")
    return counts, diffs


if __name__ == "__main__":
    counts, diffs = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    for kind, (same, total) in counts.items():
        print(f"{kind}: {same}/{total} identical")
    print("differences:", diffs or "none")
    sys.exit(1 if diffs else 0)

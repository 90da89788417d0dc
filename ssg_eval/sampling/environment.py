"""The numeric environment of each shard, and the resume check that keeps a run in one environment.

Next to every shard, `shards/chunk_<c>.env.json` records what besides the config can change its
pixels: device, torch/CUDA/cuDNN versions, CPU instruction set and thread count, deterministic and
precision flags. A resume compares the finished shards' records with this process and refuses a
difference that can change pixels (`PIXEL_KEYS`), or warns about one that cannot. This module
reads and writes these records only; it generates nothing.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssg_eval.errors import EnvironmentMismatch
from ssg_eval.runs.io import atomic_write_json
from ssg_eval.runs.records import read_record
from ssg_eval.utils.logging import get_logger

__all__ = [
    "PIXEL_KEYS",
    "EnvironmentMismatch",
    "check_resume",
    "check_same_session",
    "environment_path",
    "numeric_environment",
    "shard_environments",
    "write_shard_environment",
]

log = get_logger(__name__)

_PRECISION = ("autocast_dtype", "decode_dtype", "float32_matmul_precision",
              "deterministic_algorithms")  # fmt: skip
# Keys whose difference can change a shard's pixels, by the device type that generated it. Every
# other recorded key (Python and numpy versions; on CPU the CUDA libraries and their flags; on a
# GPU the CPU's thread count and instruction set) only warns.
PIXEL_KEYS: dict[str, tuple[str, ...]] = {
    # oneDNN picks kernels by instruction set and splits reductions by thread count.
    "cpu": ("device_type", "torch", "cpu_capability", "num_threads", *_PRECISION),
    "cuda": ("device_type", "device_name", "torch", "cuda", "cudnn", "use_tf32",
             "cudnn_benchmark", "cudnn_deterministic", *_PRECISION),
}  # fmt: skip
_FIX = {
    "num_threads": "pin it with runtime.num_threads={have}",
    "device_name": "resume on the same device model",
    "device_type": "resume with runtime.device={have}",
}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numeric_environment(device: torch.device, runtime: dict[str, Any]) -> dict[str, Any]:
    """What besides the config decides this process's pixels (JSON-friendly).

    Args:
        device: the sampling device.
        runtime: the applied runtime switches (`utils.dist.setup_runtime`'s result).
    """
    cuda = device.type == "cuda"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{key: runtime.get(key) for key in ("use_tf32", "cudnn_benchmark", "cudnn_deterministic",
                                             "autocast_dtype", "decode_dtype",
                                             "float32_matmul_precision")},
    }  # fmt: skip


def environment_path(run_dir: str | Path, chunk: int) -> Path:
    """`<run_dir>/shards/chunk_{chunk:05d}.env.json`, the shard's environment record."""
    return Path(run_dir) / "shards" / f"chunk_{chunk:05d}.env.json"


def write_shard_environment(run_dir: str | Path, chunk: int, env: dict[str, Any]) -> Path:
    """Record `env` for `chunk` atomically; written before the shard itself."""
    return atomic_write_json(environment_path(run_dir, chunk), env)


def _digest(env: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:12]


def _shards_on_disk(run_dir: Path, limit: int) -> set[int]:
    stems = (p.stem.removeprefix("chunk_") for p in (run_dir / "shards").glob("chunk_*.npz"))
    return {int(stem) for stem in stems if stem.isdigit() and int(stem) < limit}


def shard_environments(run_dir: str | Path, num_chunks: int) -> dict[str, Any]:
    """`{env digest: {"environment": env, "chunks": [...]}}` of the shards' records (manifest).

    Only chunks whose shard exists count; shards without a record (sampled before records
    existed) are listed under `"unrecorded"`.
    """
    run_dir = Path(run_dir)
    groups: dict[str, Any] = {}
    for chunk in sorted(_shards_on_disk(run_dir, num_chunks)):  # records of existing shards only
        path = environment_path(run_dir, chunk)
        env = read_record(path, "shard_environment") if path.is_file() else None
        key = "unrecorded" if env is None else _digest(env)
        groups.setdefault(key, {"environment": env, "chunks": []})["chunks"].append(chunk)
    return groups


def _differences(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[list, list]:
    pixel = PIXEL_KEYS.get(str(recorded.get("device_type")), PIXEL_KEYS["cuda"])
    keys = sorted(set(recorded) | set(current))
    differ = [k for k in keys if recorded.get(k) != current.get(k)]
    return [k for k in differ if k in pixel], [k for k in differ if k not in pixel]


def _wording(keys: list[str], have: dict, want: dict, who=("the shards have", "this process has")):
    return "; ".join(f"{k}: {who[0]} {have.get(k)!r}, {who[1]} {want.get(k)!r}" for k in keys)


def check_resume(
    run_dir: str | Path,
    num_chunks: int,
    regenerate: Iterable[int],
    env: dict[str, Any],
    *,
    overwrite: bool = False,
) -> list[int]:
    """Refuse to resume next to finished shards of another pixel-relevant environment.

    Args:
        run_dir: the run directory.
        num_chunks: the plan's chunk count (shards beyond it are ignored).
        regenerate: chunks this process will (re)generate; their old records do not count.
        env: this process's `numeric_environment`.
        overwrite: return those shards for regeneration (with a warning) instead of refusing.

    Returns:
        The chunks to regenerate in this environment (empty unless `overwrite`).

    Raises:
        EnvironmentMismatch: a kept shard was generated where a `PIXEL_KEYS` key differed
            (names each key, both values, the chunks and the fix).
    """
    skip, stale = set(regenerate), []
    for digest, group in shard_environments(run_dir, num_chunks).items():
        chunks = [c for c in group["chunks"] if c not in skip]
        if not chunks:
            continue
        if digest == "unrecorded":
            log.warning("%d shard(s) of %s carry no environment record (sampled before records "
                        "existed); their numeric environment cannot be checked", len(chunks),
                        run_dir)  # fmt: skip
            continue
        pixel, other = _differences(group["environment"], env)
        if pixel and overwrite:
            log.warning("overwrite=true: regenerating %d shard(s) of %s made in another numeric "
                        "environment (%s)", len(chunks), run_dir, ", ".join(pixel))  # fmt: skip
            stale += chunks
            continue
        if pixel:
            fixes = [_FIX[k].format(have=group["environment"].get(k)) for k in pixel if k in _FIX]
            raise EnvironmentMismatch(
                f"run dir {run_dir}: {len(chunks)} finished shard(s) (chunks {chunks[:5]}"
                f"{' ...' if len(chunks) > 5 else ''}) come from another numeric environment: "
                + _wording(pixel, group["environment"], env)
                + "; resuming would mix shards whose pixels may differ. Resume in the recorded "
                "environment"
                + (f" ({', '.join(fixes)})" if fixes else "")
                + ", regenerate them here with overwrite=true, or choose a new run_name=..."
            )
        if other:
            log.warning("resuming %s next to shards of another environment that does not "
                        "change pixels: %s", run_dir,
                        _wording(other, group["environment"], env))  # fmt: skip
    return stale


def check_same_session(envs: list[dict[str, Any]]) -> None:
    """Refuse a distributed session whose ranks differ in a pixel-relevant key (rank 0 first).

    Raises:
        EnvironmentMismatch: naming the first differing rank and keys.
    """
    for rank, env in enumerate(envs[1:], start=1):
        pixel, _ = _differences(envs[0], env)
        if pixel:
            raise EnvironmentMismatch(
                f"rank {rank} differs from rank 0 in "
                + _wording(pixel, envs[0], env, ("rank 0 has", f"rank {rank} has"))
                + "; its shards would not be bit-equal to rank 0's. Run every rank on the same "
                "device model and libraries, with the same runtime.num_threads"
            )

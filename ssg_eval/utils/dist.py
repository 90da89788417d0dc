"""Runtime switches, device choice and the thin torch.distributed layer used by the sample stage.

Settings are applied only when `setup_runtime` is called (never at import time) and the rank and
world size are read from the torchrun environment by the entry point; this module holds no
sampling logic and is a no-op wrapper when the process is not distributed.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist

from ssg_eval.errors import ConfigError

__all__ = [
    "autocast_dtype",
    "barrier",
    "destroy",
    "dist_env",
    "gather_objects",
    "init_process_group_if_needed",
    "is_distributed",
    "is_primary_node",
    "resolve_device",
    "setup_runtime",
    "torchrun_command",
]

_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Ranks whose chunks are already done wait at the final barrier for the others (resume), so the
# collective timeout must cover a whole sampling job, not the 10-30 min torch default.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=24)


def setup_runtime(runtime_cfg: Any) -> dict[str, Any]:
    """Apply the runtime switches once (TF32, cuDNN flags, CPU threads) and report them.

    TF32 is set through the legacy flags for both matmul and cuDNN (`allow_tf32`), because
    PyTorch's default for cuDNN convolutions is TF32 *on*; `use_tf32=false` turns both off.

    Args:
        runtime_cfg: the `runtime` config node.

    Returns:
        The applied settings (JSON-friendly) for the manifest.
    """
    use_tf32 = bool(runtime_cfg.use_tf32)
    torch.backends.cuda.matmul.allow_tf32 = use_tf32
    torch.backends.cudnn.allow_tf32 = use_tf32
    torch.backends.cudnn.benchmark = bool(runtime_cfg.cudnn_benchmark)
    torch.backends.cudnn.deterministic = bool(runtime_cfg.cudnn_deterministic)
    if runtime_cfg.num_threads is not None:
        if int(runtime_cfg.num_threads) < 1:
            raise ConfigError(
                f"runtime.num_threads={runtime_cfg.num_threads} must be >= 1 or null (leave as is)"
            )
        torch.set_num_threads(int(runtime_cfg.num_threads))
    return {
        "use_tf32": use_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "num_threads": torch.get_num_threads(),
        "autocast_dtype": str(runtime_cfg.autocast_dtype),
        "decode_dtype": str(runtime_cfg.decode_dtype),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def dist_env() -> tuple[int, int, int]:
    """`(rank, world_size, local_rank)` from the torchrun environment; `(0, 1, 0)` without it."""
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world_size, local_rank


def resolve_device(name: str) -> torch.device:
    """The sampling device for a `runtime.device` value (`auto`, `cpu`, `cuda`).

    Under torchrun a CUDA device is `cuda:<LOCAL_RANK>`.

    Raises:
        ConfigError: `cuda` was requested but CUDA is not available.
    """
    name = str(name)
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise ConfigError(f"runtime.device={name!r} is not valid; expected auto, cpu or cuda")
    if not torch.cuda.is_available():
        if name == "cuda":
            raise ConfigError(
                "runtime.device=cuda but CUDA is not available; use runtime.device=cpu or auto"
            )
        return torch.device("cpu")
    local_rank = dist_env()[2]
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def autocast_dtype(name: str) -> torch.dtype | None:
    """`runtime.autocast_dtype` / `runtime.decode_dtype` name -> dtype; None for float32 (off)."""
    if name not in _DTYPES:
        raise ConfigError(f"dtype {name!r} is not valid; expected one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def init_process_group_if_needed(backend: str, device: torch.device | None = None) -> bool:
    """Initialise the default process group when launched by torchrun with WORLD_SIZE > 1.

    Args:
        backend: `runtime.dist_backend`: `auto` (nccl for a CUDA device, gloo otherwise),
            `nccl` or `gloo`.
        device: the sampling device (decides `auto` and pins the CUDA device).

    Returns:
        True when a process group is (now) initialised.

    Raises:
        ConfigError: `nccl` was requested for a CPU device.
    """
    rank, world_size, _ = dist_env()
    if world_size <= 1:
        return False
    if is_distributed():
        return True
    on_cuda = device is not None and device.type == "cuda"
    chosen = ("nccl" if on_cuda else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and not on_cuda:
        raise ConfigError(
            "runtime.dist_backend=nccl needs a CUDA device; use dist_backend=gloo or auto on CPU"
        )
    if on_cuda:
        torch.cuda.set_device(device)
    torch_dist.init_process_group(
        backend=chosen,
        rank=rank,
        world_size=world_size,
        timeout=PROCESS_GROUP_TIMEOUT,
        device_id=device if on_cuda else None,
    )
    return True


def barrier() -> None:
    """Block until every rank arrives (no-op when not distributed)."""
    if is_distributed():
        torch_dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (`[obj]` when not distributed)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def destroy() -> None:
    """Destroy the default process group if one exists."""
    if is_distributed():
        torch_dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# torchrun command (single node: --standalone; several nodes: c10d rendezvous, e.g. under Slurm)
# ----------------------------------------------------------------------------------------------
def first_slurm_host(nodelist: str) -> str:
    """First host name of a Slurm node list (`gpu[012-015,020],cpu3` -> `gpu012`).

    Raises:
        ConfigError: the list is empty or not in Slurm's `prefix[ranges]` syntax.
    """
    match = re.match(r"\s*([^,\[\s]+)(?:\[([^\]]+)\])?", nodelist or "")
    if not match:
        raise ConfigError(
            f"SLURM_JOB_NODELIST={nodelist!r} is not a Slurm node list; run under Slurm or set "
            "launch.rdzv_endpoint=HOST:PORT"
        )
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def _slurm_int(env: Mapping[str, str], key: str) -> int | None:
    return int(env[key]) if env.get(key, "").strip().isdigit() else None


def torchrun_command(
    launch_cfg: Any, overrides: list[str], run_name: str, env: Mapping[str, str] | None = None
) -> list[str]:
    """The torchrun command that runs the sample stage of one run on this node.

    One node: `torchrun --standalone --nproc_per_node=P`. Several nodes (`launch.nnodes > 1`):
    one torchrun per node joining a c10d rendezvous at `launch.rdzv_endpoint` (default: the
    first host of the Slurm allocation, port `launch.rdzv_port`) under `launch.rdzv_id`
    (default: `<$SLURM_JOB_ID>_<run name>`, else the run name: a suite's successive runs in one
    allocation never share a rendezvous). Global ranks come from the rendezvous; the
    shards do not depend on them (each chunk has its own seed), so any node count gives the
    same bytes.

    Args:
        launch_cfg: the `launch` config node.
        overrides: Hydra overrides of the run, passed on to `python -m ssg_eval.stages.sample`.
        run_name: the run's name (fallback rendezvous id).
        env: environment to read Slurm variables from (default `os.environ`).

    Returns:
        The argv list.

    Raises:
        ConfigError: several nodes but no rendezvous endpoint and no Slurm allocation.
    """
    env = os.environ if env is None else env
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    nproc, nnodes = int(launch_cfg.nproc_per_node), int(launch_cfg.nnodes)
    stage = ["-m", "ssg_eval.stages.sample", *overrides]
    if nnodes == 1:
        return [torchrun, "--standalone", f"--nproc_per_node={nproc}", *stage]
    endpoint = launch_cfg.rdzv_endpoint
    if endpoint is None:
        if not env.get("SLURM_JOB_NODELIST"):
            raise ConfigError(
                f"launch.nnodes={nnodes} needs a rendezvous: set launch.rdzv_endpoint=HOST:PORT "
                "(the first node, reachable from all) or run inside a Slurm allocation "
                "(hydra/launcher=slurm)"
            )
        endpoint = f"{first_slurm_host(env['SLURM_JOB_NODELIST'])}:{int(launch_cfg.rdzv_port)}"
    job = env.get("SLURM_JOB_ID")
    rdzv_id = launch_cfg.rdzv_id or (f"{job}_{run_name}" if job else run_name)  # one per run
    command = [torchrun, f"--nnodes={nnodes}", f"--nproc_per_node={nproc}", "--rdzv_backend=c10d",
               f"--rdzv_endpoint={endpoint}", f"--rdzv_id={rdzv_id}"]  # fmt: skip
    node_rank = launch_cfg.node_rank
    if node_rank is None:
        node_rank = _slurm_int(env, "SLURM_NODEID")
    if node_rank is not None:
        command.append(f"--node_rank={int(node_rank)}")
    return [*command, *stage]


def is_primary_node(launch_cfg: Any, env: Mapping[str, str] | None = None) -> bool:
    """True on the node that runs the stages after sampling (node rank 0, or a single node)."""
    env = os.environ if env is None else env
    if int(launch_cfg.nnodes) == 1:
        return True
    node_rank = launch_cfg.node_rank
    if node_rank is None:
        node_rank = _slurm_int(env, "SLURM_NODEID")
    return not node_rank  # None (unknown) counts as primary

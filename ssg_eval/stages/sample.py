"""Sample stage CLI: `python -m ssg_eval.stages.sample` / `ssg-sample`, alone or under torchrun.

It validates the config, initialises torch.distributed from the torchrun environment when
WORLD_SIZE > 1, runs this rank's chunks, and lets rank 0 finalize the run; the sampling itself
lives in `ssg_eval.sampling.runner`. Never pass Hydra's `-m` inside torchrun (one torchrun per run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry

# Absolute, so that the console script finds the configs too (a relative `../conf` is resolved
# as the Python package `conf` when Hydra is entered through `ssg_eval.stages.sample:main`).


def _chunk_list(chunks: range, shown: int = 16) -> str:
    """`[0, 2]`, or `[0, 1, 2, ..., 12499999] (12500000 chunks)` when long (never materialised)."""
    if len(chunks) <= shown:
        return str(list(chunks))
    return f"[{chunks[0]}, {chunks[1]}, {chunks[2]}, ..., {chunks[-1]}] ({len(chunks)} chunks)"


def print_sample_plan(cfg: Any, world_size: int) -> None:
    """Print what the sample stage would do (chunks per rank, shards done); loads no weights."""
    from ssg_eval.sampling.runner import plan_status

    status = plan_status(cfg, world_size)
    plan = status["plan"]
    stored = status["stored_hash"]
    if stored is None:
        state = "new run dir"
    elif not status["differences"]:
        state = "same config (resume)"
    else:
        state = (f"DIFFERENT config {stored}: " + "; ".join(status["differences"])
                 + " (needs a new run_name or overwrite=true)")  # fmt: skip
    done = sum(len(r["done"]) for r in status["ranks"])
    lines = [
        f"dry run: {cfg.run_name} -> {status['run_dir']} (config {status['config_hash']}, {state})",
        f"plan: {plan['num_samples']} samples, {plan['num_classes']} classes, seed {plan['seed']}, "
        f"rng {cfg.sampler.rng}, {plan['num_chunks']} chunks of {plan['chunk_size']}, "
        f"batch {cfg.sampler.batch_size}, world size {world_size}",
    ]
    for rank, info in enumerate(status["ranks"]):
        lines.append(
            f"rank {rank}: chunks {_chunk_list(info['chunks'])} ({len(info['done'])} done)"
        )
    lines.append(f"shards done: {done}/{plan['num_chunks']}; no weights were loaded")
    print("\n".join(lines))


def sample_stage(cfg: Any) -> Path | None:
    """Run the sample stage for this process (rank from the torchrun environment).

    Args:
        cfg: the composed config (already validated by `cli_main`).

    Returns:
        The run directory on rank 0 after finalize; None on other ranks and for `dry_run`.
    """
    from ssg_eval.utils import dist

    rank, world_size, _ = dist.dist_env()
    if cfg.dry_run:
        if rank == 0:
            launched = int(cfg.launch.nproc_per_node) * int(cfg.launch.nnodes)
            print_sample_plan(cfg, world_size if world_size > 1 else launched)
        return None
    from ssg_eval.runs.claim import stage_lock_on_all_ranks
    from ssg_eval.runs.layout import run_dir
    from ssg_eval.sampling.finalize import finalize_run
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.runner import run_rank

    device = dist.resolve_device(str(cfg.runtime.device))
    dist.init_process_group_if_needed(str(cfg.runtime.dist_backend), device)
    try:
        # Rank 0 holds the run's lock for the whole stage; the other ranks learn whether it got
        # it before they touch the run dir, and stop with rank 0's message otherwise.
        with stage_lock_on_all_ranks(cfg, "sample", rank):
            _check_ranks_environment(cfg, device)
            stats = run_rank(cfg, rank, world_size, barrier=dist.barrier)
            dist.barrier()
            all_stats = dist.gather_objects(stats)
            if rank != 0:
                return None
            directory = run_dir(cfg)
            finalize_run(cfg, directory, plan_from_config(cfg), all_stats)
            return directory
    finally:
        dist.destroy()


def _check_ranks_environment(cfg: Any, device: Any) -> None:
    """Every rank's numeric environment must match rank 0's (their shards meet in one run)."""
    from ssg_eval.sampling.environment import check_same_session, numeric_environment
    from ssg_eval.utils import dist

    if dist.is_distributed():
        env = numeric_environment(device, dist.setup_runtime(cfg.runtime))
        check_same_session(dist.gather_objects(env))


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-sample` / `python -m ssg_eval.stages.sample` with Hydra overrides (or torchrun)."""
    cli_main("sample", sample_stage, cfg)


def main() -> None:
    """`ssg-sample`: the strict override checks, then the Hydra entry point."""
    hydra_entry("sample", "config", _hydra_main)


if __name__ == "__main__":
    main()

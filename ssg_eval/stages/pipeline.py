"""One results-table cell end to end: sample -> features -> metrics, each stage skipped when done.

`python -m ssg_eval.stages.pipeline experiment=... [-m sweep overrides]` runs one cell per Hydra job
(basic or submitit launcher); with `launch.nproc_per_node > 1` or `launch.nnodes > 1` the sample
stage runs under torchrun (`utils.dist.torchrun_command`). This module sequences stages; it holds
no stage logic.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry
from ssg_eval.errors import UnreadableFileError
from ssg_eval.runs.identity import identity_diff
from ssg_eval.runs.layout import MANIFEST_JSON, run_dir
from ssg_eval.runs.records import read_record
from ssg_eval.sampling.identity import identity_of
from ssg_eval.sampling.shards import SAMPLES_NPZ
from ssg_eval.stages.preflight import check_inputs
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)


def sampling_done(cfg: Any) -> bool:
    """True when the run's manifest exists for this identity and N (nothing to sample).

    A missing `samples.npz`, or one of another size than recorded at its export, sends the run
    back to the sample stage, which checks its sha256 and exports it again (a cheap check here:
    the full one reads the file).
    """
    try:
        manifest = read_record(run_dir(cfg) / MANIFEST_JSON, "manifest", need=("samples",))
    except (FileNotFoundError, UnreadableFileError):  # a damaged manifest: rewritten by sampling
        return False
    wanted = identity_of(cfg, require_checkpoints=False)
    samples = manifest["samples"]
    same_n = samples.get("num_samples") == int(cfg.sampler.num_samples)
    if bool(cfg.sampler.save_samples_npz):
        export = run_dir(cfg) / SAMPLES_NPZ
        recorded = samples.get("samples_npz_bytes")
        if not export.is_file() or export.stat().st_size != (recorded or export.stat().st_size):
            return False
    return same_n and not identity_diff(manifest.get("identity") or {}, wanted)


def ensure_samples(cfg: Any, overrides: list[str]) -> None:
    """Run the sample stage in-process, or under torchrun (`launch.nproc_per_node`/`nnodes` > 1)."""
    if sampling_done(cfg):
        log.info("samples of %s are complete; skipping sampling", cfg.run_name)
        return
    if int(cfg.launch.nproc_per_node) == 1 and int(cfg.launch.nnodes) == 1:
        from ssg_eval.sampling.runner import sample_run

        sample_run(cfg)
        return
    from ssg_eval.utils.dist import torchrun_command

    command = torchrun_command(cfg.launch, overrides, str(cfg.run_name))
    log.info("starting %s", " ".join(command))
    subprocess.run(command, check=True, env=dict(os.environ))


def run_cell(cfg: Any, overrides: list[str]) -> Path | None:
    """Preflight, then sample, features and metrics for one composed config.

    Args:
        cfg: the composed config of the cell.
        overrides: the Hydra overrides that composed it (re-used for the torchrun sample stage).

    Returns:
        The run directory (None for `dry_run`, which prints each stage's plan only).
    """
    from ssg_eval.stages.features import run_features
    from ssg_eval.stages.metrics import run_metrics
    from ssg_eval.utils.dist import is_primary_node

    if cfg.dry_run:
        from ssg_eval.stages.sample import print_sample_plan

        print_sample_plan(cfg, int(cfg.launch.nproc_per_node) * int(cfg.launch.nnodes))
        run_features(cfg)
        run_metrics(cfg)
        return None
    check_inputs([cfg])
    ensure_samples(cfg, overrides)
    if not is_primary_node(cfg.launch):  # multi-node: node 0 runs features and metrics
        return run_dir(cfg)
    run_features(cfg)
    run_metrics(cfg)
    return run_dir(cfg)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-pipeline` / `python -m ssg_eval.stages.pipeline` (supports `-m` sweeps)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    cli_main("pipeline", lambda c: run_cell(c, overrides), cfg)


def main() -> None:
    """`ssg-pipeline`: the strict override checks, then the Hydra entry point."""
    hydra_entry("pipeline", "config", _hydra_main)


if __name__ == "__main__":
    main()

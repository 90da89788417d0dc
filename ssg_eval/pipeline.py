"""One results-table cell end to end: sample -> features -> metrics, each stage skipped when done.

`python -m ssg_eval.pipeline experiment=... [-m sweep overrides]` runs one cell per Hydra job
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
from omegaconf import DictConfig, OmegaConf

from ssg_eval.preflight import check_inputs
from ssg_eval.stage import CONF_DIR, cli_main, run_dir
from ssg_eval.utils.io import read_json
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import config_hash

log = get_logger(__name__)


def sampling_done(cfg: Any) -> bool:
    """True when the run's manifest exists for this exact sampling config (nothing to sample)."""
    manifest_path = run_dir(cfg) / "manifest.json"
    if not manifest_path.is_file():
        return False
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return read_json(manifest_path).get("config_hash") == config_hash(resolved)


def sample_stage(cfg: Any, overrides: list[str]) -> None:
    """Run the sample stage in-process, or under torchrun (`launch.nproc_per_node`/`nnodes` > 1)."""
    if sampling_done(cfg):
        log.info("samples of %s are complete; skipping sampling", cfg.run_name)
        return
    if int(cfg.launch.nproc_per_node) == 1 and int(cfg.launch.nnodes) == 1:
        from ssg_eval.sampling.run import sample_run

        sample_run(cfg)
        return
    from ssg_eval.utils.dist import torchrun_command

    command = torchrun_command(cfg.launch, overrides, str(cfg.run_name))
    log.info("starting %s", " ".join(command))
    subprocess.run(command, check=True, env=dict(os.environ))


def run_cell(cfg: Any, overrides: list[str]) -> Path:
    """Preflight, then sample, features and metrics for one composed config.

    Args:
        cfg: the composed config of the cell.
        overrides: the Hydra overrides that composed it (re-used for the torchrun sample stage).

    Returns:
        The run directory.
    """
    from ssg_eval.features_stage import run_features
    from ssg_eval.metrics_stage import run_metrics
    from ssg_eval.utils.dist import is_primary_node

    check_inputs([cfg])
    sample_stage(cfg, overrides)
    if not is_primary_node(cfg.launch):  # multi-node: node 0 runs features and metrics
        return run_dir(cfg)
    run_features(cfg)
    run_metrics(cfg)
    return run_dir(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="pipeline")
def main(cfg: DictConfig) -> None:
    """`ssg-pipeline` / `python -m ssg_eval.pipeline` (supports `-m` sweeps)."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task)
    cli_main("pipeline", lambda c: run_cell(c, overrides), cfg)


if __name__ == "__main__":
    main()

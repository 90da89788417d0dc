"""Suites of cells (`make table1`, `make smoke`): compose every cell, preflight all, run, report.

A suite file `conf/suite/<name>.yaml` lists experiment cells, the sampling seeds and the report
experiment; finished stages are skipped, so a rerun samples nothing and rewrites the same table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from ssg_eval.config import ConfigError, validate
from ssg_eval.stages.entry import CONF_DIR, exit_on_user_error
from ssg_eval.stages.preflight import check_inputs
from ssg_eval.utils.logging import configure_cli_logging, get_logger

log = get_logger(__name__)


def load_suite(name: str) -> dict[str, Any]:
    """Read `conf/suite/<name>.yaml` (cells, seeds, report_experiment, spectral)."""
    path = Path(CONF_DIR) / "suite" / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in (Path(CONF_DIR) / "suite").glob("*.yaml"))
        raise ConfigError(f"suite {name!r} not found at {path}; valid suites: {valid}")
    suite = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for key in ("cells", "seeds", "report_experiment"):
        if key not in suite:
            raise ConfigError(f"{path}: missing key {key!r}")
    return suite


def compose_cells(
    suite: dict[str, Any],
    overrides: Sequence[str],
    seeds: Sequence[int],
    guidance: str | None = None,
):
    """Compose and validate every (cell, seed) config; returns [(cfg, cell overrides)].

    `guidance="tuned"` switches every SSG cell to its model's tuned guidance (`make tune`).
    """
    cells = []
    for seed in seeds:
        for cell in suite["cells"]:
            cell_overrides = [f"experiment={cell}", *overrides, f"sampler.seed={seed}"]
            cfg = compose(config_name="pipeline", overrides=cell_overrides)
            if guidance == "tuned":
                from ssg_eval.tune.apply import tuned_cell_overrides

                extra = tuned_cell_overrides(cfg)
                if extra:
                    cell_overrides += extra
                    cfg = compose(config_name="pipeline", overrides=cell_overrides)
            elif guidance is not None:
                raise ConfigError(f"--guidance {guidance!r} is not valid; expected 'tuned'")
            validate(cfg)
            cells.append((cfg, cell_overrides))
    check_run_names([cfg for cfg, _ in cells])
    return cells


def check_run_names(cfgs: Sequence[Any]) -> None:
    """Refuse, at composition, two cells that share a run name but not an identity.

    Raises:
        ConfigError: naming the run and the differing keys.
    """
    from ssg_eval.runs.identity import identity_diff, identity_of

    seen: dict[str, dict[str, Any]] = {}
    for cfg in cfgs:
        identity = identity_of(cfg, require_checkpoints=False)
        first = seen.setdefault(str(cfg.run_name), identity)
        diffs = identity_diff(first, identity)
        if diffs:
            raise ConfigError(
                f"two cells share run_name={cfg.run_name} but differ in "
                + "; ".join(diffs)
                + "; give each cell its own run_name (e.g. include the differing value)"
            )


def run_suite(
    name: str,
    overrides: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
    guidance: str | None = None,
) -> dict:
    """Run every cell of suite `name` (skipping finished stages), then write its report.

    Args:
        name: suite file stem under `conf/suite/`.
        overrides: Hydra overrides applied to every cell and to the report.
        seeds: sampling seeds; None uses the suite's list.
        guidance: `tuned` runs the SSG cells with the guidance `make tune` wrote; None as listed.

    Returns:
        The report's written paths by kind (plus `spectral_*` when the suite asks for it).
    """
    from ssg_eval.stages.pipeline import run_cell
    from ssg_eval.stages.report import run_report

    suite = load_suite(name)
    seeds = list(suite["seeds"] if seeds is None else seeds)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cells = compose_cells(suite, overrides, seeds, guidance)
        check_inputs(cfg for cfg, _ in cells)  # one message for every missing file
        for index, (cfg, cell_overrides) in enumerate(cells, start=1):
            log.info("[%d/%d] %s", index, len(cells), cfg.run_name)
            run_cell(cfg, cell_overrides)
        report_cfg = compose(
            config_name="report", overrides=[f"experiment={suite['report_experiment']}", *overrides]
        )
        with open_dict(report_cfg):
            report_cfg.report.runs = [str(cfg.run_name) for cfg, _ in cells]
        written = run_report(report_cfg)
        if suite.get("spectral"):
            written.update(_spectral(cells, report_cfg))
    return written


def _spectral(cells, report_cfg) -> dict[str, Path]:
    """Spectral plots for the first model's baseline vs SSG pair of the first seed."""
    from ssg_eval.analysis.cli import run_spectral_analysis
    from ssg_eval.stages.entry import results_dir, run_dir

    first_seed = cells[0][0].sampler.seed
    by_key = {(c.model.name, c.guidance.name): c for c, _ in cells if c.sampler.seed == first_seed}
    model = cells[0][0].model.name
    baseline, treated = by_key.get((model, "cfg")), by_key.get((model, "cfg_ssg"))
    if baseline is None or treated is None:
        return {}
    out = run_spectral_analysis(
        run_dir(baseline),
        run_dir(treated),
        baseline.metrics.reference,
        results_dir(report_cfg) / f"{report_cfg.report.output_stem}_spectral",
        num_latent_samples=8,
        overwrite=True,
    )
    return {f"spectral_{k}": v for k, v in out.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ssg_eval.stages.suite NAME [--seeds 0 1 2] [hydra overrides...]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="suite under conf/suite/ (table1, smoke)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="sampling seeds")
    parser.add_argument("--guidance", default=None, help="tuned: SSG cells use make tune's result")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell")
    args = parser.parse_args(argv)
    configure_cli_logging()
    written = exit_on_user_error(
        "ssg-suite", lambda: run_suite(args.name, args.overrides, args.seeds, args.guidance)
    )
    print(f"ssg-suite {args.name}: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()

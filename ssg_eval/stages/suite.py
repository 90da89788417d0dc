"""Suites of cells (`make table1`, `make smoke`): compose every cell, preflight all, run, report.

A suite file `conf/suite/<name>.yaml` names one experiment (the shared delta of every cell) and
lists models x guidance x seeds; finished stages are skipped, so a rerun samples nothing and
rewrites the same table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose
from omegaconf import OmegaConf, open_dict

from ssg_eval.cli import compose_context, conf_dir, run_cli
from ssg_eval.errors import ConfigError
from ssg_eval.runs.records import check_record
from ssg_eval.stages.preflight import check_inputs
from ssg_eval.utils.logging import configure_cli_logging, get_logger
from ssg_eval.validation import validate

log = get_logger(__name__)

# ----------------------------------------------------------------------------------------------
# suite format: conf/suite/<name>.yaml -> Suite -> one override list per cell
# ----------------------------------------------------------------------------------------------
SUITE_KEYS = ("experiment", "models", "guidance", "seeds", "spectral", "exclude", "overrides")
REQUIRED_KEYS = ("experiment", "models", "guidance", "seeds")


@dataclass(frozen=True)
class Suite:
    """One suite file: every (model, guidance) pair of the grid on `experiment`, minus `exclude`.

    Attributes:
        name: file stem under `conf/suite/`.
        experiment: `conf/experiment/<experiment>.yaml`, the shared delta of every cell and the
            report settings (`report.*`) of the suite.
        models, guidance: config names in `conf/model/` and `conf/guidance/` (the grid axes).
        seeds: sampling seeds; every cell runs once per seed (paired across guidance).
        spectral: write the spectral plots of the first model's baseline/SSG pair.
        exclude: (model, guidance) pairs left out of the grid.
        overrides: Hydra overrides applied to every cell (before the command line's).
    """

    name: str
    experiment: str
    models: tuple[str, ...]
    guidance: tuple[str, ...]
    seeds: tuple[int, ...]
    spectral: bool = False
    exclude: tuple[tuple[str, str], ...] = ()
    overrides: tuple[str, ...] = ()

    def cells(self) -> list[list[str]]:
        """Hydra overrides of every cell (model-major, in file order), without the seed."""
        return [
            [f"experiment={self.experiment}", f"model={model}", f"guidance={guidance}",
             *self.overrides]
            for model in self.models
            for guidance in self.guidance
            if (model, guidance) not in self.exclude
        ]  # fmt: skip


def _names_in(root: Path, group: str) -> list[str]:
    return sorted(str(p.relative_to(root / group).with_suffix(""))
                  for p in (root / group).rglob("*.yaml"))  # fmt: skip


def _check_names(path: Path, key: str, group: str, names: Sequence[str]) -> None:
    valid = _names_in(path.parents[1], group)
    unknown = [name for name in dict.fromkeys(names) if name not in valid]
    if unknown:
        raise ConfigError(f"{path}: {key} names {unknown} not in conf/{group}/; valid: {valid}")


def load_suite(name: str, conf_root: str | Path | None = None) -> Suite:
    """Read and check `<conf>/suite/<name>.yaml` (keys, names of every config it refers to).

    Args:
        name: suite file stem.
        conf_root: the conf folder to read (default: the installed `ssg_eval.conf`).

    Raises:
        ConfigError: unknown suite, missing or unknown key, or a name without a config file.
    """
    root = conf_dir() if conf_root is None else Path(conf_root)
    path = root / "suite" / f"{name}.yaml"
    if not path.is_file():
        valid = _names_in(root, "suite")
        raise ConfigError(f"suite {name!r} not found at {path}; valid suites: {valid}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # overrides keep ${...}
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    unknown = [key for key in raw if key not in SUITE_KEYS]
    if missing or unknown:
        raise ConfigError(
            f"{path}: missing keys {missing}, unknown keys {unknown}; "
            f"a suite has the keys {list(SUITE_KEYS)}"
        )
    check_record(raw, path, "suite", need=REQUIRED_KEYS)  # types of every key (ConfigError)
    exclude = tuple((str(e["model"]), str(e["guidance"])) for e in raw.get("exclude") or [])
    _check_names(path, "experiment", "experiment", [raw["experiment"]])
    _check_names(path, "models", "model", [*raw["models"], *(m for m, _ in exclude)])
    _check_names(path, "guidance", "guidance", [*raw["guidance"], *(g for _, g in exclude)])
    return Suite(
        name=name,
        experiment=str(raw["experiment"]),
        models=tuple(str(m) for m in raw["models"]),
        guidance=tuple(str(g) for g in raw["guidance"]),
        seeds=tuple(int(s) for s in raw["seeds"]),
        spectral=bool(raw.get("spectral", False)),
        exclude=exclude,
        overrides=tuple(str(o) for o in raw.get("overrides") or []),
    )


def compose_cells(
    suite: Suite, overrides: Sequence[str], seeds: Sequence[int], guidance: str | None = None
):
    """Compose and validate every (cell, seed) config; returns [(cfg, cell overrides)].

    `guidance="tuned"` switches every SSG cell to its model's tuned guidance (`make tune`).
    """
    if guidance not in (None, "tuned"):
        raise ConfigError(f"--guidance {guidance!r} is not valid; expected 'tuned'")
    cells = []
    for seed in seeds:
        for cell in suite.cells():
            cell_overrides = [*cell, *overrides, f"sampler.seed={seed}"]
            cfg = compose(config_name="config", overrides=cell_overrides)
            if guidance == "tuned":
                from ssg_eval.stages.tuned import tuned_cell_overrides

                extra = tuned_cell_overrides(cfg)
                if extra:
                    cell_overrides += extra
                    cfg = compose(config_name="config", overrides=cell_overrides)
            validate(cfg)
            cells.append((cfg, cell_overrides))
    check_run_names([cfg for cfg, _ in cells])
    return cells


def check_run_names(cfgs: Sequence[Any]) -> None:
    """Refuse, at composition, two cells that share a run name but not an identity.

    Raises:
        ConfigError: naming the run and the differing keys.
    """
    from ssg_eval.runs.identity import identity_diff
    from ssg_eval.sampling.identity import identity_of

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
    seeds = list(suite.seeds if seeds is None else seeds)
    with compose_context():
        cells = compose_cells(suite, overrides, seeds, guidance)
        check_inputs(cfg for cfg, _ in cells)  # one message for every missing file
        for index, (cfg, cell_overrides) in enumerate(cells, start=1):
            log.info("[%d/%d] %s", index, len(cells), cfg.run_name)
            run_cell(cfg, cell_overrides)
        report_cfg = compose(
            config_name="report", overrides=[f"experiment={suite.experiment}", *overrides]
        )
        with open_dict(report_cfg):
            report_cfg.report.runs = [str(cfg.run_name) for cfg, _ in cells]
        wanted = suite.spectral and not report_cfg.dry_run  # a dry run writes nothing
        spectral = _spectral(cells, report_cfg) if wanted else {}  # before the page
        written = {**run_report(report_cfg), **spectral}
    return written


def _spectral(cells, report_cfg) -> dict[str, Path]:
    """Spectral plots for the first model's baseline vs SSG pair of the first seed."""
    from ssg_eval.analysis.cli import run_spectral_analysis
    from ssg_eval.runs.layout import results_dir, run_dir

    first_seed = cells[0][0].sampler.seed
    by_key = {(c.model.name, c.guidance.name): c for c, _ in cells if c.sampler.seed == first_seed}
    model = cells[0][0].model.name
    baseline, treated = by_key.get((model, "cfg")), by_key.get((model, "cfg_ssg"))
    if baseline is None or treated is None:
        return {}
    out_dir = results_dir(report_cfg) / f"{report_cfg.report.output_stem}_spectral"
    out = run_spectral_analysis(
        run_dir(baseline),
        run_dir(treated),
        baseline.metrics.reference,
        out_dir,
        num_latent_samples=8,
        overwrite=True,
    )
    from ssg_eval.runs.io import atomic_write_json

    source = {"baseline": str(baseline.run_name), "ssg": str(treated.run_name)}
    out["source"] = atomic_write_json(out_dir / "source.json", source)  # for the report page
    return {f"spectral_{k}": v for k, v in out.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ssg_eval.stages.suite NAME [--seeds 0 1 2] [hydra overrides...]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="suite under conf/suite/ (table1, smoke, ...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="sampling seeds")
    parser.add_argument("--guidance", default=None, help="tuned: SSG cells use make tune's result")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every cell")
    args = parser.parse_intermixed_args(argv)  # options may follow the overrides (make table1)
    configure_cli_logging()
    written = run_cli(
        "ssg-suite", lambda: run_suite(args.name, args.overrides, args.seeds, args.guidance)
    )
    print(f"ssg-suite {args.name}: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()

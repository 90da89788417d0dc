"""Report stage: every finished run's metrics -> `<results>/<stem>.{csv,md}` (+ sweep files).

Reads `manifest.json` and `metrics.json` only and never recomputes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ssg_eval.cli import CONF_PATH, cli_main, hydra_entry
from ssg_eval.runs.layout import results_dir


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def run_report(cfg: Any) -> dict[str, Path]:
    """Write the report selected by `report.*` under `paths.results` (nothing for `dry_run`)."""
    from ssg_eval.report.render import render_tables

    report = cfg.report
    if cfg.dry_run:
        print(
            f"dry run: report {report.output_stem} -> {results_dir(cfg)}/{report.output_stem}"
            f".{{csv,md}} from runs {list(report.runs) if report.runs else 'all'} (prefix "
            f"{report.run_prefix}); nothing was written"
        )
        return {}
    written = render_tables(
        results_dir(cfg),
        stem=report.output_stem,
        title=report.title,
        note=report.note,
        paper=_plain(report.paper),
        paper_row_of=_plain(report.paper_row_of),
        baseline=report.baseline,
        runs=None if report.runs is None else list(report.runs),
        run_prefix=report.run_prefix,
        sweep_plot=report.sweep_plot,
    )
    if report.page:  # band deltas, paired grids and <stem>_report/index.html
        from ssg_eval.report.assets import write_report_page

        written.update(write_report_page(cfg))
    return written


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="report")
def _hydra_main(cfg: DictConfig) -> None:
    """`ssg-report` / `python -m ssg_eval.stages.report` with Hydra overrides."""
    cli_main("report", run_report, cfg, check=False)


def main() -> None:
    """`ssg-report`: the strict override checks, then the Hydra entry point."""
    hydra_entry("report", "report", _hydra_main)


if __name__ == "__main__":
    main()

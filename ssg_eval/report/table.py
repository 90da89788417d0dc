"""Results tables: collect `manifest.json` + `metrics.json` of finished runs into pandas tables.

This module reads run artifacts only and never recomputes a metric; the CSV keeps full precision
and only the Markdown rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ssg_eval.analysis.seeds import paired_delta, seed_summary
from ssg_eval.errors import ConfigError, IncompleteRunError
from ssg_eval.metrics.keys import (
    COVERAGE,
    DENSITY,
    FD_DINOV2,
    FD_INF,
    FD_INF_ERR,
    FID,
    IS,
    IS_STD,
    KID,
    KID_STD,
    PRECISION,
    RECALL,
    SFID,
)
from ssg_eval.registry import PROCESSOR_DISPLAY, lookup
from ssg_eval.runs.records import read_record
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

METRIC_KEYS = (FID, SFID, IS, PRECISION, RECALL)
OPTIONAL_KEYS = (FD_DINOV2, KID, DENSITY, COVERAGE, FD_INF)  # a column only when some run has it
METRIC_LABELS = {FID: "FID", SFID: "sFID", IS: "IS", PRECISION: "Pre", RECALL: "Rec",
                 FD_DINOV2: "FD-DINOv2", KID: "KID", DENSITY: "Dens", COVERAGE: "Cov",
                 FD_INF: "FD∞"}  # fmt: skip
# Fixed column order of the per-run table (docs/CONTRIBUTING.md plus the paper's Params/Steps/Time).
RUN_COLUMNS = [
    "run", "model", "guidance", "guidance_params", "N", "seed", "precision_mode",
    FID, SFID, IS, IS_STD, PRECISION, RECALL, "params", "steps", "time_s", "images_per_s",
    "commit",
]  # fmt: skip
# What a report row reads from a manifest (checked for shape before any row is built).
MANIFEST_FIELDS = (
    "config.model.name",
    "config.model.patch_nums",
    "config.guidance.name",
    "config.guidance.order",
    "config.sampler.num_samples",
    "config.sampler.seed",
)
MARKDOWN_DIGITS = {FID: 2, SFID: 2, IS: 1, PRECISION: 2, RECALL: 2, FD_DINOV2: 2, KID: 4,
                   DENSITY: 3, COVERAGE: 3, FD_INF: 2, "time_s": 3}  # fmt: skip


def metric_keys(frame: pd.DataFrame) -> tuple[str, ...]:
    """The fixed metric columns, then every optional one that some row of `frame` has."""
    present = [k for k in OPTIONAL_KEYS if k in frame and frame[k].notna().any()]
    return (*METRIC_KEYS, *present)


def guidance_params(guidance: dict[str, Any]) -> str:
    """One-line summary of the active guidance settings of a run's resolved config.

    Each processor in `guidance.order` is summarised by its registered describer
    (`ssg_eval.registry.PROCESSOR_DISPLAY`), in application order; "none" without processors.
    """
    parts = [
        lookup(PROCESSOR_DISPLAY, str(name), "guidance.order")(guidance[name])
        for name in guidance.get("order", [])
    ]
    return "; ".join(parts) if parts else "none"


def chain_problem(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> str | None:
    """Why a run's samples -> features -> metrics records do not belong together, or None.

    The chain holds when the identity file, the manifest, the features record and the metrics'
    record of that features file name the same config hash and N. Records written before the
    run layer stored provenance carry none of these fields and are not contradicted.
    """
    digest = manifest.get("config_hash")
    n = (manifest.get("samples") or {}).get("num_samples")
    identity_path = run_dir / "identity.json"
    if (
        identity_path.is_file()
        and read_record(identity_path, "identity", need=("config_hash",))["config_hash"] != digest
    ):
        return f"{identity_path} and manifest.json name different configs"
    recorded = (metrics.get("inputs") or {}).get("features_meta")
    if recorded is None:
        return None
    if recorded.get("config_hash") != digest or recorded.get("num_samples") != n:
        return "metrics.json was computed from features of other samples"
    features_json = run_dir / "features.json"
    if features_json.is_file() and read_record(features_json, "features") != recorded:
        return "features.json changed after metrics.json was computed"
    return None


def _run_row(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    cfg = manifest["config"]
    timings = manifest.get("timings", {})
    latency = timings.get("latency", {}) or {}
    runtime = cfg.get("runtime", {})
    values = metrics["metrics"]
    row = {
        "run": run_dir.name,
        "model": cfg["model"]["name"],
        "model_label": cfg["model"].get("label") or cfg["model"]["name"],
        "guidance": cfg["guidance"]["name"],
        "guidance_params": guidance_params(cfg["guidance"]),
        "beta": cfg["guidance"]["ssg"]["beta"] if "ssg" in cfg["guidance"]["order"] else 0.0,
        "N": cfg["sampler"]["num_samples"],
        "seed": cfg["sampler"]["seed"],
        "precision_mode": f"{runtime.get('autocast_dtype', 'float32')}"
        f"{'+tf32' if runtime.get('use_tf32') else ''}",
        "params": cfg["model"].get("params_quoted", ""),
        "steps": len(cfg["model"]["patch_nums"]),
        "time_s": latency.get("seconds_per_image"),
        "images_per_s": timings.get("images_per_s"),
        "commit": (manifest.get("git", {}) or {}).get("commit"),
        "dirty": (manifest.get("git", {}) or {}).get("dirty"),
    }
    for key in (*METRIC_KEYS, IS_STD, *OPTIONAL_KEYS, KID_STD, FD_INF_ERR):
        row[key] = values.get(key)
    row["fid_bootstrap_std"] = values.get(f"{FID}_bootstrap_std")
    return row


def collect_runs(
    results_dir: str | Path, runs: Iterable[str] | None = None, prefix: str | None = None
) -> pd.DataFrame:
    """Read every selected run that has both `manifest.json` and `metrics.json`.

    Args:
        results_dir: the `paths.results` directory (runs live in `<results_dir>/runs/`).
        runs: explicit run names; None selects every run directory.
        prefix: keep only runs whose name starts with this.

    Returns:
        One row per run, columns `RUN_COLUMNS` first, sorted by model, seed, guidance.

    Raises:
        FileNotFoundError: an explicitly requested run has no metrics yet.
        IncompleteRunError: an explicitly requested run's metrics are not of its own features.
    """
    runs_dir = Path(results_dir) / "runs"
    if runs is not None:
        dirs = [runs_dir / name for name in runs]
        missing = [str(d / "metrics.json") for d in dirs if not (d / "metrics.json").is_file()]
        if missing:
            raise FileNotFoundError(
                "report.runs names runs without metrics: "
                + ", ".join(missing)
                + "; run the metrics stage for them first (make metrics EXP=...)"
            )
    else:
        dirs = sorted(p for p in runs_dir.glob("*") if p.is_dir()) if runs_dir.is_dir() else []
        dirs = [
            d for d in dirs if (d / "metrics.json").is_file() and (d / "manifest.json").is_file()
        ]
    if prefix:
        dirs = [d for d in dirs if d.name.startswith(prefix)]
    rows = []
    for directory in dirs:
        manifest = read_record(directory / "manifest.json", "manifest", need=MANIFEST_FIELDS)
        metrics = read_record(directory / "metrics.json", "metrics", need=("metrics",))
        problem = chain_problem(directory, manifest, metrics)
        if problem is None:
            rows.append(_run_row(directory, manifest, metrics))
        elif runs is not None:
            raise IncompleteRunError(
                f"run {directory.name} is inconsistent ({problem}); rerun its features and "
                "metrics stages with overwrite=true"
            )
        else:
            log.warning("run %s left out of the report: %s", directory.name, problem)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    extra = [c for c in frame.columns if c not in RUN_COLUMNS]
    return (
        frame[RUN_COLUMNS + extra]
        .sort_values(["model", "seed", "guidance", "run"])
        .reset_index(drop=True)
    )


def _pairs(frame: pd.DataFrame, baseline: str) -> Iterable[tuple[str, str, str]]:
    """(model, baseline, treated guidance) for every model that has a `baseline` row."""
    for model, group in frame.groupby("model", sort=True):
        names = set(group["guidance"])
        if baseline in names:
            for treated in sorted(names - {baseline}):
                yield model, baseline, treated


def quoted_source(quoted: dict[str, Any], paper: dict[str, Any]) -> str | None:
    """Source key of one quoted cell: its own `source`, else `default` when the cell has numbers."""
    if not quoted:
        return None
    key = quoted.get("source") or "default"
    sources = (paper or {}).get("sources", {}) or {}
    if key != "default" and key not in sources:
        raise ConfigError(
            f"report.paper: a quoted cell names source {key!r}, which is not a key of "
            f"report.paper.sources ({sorted(sources)}); add it there with the paper and table"
        )
    return key


def summary_table(
    frame: pd.DataFrame,
    paper: dict[str, Any],
    paper_row_of: dict[str, str],
    baseline: str = "cfg",
) -> pd.DataFrame:
    """Table 1 view: one row per (model, guidance), seed mean ± std, paper numbers and deltas.

    Args:
        frame: output of `collect_runs`.
        paper: `report.paper` with `rows[<paper row>][<guidance>] -> {fid, sfid, ..., source}`
            (`source` optional: a key of `paper.sources`; absent = `paper.source`).
        paper_row_of: maps a model name to its paper row key (identity when absent).
        baseline: guidance name the deltas are taken against (same model, same seeds); models
            without a `baseline` row get no deltas.

    Returns:
        Columns: model, guidance, guidance_params, N, seeds, per metric `<m>` (mean), `<m>_std`,
        `paper_<m>`, `delta_<m>` (ours: this row − baseline, same seeds), `paper_delta_<m>`,
        `delta_<m>_within_noise`, `delta_<m>_ci_low/_ci_high/_p_value/_n`, `baseline`,
        `paper_source`, and params/steps/time_s/images_per_s/commit.
    """
    rows_quoted = (paper or {}).get("rows", {}) or {}
    records = []
    for (model, guidance), group in frame.groupby(["model", "guidance"], sort=True):
        paper_row = rows_quoted.get(paper_row_of.get(model, model), {}) or {}
        quoted = paper_row.get(guidance, {}) or {}
        record: dict[str, Any] = {
            "model": model,
            "model_label": group["model_label"].iloc[0],
            "guidance": guidance,
            "guidance_params": group["guidance_params"].iloc[0],
            "N": int(group["N"].iloc[0]),
            "seeds": ",".join(str(s) for s in sorted(group["seed"])),
            "precision_mode": group["precision_mode"].iloc[0],
            "params": group["params"].iloc[0],
            "steps": int(group["steps"].iloc[0]),
            "time_s": group["time_s"].astype(float).mean(),
            "images_per_s": group["images_per_s"].astype(float).mean(),
            "commit": ",".join(sorted({str(c)[:12] for c in group["commit"]})),
            "paper_source": quoted_source(quoted, paper),
        }
        for key in metric_keys(frame):
            mean, std, _ = seed_summary(group[key].astype(float).tolist())
            record[key], record[f"{key}_std"] = mean, std
            record[f"paper_{key}"] = quoted.get(key)
        # A single seed has no spread; the optional bootstrap std over features stands in.
        record["fid_bootstrap_std"] = group["fid_bootstrap_std"].astype(float).mean()
        record["paper_time_s"] = quoted.get("time_s")
        records.append(record)
    table = pd.DataFrame(records)
    if table.empty:
        return table
    table["baseline"] = baseline
    for model, base_name, treated in _pairs(frame, baseline):
        base = frame[(frame.model == model) & (frame.guidance == base_name)]
        treat = frame[(frame.model == model) & (frame.guidance == treated)]
        where = (table.model == model) & (table.guidance == treated)
        base_row = table[(table.model == model) & (table.guidance == base_name)].iloc[0]
        # Quoted deltas only within one source (one paper's table, one recipe).
        same_source = table.loc[where, "paper_source"].iloc[0] == base_row["paper_source"]
        for key in metric_keys(frame):
            stats = paired_delta(
                dict(zip(base["seed"], base[key].astype(float), strict=True)),
                dict(zip(treat["seed"], treat[key].astype(float), strict=True)),
            )
            table.loc[where, f"delta_{key}"] = stats["mean_delta"]
            table.loc[where, f"delta_{key}_within_noise"] = stats["within_noise"]
            for field in ("ci_low", "ci_high", "p_value", "n"):
                table.loc[where, f"delta_{key}_{field}"] = stats.get(field)
            quoted_t, quoted_b = table.loc[where, f"paper_{key}"].iloc[0], base_row[f"paper_{key}"]
            if same_source and quoted_t is not None and quoted_b is not None:
                table.loc[where, f"paper_delta_{key}"] = float(quoted_t) - float(quoted_b)
    return table.reset_index(drop=True)


def sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """β-sweep view: one row per (model, β, guidance params), metrics averaged over seeds."""
    cols = ["model", "beta", "guidance_params"]
    agg = frame.groupby(cols, sort=True)[list(METRIC_KEYS)].mean().reset_index()
    agg["seeds"] = frame.groupby(cols, sort=True)["seed"].apply(lambda s: len(set(s))).values
    return agg

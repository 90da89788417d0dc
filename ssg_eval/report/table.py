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
from ssg_eval.metrics.keys import FID, IS, IS_STD, PRECISION, RECALL, SFID
from ssg_eval.runs.io import read_json
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

METRIC_KEYS = (FID, SFID, IS, PRECISION, RECALL)
METRIC_LABELS = {FID: "FID", SFID: "sFID", IS: "IS", PRECISION: "Pre", RECALL: "Rec"}
LOWER_IS_BETTER = {FID: True, SFID: True, IS: False, PRECISION: False, RECALL: False}
# Fixed column order of the per-run table (docs/CONTRIBUTING.md plus the paper's Params/Steps/Time).
RUN_COLUMNS = [
    "run", "model", "guidance", "guidance_params", "N", "seed", "precision_mode",
    FID, SFID, IS, IS_STD, PRECISION, RECALL, "params", "steps", "time_s", "images_per_s",
    "commit",
]  # fmt: skip
MARKDOWN_DIGITS = {FID: 2, SFID: 2, IS: 1, PRECISION: 2, RECALL: 2, "time_s": 3}


def guidance_params(guidance: dict[str, Any]) -> str:
    """One-line summary of the active guidance settings of a run's resolved config."""
    parts = []
    order = guidance.get("order", [])
    cfg_ramp, ssg = guidance.get("cfg_ramp", {}), guidance.get("ssg", {})
    for name in ("icg", "autoguidance"):
        if name in order:
            term = guidance[name]
            parts.append(f"{name}={term['scale']:g} ({term['schedule']})")
    if "cfg_ramp" in order:
        parts.append(f"cfg={cfg_ramp['scale']:g} ({cfg_ramp['schedule']})")
    if "ssg" in order:
        sched = ssg["beta_schedule"]
        beta = ssg["beta_list"] if sched == "list" else ssg["beta"]
        end = f"->{ssg['beta_end']:g}" if sched in ("linear_decay", "linear_ramp") else ""
        parts.append(
            f"ssg beta={beta}{end} ({sched}), {ssg['placement']}, prior={ssg['prior_source']}, "
            f"{ssg['prior_mode']}/{ssg['interpolation']}, alpha={ssg['coarse_block_scale']}"
        )
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
    if identity_path.is_file() and read_json(identity_path).get("config_hash") != digest:
        return f"{identity_path} and manifest.json name different configs"
    recorded = (metrics.get("inputs") or {}).get("features_meta")
    if recorded is None:
        return None
    if recorded.get("config_hash") != digest or recorded.get("num_samples") != n:
        return "metrics.json was computed from features of other samples"
    features_json = run_dir / "features.json"
    if features_json.is_file() and read_json(features_json) != recorded:
        return "features.json changed after metrics.json was computed"
    return None


def _run_row(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    cfg = manifest["config"]
    timings = manifest.get("timings", {})
    latency = timings.get("latency", {}) or {}
    runtime = cfg.get("runtime", {})
    values = metrics.get("metrics", metrics)
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
    for key in (*METRIC_KEYS, IS_STD):
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
        manifest = read_json(directory / "manifest.json")
        metrics = read_json(directory / "metrics.json")
        problem = chain_problem(directory, manifest, metrics)
        if problem is None:
            rows.append(_run_row(directory, manifest, metrics))
        elif runs is not None:
            raise ValueError(
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


def _pairs(frame: pd.DataFrame) -> Iterable[tuple[str, str, str]]:
    """(model, baseline guidance, treated guidance) for every model with a baseline row."""
    for model, group in frame.groupby("model", sort=True):
        names = set(group["guidance"])
        baseline = "cfg" if "cfg" in names else ("none" if "none" in names else None)
        for treated in sorted(names - {baseline}):
            if baseline is not None:
                yield model, baseline, treated


def summary_table(
    frame: pd.DataFrame, paper: dict[str, Any], paper_row_of: dict[str, str]
) -> pd.DataFrame:
    """Table 1 view: one row per (model, guidance), seed mean ± std, paper numbers and deltas.

    Args:
        frame: output of `collect_runs`.
        paper: `report.paper` with `rows[<paper row>][<guidance>] -> {fid, sfid, ...}`.
        paper_row_of: maps a model name to its paper row key (identity when absent).

    Returns:
        Columns: model, guidance, guidance_params, N, seeds, per metric `<m>` (mean), `<m>_std`,
        `paper_<m>`, `delta_<m>` (ours: this row − baseline, same seeds), `paper_delta_<m>`,
        `delta_<m>_within_noise`, and params/steps/time_s/images_per_s/commit.
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
        }
        for key in METRIC_KEYS:
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
    for model, baseline, treated in _pairs(frame):
        base = frame[(frame.model == model) & (frame.guidance == baseline)]
        treat = frame[(frame.model == model) & (frame.guidance == treated)]
        where = (table.model == model) & (table.guidance == treated)
        base_row = table[(table.model == model) & (table.guidance == baseline)].iloc[0]
        for key in METRIC_KEYS:
            stats = paired_delta(
                dict(zip(base["seed"], base[key].astype(float), strict=True)),
                dict(zip(treat["seed"], treat[key].astype(float), strict=True)),
            )
            table.loc[where, f"delta_{key}"] = stats["mean_delta"]
            table.loc[where, f"delta_{key}_within_noise"] = stats["within_noise"]
            for field in ("ci_low", "ci_high", "p_value", "n"):
                table.loc[where, f"delta_{key}_{field}"] = stats.get(field)
            quoted_t, quoted_b = table.loc[where, f"paper_{key}"].iloc[0], base_row[f"paper_{key}"]
            if quoted_t is not None and quoted_b is not None:
                table.loc[where, f"paper_delta_{key}"] = float(quoted_t) - float(quoted_b)
    return table.reset_index(drop=True)


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(table: pd.DataFrame, title: str, note: str, paper: dict[str, Any]) -> str:
    """Render the Table 1 view as Markdown: ours (mean ± std over seeds) | paper (quoted) | Δ."""
    lines = [f"# {title}", ""]
    if note:
        lines += [f"> {note}", ""]
    header = ["model", "guidance", "N", "seeds"]
    for key in METRIC_KEYS:
        header += [METRIC_LABELS[key], f"{METRIC_LABELS[key]} paper†", f"Δ{METRIC_LABELS[key]}"]
    header += ["Params", "Steps", "Time (s/img)", "Time paper†", "img/s", "precision", "commit"]
    body = []
    for _, row in table.iterrows():
        cells = [row["model_label"], row["guidance"], str(row["N"]), row["seeds"]]
        for key in METRIC_KEYS:
            digits = MARKDOWN_DIGITS[key]
            ours = _fmt(row[key], digits)
            if row["seeds"].count(",") and not pd.isna(row.get(f"{key}_std")):
                ours += f" ± {_fmt(row[f'{key}_std'], digits)}"
            elif key == FID and not pd.isna(row.get("fid_bootstrap_std")):
                ours += f" ± {_fmt(row['fid_bootstrap_std'], digits)} (bootstrap)"
            delta = row.get(f"delta_{key}")
            delta_txt = "" if delta is None or pd.isna(delta) else f"{delta:+.{digits}f}"
            if delta_txt and row.get(f"delta_{key}_within_noise") is True:
                delta_txt += " ≈"
            paper_delta = row.get(f"paper_delta_{key}")
            if delta_txt and paper_delta is not None and not pd.isna(paper_delta):
                delta_txt += f" (paper {paper_delta:+.{digits}f})"
            cells += [ours, _fmt(row[f"paper_{key}"], digits), delta_txt]
        cells += [str(row["params"]), str(row["steps"]), _fmt(row["time_s"], 3),
                  _fmt(row["paper_time_s"], 1), _fmt(row["images_per_s"], 2),
                  str(row["precision_mode"]), str(row["commit"])]  # fmt: skip
        body.append(cells)
    lines.append(pd.DataFrame(body, columns=header).to_markdown(index=False))
    lines += [
        "",
        "† quoted, not re-measured: " + str((paper or {}).get("source", "no source given")).strip(),
        "Δ = this row − the same model's baseline row over the same seeds (paired);"
        " ≈ marks a delta whose 95% CI over seeds contains 0 (within seed noise);"
        " a single seed gives no spread, so no ≈ is possible.",
    ]
    return "\n".join(lines) + "\n"


def sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """β-sweep view: one row per (model, β, guidance params), metrics averaged over seeds."""
    cols = ["model", "beta", "guidance_params"]
    agg = frame.groupby(cols, sort=True)[list(METRIC_KEYS)].mean().reset_index()
    agg["seeds"] = frame.groupby(cols, sort=True)["seed"].apply(lambda s: len(set(s))).values
    return agg

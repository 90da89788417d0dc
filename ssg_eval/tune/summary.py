"""Tune outputs: paired-delta table (CSV/Markdown), plots, cost figures and the tuned guidance file.

Reads the halving state and the candidates' cached features through the evaluator; it never
samples beyond what the state already measured and never changes a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ssg_eval.analysis.paired import paired_bootstrap, project_mde
from ssg_eval.metrics.keys import FID, IS, PRECISION, RECALL
from ssg_eval.metrics.resampled import fid_stat, inception_score_stat, manifold_stats
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.runs.io import atomic_write_json, atomic_write_text
from ssg_eval.tune.space import BASELINE, Candidate
from ssg_eval.utils.logging import get_logger
from ssg_eval.utils.provenance import collect_provenance

__all__ = ["cost_summary", "paired_rows", "resolvability", "write_report", "write_tuned_guidance"]

log = get_logger(__name__)
REPORT_SIZES = (5_000, 10_000, 20_000, 50_000)  # N at which the MDE is projected


def _stats_of(evaluator, cfg, run, ref_feats, reference, device) -> dict[str, Any]:
    m = cfg.metrics
    mu_ref, sigma_ref = (reference.mu, reference.sigma) if reference.mu is not None else (
        feature_statistics(ref_feats["pool"]))  # fmt: skip
    precision, recall = manifold_stats(ref_feats["pool"], run.features["pool"], k=int(m.pr_k),
                                       device=device)  # fmt: skip
    return {
        FID: fid_stat(run.features["pool"], mu_ref, sigma_ref, device=device),
        IS: inception_score_stat(run.features["logits"], int(m.is_split_size)),
        PRECISION: precision,
        RECALL: recall,
    }


def paired_rows(evaluator, state: dict, candidates: Sequence[Candidate], tune_cfg) -> pd.DataFrame:
    """One row per measured (candidate, N): metrics and paired deltas against the baseline at N.

    Deltas of FID, IS, precision and recall come with paired and unpaired bootstrap CIs
    (class-stratified, `tune.stats`), the paired standard error and the minimum detectable
    |Δ| (`mde_*`). Rows are sorted by N, then candidate key.
    """
    from ssg_eval.utils.dist import resolve_device

    by_key = {c.key: c for c in candidates}
    stats_cfg = tune_cfg.stats
    rows, cache = [], {}
    for entry in sorted(state["evaluations"].values(), key=lambda e: (e["n"], e["key"])):
        key, n = entry["key"], entry["n"]
        cand = by_key[key]
        row = {"candidate": key, **cand.params, "n": n, **entry["metrics"],
               "new_samples": entry["new_samples"], "device_s": entry["device_s"]}  # fmt: skip
        if key != BASELINE and stats_cfg.bootstrap_resamples >= 2:
            if n not in cache:
                base = evaluator.ensure(by_key[BASELINE], n)
                cfg = evaluator.compose(by_key[BASELINE], n)
                reference, ref_feats = evaluator.reference(cfg)
                device = resolve_device(cfg.metrics.feature_device)
                stats = _stats_of(evaluator, cfg, base, ref_feats, reference, device)
                cache[n] = (cfg, base, reference, ref_feats, device, stats)
            cfg, base, reference, ref_feats, device, base_stats = cache[n]
            run = evaluator.ensure(cand, n)
            cand_stats = _stats_of(evaluator, cfg, run, ref_feats, reference, device)
            for metric in (FID, IS, PRECISION, RECALL):
                out = paired_bootstrap(
                    base_stats[metric], cand_stats[metric], n,
                    num_resamples=int(stats_cfg.bootstrap_resamples), seed=int(stats_cfg.seed),
                    confidence=float(stats_cfg.confidence), power=float(stats_cfg.power),
                    strata=base.labels,
                )  # fmt: skip
                for field in ("delta", "ci_low", "ci_high", "se", "unpaired_ci_low",
                              "unpaired_ci_high", "mde"):  # fmt: skip
                    row[f"d_{metric}_{field}".replace("_delta", "")] = out[field]
        rows.append(row)
    return pd.DataFrame(rows)


def resolvability(frame: pd.DataFrame, target_gain: float) -> list[str]:
    """Sentences "at N samples a <gain> FID gain is (not) resolvable", from the measured MDEs."""
    if "d_fid_mde" not in frame or frame["d_fid_mde"].isna().all():
        return ["no paired bootstrap was run (tune.stats.bootstrap_resamples < 2)"]
    lines = []
    for n, group in frame.dropna(subset=["d_fid_mde"]).groupby("n"):
        mde = float(group["d_fid_mde"].median())
        verdict = "resolvable" if mde <= target_gain else "not resolvable"
        projected = ", ".join(f"{size // 1000}k: {project_mde(mde, int(n), size):.3g}"
                              for size in REPORT_SIZES)  # fmt: skip
        lines.append(
            f"at N={int(n)}: median paired SE of dFID {group['d_fid_se'].median():.3g}, minimum "
            f"detectable |dFID| {mde:.3g}, so a {target_gain:g} FID gain is {verdict} "
            f"(projected MDE, 1/sqrt(N): {projected})"
        )
    return lines


def cost_summary(state: dict, final_rows: int = 2, final_n: int = 50_000) -> dict[str, Any]:
    """Samples and device-hours spent, the measured rate and the projection for the final rows."""
    spent = state["spent"]
    rate = spent["device_s"] / spent["samples"] if spent["samples"] else math.nan
    return {
        "samples_spent": int(spent["samples"]),
        "device_hours_spent": spent["device_s"] / 3600,
        "device_s_per_sample": rate,
        "final_rows": final_rows,
        "final_n": final_n,
        "device_hours_final_rows": rate * final_rows * final_n / 3600,
    }


def _plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    n0 = int(frame["n"].min())
    first = frame[frame["n"] == n0]
    base_fid = float(first.loc[first.candidate == BASELINE, FID].iloc[0])
    fig, ax = plt.subplots(figsize=(6, 4))
    ssg = first[first.candidate != BASELINE]
    for (reading, schedule, temp), group in ssg.groupby(["reading", "schedule", "temperature"]):
        group = group.sort_values("beta")
        beta = np.concatenate([[0.0], group["beta"]])
        fid = np.concatenate([[base_fid], group[FID]])
        ax.plot(beta, fid, marker="o", label=f"{reading} / {schedule} / T={temp:g}")
        if "d_fid_ci_low" in group:
            low = np.concatenate([[base_fid], base_fid + group["d_fid_ci_low"]])
            high = np.concatenate([[base_fid], base_fid + group["d_fid_ci_high"]])
            ax.fill_between(beta, low, high, alpha=0.2)
    ax.set_xlabel("beta")
    ax.set_ylabel(f"FID at N={n0} (band: paired CI of dFID)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "fid_vs_beta.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(first[FID], first[IS], c=first["beta"], cmap="viridis")
    front = first.sort_values([FID, IS], ascending=[True, False])
    front = front[front[IS] >= front[IS].cummax()]  # Pareto front: lower FID, higher IS
    ax.plot(front[FID], front[IS], color="red", label="FID-IS front")
    for _, row in first.iterrows():
        ax.annotate(row["candidate"], (row[FID], row[IS]), fontsize=5)
    ax.set_xlabel(f"FID (N={n0})")
    ax.set_ylabel("IS")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "fid_is_front.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def write_tuned_guidance(evaluator, state: dict, winner: Candidate, provenance: dict,
                         guidance_dir: Path) -> Path:  # fmt: skip
    """Write the winner's resolved `guidance` node to `guidance/tuned_<model.name>.yaml`.

    The file is a plain guidance group option (`defaults: [base_guidance, _self_]`); the suite
    loads it through Hydra's search path (`make table1 GUIDANCE=tuned`).
    """
    n = state["final"]["n"] if state["final"] else state["rungs"][-1]["n"]
    cfg = evaluator.compose(winner, n)
    node = OmegaConf.to_container(cfg.guidance, resolve=True)  # name stays: the table's SSG row
    lines = [f"# {line}" for line in OmegaConf.to_yaml(provenance).splitlines()]
    if float(winner.params["temperature"]) != float(provenance["baseline_temperature"]):
        temperature = winner.params["temperature"]
        lines.append(f"# NOTE: the winner samples at sampler.temperature={temperature}; "
                     "pass it to make table1 as well")  # fmt: skip
    body = OmegaConf.to_yaml({"defaults": ["base_guidance", "_self_"], **node})
    path = Path(guidance_dir) / "guidance" / f"tuned_{cfg.model.name}.yaml"
    atomic_write_text(path, "\n".join(["# Tuned guidance written by `make tune`; provenance:",
                                       *lines, body]))  # fmt: skip
    return path


def write_report(evaluator, state, candidates, tune_cfg, tune_dir: Path, guidance_dir: Path,
                 fingerprint: str) -> dict[str, Path]:  # fmt: skip
    """CSV, Markdown, plots, cost JSON and (with a winner) the tuned guidance file."""
    frame = paired_rows(evaluator, state, candidates, tune_cfg)
    written = {"csv": tune_dir / "candidates.csv"}
    atomic_write_text(written["csv"], frame.to_csv(index=False))
    written.update({p.stem: p for p in _plot(frame, tune_dir)})
    cost = cost_summary(state, final_n=int(tune_cfg.halving.n_final))
    by_key = {c.key: c for c in candidates}
    winner = by_key.get(state.get("winner"))
    git = collect_provenance()["git"]
    base_cfg = evaluator.compose(by_key[BASELINE], int(frame["n"].min()))
    final_row = {}
    if state["final"] and winner is not None and winner.key != BASELINE:
        sel = frame[(frame.candidate == winner.key) & (frame.n == state["final"]["n"])]
        final_row = {k: float(v) for k, v in sel.iloc[0].items() if k.startswith("d_fid")}
    provenance = {
        "model": str(tune_cfg.target),
        "baseline_experiment": f"{tune_cfg.experiment} guidance={tune_cfg.baseline_guidance}",
        "space_fingerprint": fingerprint, "space": OmegaConf.to_container(tune_cfg.space),
        "objective": str(tune_cfg.objective), "winner": state.get("winner"),
        "winner_params": winner.params if winner else None,
        "n": state["final"]["n"] if state["final"] else None, "paired_dfid": final_row,
        "commit": git.get("commit"), "dirty": git.get("dirty"),
        "baseline_temperature": float(base_cfg.sampler.temperature),
    }  # fmt: skip
    atomic_write_json(tune_dir / "summary.json", {"provenance": provenance, "cost": cost,
                                                  "rungs": state["rungs"],
                                                  "stopped": state["stopped"]})  # fmt: skip
    written["summary_json"] = tune_dir / "summary.json"
    if winner is not None and state["final"]:
        written["guidance"] = write_tuned_guidance(evaluator, state, winner, provenance,
                                                   guidance_dir)  # fmt: skip
    written["md"] = tune_dir / "summary.md"
    atomic_write_text(written["md"], _markdown(frame, state, provenance, cost, tune_cfg,
                                               written.get("guidance")))  # fmt: skip
    return written


def _markdown(frame, state, provenance, cost, tune_cfg, guidance_path) -> str:
    shown = [c for c in ["candidate", "n", FID, IS, PRECISION, RECALL, "d_fid", "d_fid_ci_low",
                         "d_fid_ci_high", "d_fid_mde", "d_is", "d_precision", "d_recall"]
             if c in frame]  # fmt: skip
    lines = [f"# Finding beta: {provenance['model']} ({provenance['baseline_experiment']})", "",
             f"Objective `{provenance['objective']}`, space fingerprint "
             f"`{provenance['space_fingerprint']}`, commit `{provenance['commit']}`.",
             ""]  # fmt: skip
    for rung in state["rungs"]:
        lines.append(f"- N={rung['n']}: ranked {', '.join(rung['ranking'])}; kept "
                     f"{', '.join(rung['kept'])}")  # fmt: skip
    if state["stopped"]:
        lines.append(f"- stopped early: {state['stopped']['reason']}")
    lines += ["", f"**Winner:** `{state.get('winner')}`"
              + (f" at N={state['final']['n']}" if state["final"] else " (final N not reached)"),
              ""]  # fmt: skip
    if provenance["paired_dfid"]:
        d = provenance["paired_dfid"]
        lines.append(f"dFID vs baseline {d['d_fid']:+.4g}, paired {tune_cfg.stats.confidence:.0%} "
                     f"CI [{d['d_fid_ci_low']:.4g}, {d['d_fid_ci_high']:.4g}]")  # fmt: skip
    lines += [
        "",
        "## Resolution",
        "",
        *[f"- {s}" for s in resolvability(frame, float(tune_cfg.stats.target_gain))],
        "",  # fmt: skip
        "## Cost",
        "",
        f"- spent: {cost['samples_spent']} samples, {cost['device_hours_spent']:.4g} "
        f"device-hours ({cost['device_s_per_sample']:.3g} device-s per sample, measured)",
        f"- projected: {cost['final_rows']} final rows x {cost['final_n']} samples = "
        f"{cost['device_hours_final_rows']:.4g} device-hours at the measured rate",
        "",
    ]
    if guidance_path:
        lines += [
            f"Tuned guidance: `{guidance_path}`; use it with `make table1 GUIDANCE=tuned`.",
            "",
        ]
    lines += ["## Candidates", "", frame[shown].round(4).to_markdown(index=False), ""]
    return "\n".join(lines)

"""The report page's assets from finished runs: band deltas, paired grids, figures, the page file.

Reads finished runs (manifests, shards, `bands.npz`) and the report's own outputs, re-generates
the few grid samples of SSG cells for their token maps, and writes `<stem>_report/` atomically; it
must not compute statistics or draw (that is `analysis.bands`, `analysis.tokens`, `report.grids`
and `report.page`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssg_eval.errors import UserError
from ssg_eval.report.page import Figure, band_page_table, render_page, table1_page_table
from ssg_eval.runs.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ssg_eval.runs.layout import results_dir
from ssg_eval.runs.records import read_record
from ssg_eval.utils.logging import get_logger

__all__ = ["band_outputs", "paired_runs", "provenance", "write_grid", "write_report_page"]

log = get_logger(__name__)
GRID_VERSION = 1  # bump when the grid drawing changes (invalidates cached grids)


def provenance(run_dir: Path) -> str:
    """`<run> (config <hash12>, commit <sha12>[+dirty])` from the run's manifest."""
    manifest = read_record(run_dir / "manifest.json", "manifest")
    git = manifest.get("git") or {}
    dirty = "+dirty" if git.get("dirty") else ""
    return (f"{run_dir.name} (config {str(manifest.get('config_hash'))[:12]}, "
            f"commit {str(git.get('commit'))[:12]}{dirty})")  # fmt: skip


def paired_runs(frame: pd.DataFrame, baseline: str) -> list[dict[str, Any]]:
    """Every (model, seed) run whose guidance is not `baseline`, with that seed's baseline run."""
    pairs = []
    for (model, seed), group in frame.groupby(["model", "seed"], sort=True):
        base = group[group.guidance == baseline]
        if base.empty:
            continue
        for _, row in group[group.guidance != baseline].sort_values("run").iterrows():
            pairs.append(
                {
                    "model": model,
                    "seed": int(seed),
                    "guidance": row["guidance"],
                    "baseline_run": base["run"].iloc[0],
                    "guided_run": row["run"],
                }
            )
    return pairs


def band_outputs(cfg: Any, runs_dir: Path, pairs: list[dict], out: Path) -> dict[str, Path]:
    """`<stem>_bands.csv` and `.png`: paired deltas of every pair whose runs have `bands.npz`."""
    from ssg_eval.analysis.band_plots import plot_band_deltas
    from ssg_eval.analysis.bands import band_deltas
    from ssg_eval.runs.npz import load_npz

    records = []
    for pair in pairs:
        files = [runs_dir / pair[k] / "bands.npz" for k in ("baseline_run", "guided_run")]
        if not all(f.is_file() for f in files):
            continue
        base, guided = (load_npz(f) for f in files)
        rows = band_deltas(base, guided, num_resamples=int(cfg.metrics.band_bootstrap_resamples),
                           seed=0, psd_edges=list(cfg.metrics.psd_band_edges))  # fmt: skip
        line = f"{pair['guided_run']} vs {pair['baseline_run']}"
        records += [{"model": pair["model"], "line": line, **pair, **r} for r in rows]
    if not records:
        return {}
    table = pd.DataFrame(records)
    return {"bands_csv": atomic_write_text(out.with_suffix(".csv"), table.to_csv(index=False)),
            "bands_png": plot_band_deltas(table, out.with_suffix(".png"))}  # fmt: skip


def _run_images(run_dir: Path, indices: list[int]) -> np.ndarray:
    from omegaconf import OmegaConf

    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.sampling.shards import read_shard, shard_path

    manifest = read_record(run_dir / "manifest.json", "manifest", need=("config", "shards"))
    plan = plan_from_config(OmegaConf.create(manifest["config"]))
    images = []
    for index in indices:
        chunk = index // plan.chunk_size
        path = shard_path(run_dir, chunk)
        shard = read_shard(path, manifest["shards"][path.name])[0]
        images.append(shard[index - chunk * plan.chunk_size])
    return np.stack(images)


def write_grid(runs_dir: Path, pair: dict, count: int, out_dir: Path) -> tuple[Path, str]:
    """The paired grid PNG of one pair (skipped when its record matches) and a caption note."""
    from omegaconf import OmegaConf

    from ssg_eval.report.grids import grid_indices, grid_png
    from ssg_eval.sampling.plan import plan_from_config

    base_dir, guided_dir = runs_dir / pair["baseline_run"], runs_dir / pair["guided_run"]
    base_m, guided_m = (
        read_record(base_dir / "manifest.json", "manifest", need=("config", "config_hash")),
        read_record(guided_dir / "manifest.json", "manifest", need=("config", "config_hash")),
    )
    plan = plan_from_config(OmegaConf.create(base_m["config"]))
    indices = grid_indices(plan.labels(np.arange(min(plan.num_samples, 10 * count + 1000))), count)
    ssg = "ssg" in guided_m["config"]["guidance"].get("order", [])
    record = {"version": GRID_VERSION, "baseline": base_m["config_hash"], "indices": indices,
              "guided": guided_m["config_hash"], "token_maps": ssg}  # fmt: skip
    png, meta = out_dir / f"{pair['guided_run']}.png", out_dir / f"{pair['guided_run']}.json"
    if png.is_file() and meta.is_file():
        cached = read_record(meta, "grid_record", need=("record", "note"))
        if cached["record"] == record:
            return png, cached["note"]
    base_images, guided_images = _run_images(base_dir, indices), _run_images(guided_dir, indices)
    changed, note = None, ""
    if ssg:
        changed, note = _token_maps(base_m["config"], guided_m["config"], indices,
                                    base_images, guided_images)  # fmt: skip
    captions = [f"#{i} class {plan.label_of(i)} seed {plan.sample_seed(i)}" for i in indices]
    atomic_write_bytes(png, grid_png(base_images, guided_images, captions, changed))
    atomic_write_json(meta, {"record": record, "note": note})
    return png, note


def _token_maps(base_cfg, guided_cfg, indices, base_images, guided_images):
    from ssg_eval.analysis.tokens import paired_tokens

    try:
        tokens = paired_tokens(base_cfg, guided_cfg, indices)
    except (FileNotFoundError, UserError) as error:  # no checkpoint here, or rng=official
        log.warning("paired grid without token maps: %s", error)
        return None, f" Token maps left out: {error}."
    same = np.array_equal(tokens.baseline_images, base_images) and np.array_equal(
        tokens.guided_images, guided_images
    )
    if not same:
        log.warning("the token re-run does not reproduce the stored images of %s", indices)
    return tokens.changed, ("" if same else " The re-run for the token maps did NOT reproduce "
                            "the stored images (other device or threads?).")  # fmt: skip


def _copy(src: Path, out_dir: Path, name: str) -> str:
    atomic_write_bytes(out_dir / "figures" / name, src.read_bytes())
    return f"figures/{name}"


def _optional_figures(results: Path, stem: str, frame: pd.DataFrame, out_dir: Path) -> list:
    """The β-sweep plot of this table and the tuning plots under results/tune, where present."""
    figures = []
    sweep = results / f"{stem}_sweep.png"
    if sweep.is_file():
        figures.append(Figure(_copy(sweep, out_dir, "sweep.png"),
                              "FID and IS against β, one line per model (seed means).",
                              f"runs: {', '.join(frame['run'])}"))  # fmt: skip
    for plot in sorted((results / "tune").glob("*/*.png")):
        summary = plot.parent / "summary.json"
        commit = "?"
        if summary.is_file():
            record = read_record(summary, "tune_summary", need=("provenance",))
            commit = record["provenance"].get("commit") or "?"
        what = {
            "fid_vs_beta.png": "FID at the first rung against β, band = baseline + paired ΔFID CI",
            "fid_is_front.png": "FID–IS of every candidate and its Pareto front",
        }
        figures.append(
            Figure(
                _copy(plot, out_dir, f"tune_{plot.parent.name}_{plot.name}"),
                f"Tuning of {plot.parent.name}: {what.get(plot.name, plot.stem)}.",
                f"results/tune/{plot.parent.name} (commit {str(commit)[:12]})",
            )
        )
    return figures


def _spectra(results: Path, stem: str, runs_dir: Path, out_dir: Path) -> list:
    folder = results / f"{stem}_spectral"
    source = folder / "source.json"
    if not source.is_file():
        return []
    runs = read_record(source, "spectral_source", need=("baseline", "ssg"))
    origin = " vs ".join(provenance(runs_dir / name) for name in (runs["ssg"], runs["baseline"]))
    what = {
        "pixel_spectrum.png": "Radially averaged amplitude of the images ÷ the reference's, "
        "with and without SSG.",
        "latent_spectrum.png": "Paired ΔLog magnitude of the latent "
        "f̂ after each step (SSG − baseline), mean ± 1 std, previous scale's Nyquist dashed.",
    }
    return [Figure(_copy(folder / name, out_dir, f"spectral_{name}"), caption, origin)
            for name, caption in what.items() if (folder / name).is_file()]  # fmt: skip


def write_report_page(cfg: Any) -> dict[str, Path]:
    """Band deltas, paired grids and `<paths.results>/<stem>_report/index.html` of a report.

    Returns:
        Written paths: `page`, and `bands_csv` / `bands_png` when some pair has `bands.npz`.
    """
    from ssg_eval.report.table import collect_runs

    report, results = cfg.report, results_dir(cfg)
    stem, runs_dir = str(report.output_stem), results_dir(cfg) / "runs"
    out_dir = results / f"{stem}_report"
    frame = collect_runs(results, runs=None if report.runs is None else list(report.runs),
                         prefix=report.run_prefix)  # fmt: skip
    pairs = paired_runs(frame, str(report.baseline))
    written = band_outputs(cfg, runs_dir, pairs, results / f"{stem}_bands")
    tables = [
        table1_page_table(
            pd.read_csv(results / f"{stem}.csv"),
            f"{stem}.csv",
            f"Ours (mean ± std over seeds) beside the quoted paper numbers; Δ = row − the same "
            f"model's {report.baseline} row over the same seeds, with its 95 % CI over seeds.",
        )
    ]
    sections = [("β sweep and tuning", _optional_figures(results, stem, frame, out_dir))]
    band_figures = []
    if written:
        tables.append(
            band_page_table(
                pd.read_csv(written["bands_csv"]),
                written["bands_csv"].name,
                "Paired Δ (guided − baseline, same labels and per-sample seeds) of FWD per "
                "wavelet-packet band and of the power ratio to the reference per radial "
                "band, paired bootstrap 95 % CI stratified by class (docs/METRICS.md).",
            )
        )
        band_figures.append(Figure(_copy(written["bands_png"], out_dir, "bands.png"),
                                   "Paired Δ per band with its 95 % CI, one line per guided run.",
                                   "; ".join(provenance(runs_dir / p["guided_run"])
                                             for p in pairs)))  # fmt: skip
    sections += [("Per-band deltas", band_figures),
                 ("Spectra", _spectra(results, stem, runs_dir, out_dir))]  # fmt: skip
    grids = []
    for pair in pairs if int(report.grid_samples) > 0 else []:
        png, note = write_grid(runs_dir, pair, int(report.grid_samples), out_dir / "grids")
        grids.append(
            Figure(
                f"grids/{png.name}",
                f"{pair['guided_run']} against "
                f"{pair['baseline_run']}: the first {report.grid_samples} sample "
                "indices of distinct classes (stored samples; token maps from a re-run)." + note,
                " vs ".join(provenance(runs_dir / pair[k]) for k in ("guided_run", "baseline_run")),
            )
        )
    sections.append(("Paired sample grids", grids))
    commits = sorted({str(c)[:12] for c in frame["commit"]})
    html = render_page(str(report.title), str(report.note), tables,
                       [(h, f) for h, f in sections if f],
                       f"Rendered from {len(frame)} runs under {runs_dir} (commits "
                       f"{', '.join(commits)}); static files only.")  # fmt: skip
    written["page"] = atomic_write_text(out_dir / "index.html", html)
    return written

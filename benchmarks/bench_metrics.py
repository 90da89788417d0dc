"""Metric arithmetic and feature extraction: ours vs scipy, an ADM-style numpy port, torch-fidelity.

Three comparisons, printed side by side and appended as JSON lines to results/bench/metrics.jsonl:
Fréchet distance (`eigh` vs scipy `sqrtm`, ADM's formula) on N_fake x D vs N_real x D features;
precision/recall (ours, torch blockwise vs a straightforward numpy port of ADM's ManifoldEstimator,
both in the same distance mode: time, identical values, peak RSS of a child process each); Inception
feature extraction (bench_features.py: ours vs torch-fidelity's own extraction functions, same
random weights and images). Never imported by `ssg_eval`.

    python benchmarks/bench_metrics.py --quick      # CI, < 60 s on 2 cores
    python benchmarks/bench_metrics.py              # 50k x 2048 vs 10k x 2048, 64 images
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUICK = {"n_fake": 2000, "n_real": 1000, "dim": 256, "block": 500}
FULL = {"n_fake": 50_000, "n_real": 10_000, "dim": 2048, "block": 10_000}


def make_features(num: int, dim: int, seed: int, shift: float) -> np.ndarray:
    """ReLU-like correlated float32 features (non-negative, like Inception pool3), in row blocks."""
    rng = np.random.default_rng(seed)
    mix = (np.random.default_rng(1234).normal(size=(64, dim)) / 8).astype(np.float32)
    out = np.empty((num, dim), dtype=np.float32)
    for start in range(0, num, 5000):
        rows = min(5000, num - start)
        latent = rng.normal(size=(rows, 64)).astype(np.float32)
        noise = 0.5 * rng.normal(size=(rows, dim)).astype(np.float32)
        out[start : start + rows] = np.maximum(latent @ mix + noise + 0.3 + shift, 0)
    return out


# -- ADM-style numpy baseline (ManifoldEstimator with full distance rows and np.partition) -------
def _numpy_distances(u: np.ndarray, v: np.ndarray, fp16: bool) -> np.ndarray:
    if fp16:
        with np.errstate(over="ignore", invalid="ignore"):
            u16, v16 = u.astype(np.float16), v.astype(np.float16)
            norm_u = np.square(u16).astype(np.float32).sum(1).astype(np.float16)
            norm_v = np.square(v16).astype(np.float32).sum(1).astype(np.float16)
            prod = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
            dist = np.maximum(norm_u[:, None] - 2 * prod + norm_v[None, :], np.float16(0))
        if np.isfinite(dist).all():
            return dist.astype(np.float32)
    norm_u, norm_v = np.square(u).sum(1), np.square(v).sum(1)
    return np.maximum(norm_u[:, None] - 2 * (u @ v.T) + norm_v[None, :], np.float32(0))


def numpy_precision_recall(real, fake, k=3, block=10_000, fp16=True) -> tuple[float, float]:
    """ADM's compute_prec_recall(real, fake), numpy only (TF graph replaced by numpy ops)."""

    def radii(feats):
        out = np.zeros(len(feats), dtype=np.float32)
        row = np.zeros((block, len(feats)), dtype=np.float32)  # ADM's distance_batch
        for b1 in range(0, len(feats), block):
            rows = feats[b1 : b1 + block]
            for b2 in range(0, len(feats), block):
                row[: len(rows), b2 : b2 + block] = _numpy_distances(
                    rows, feats[b2 : b2 + block], fp16
                )
            out[b1 : b1 + len(rows)] = np.partition(row[: len(rows)], list(range(k + 1)), axis=1)[
                :, k
            ]
        return out

    r_real, r_fake = radii(real), radii(fake)
    real_in = np.zeros(len(real), dtype=bool)
    fake_in = np.zeros(len(fake), dtype=bool)
    for b1 in range(0, len(real), block):
        for b2 in range(0, len(fake), block):
            dist = _numpy_distances(real[b1 : b1 + block], fake[b2 : b2 + block], fp16)
            real_in[b1 : b1 + block] |= (dist <= r_fake[None, b2 : b2 + block]).any(1)
            fake_in[b2 : b2 + block] |= (dist <= r_real[b1 : b1 + block, None]).any(0)
    return float(fake_in.mean()), float(real_in.mean())


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_precision_recall(impl: str, sizes: dict[str, int], dtype: str) -> dict[str, Any]:
    """Runs inside a fresh process: features, then one P/R implementation; time and peak RSS."""
    real = make_features(sizes["n_real"], sizes["dim"], seed=1, shift=0.0)
    fake = make_features(sizes["n_fake"], sizes["dim"], seed=2, shift=0.05)
    import torch

    from ssg_eval.metrics.precision_recall import precision_recall

    def run(real, fake, block):
        if impl == "ours":
            return precision_recall(real, fake, k=3, block_size=block, distance_dtype=dtype)
        return numpy_precision_recall(real, fake, 3, block, fp16=dtype == "float16")

    run(real[:64], fake[:64], 32)  # warm-up (kernel and thread-pool initialisation)
    baseline = _maxrss_mb()
    start = time.perf_counter()
    values = run(real, fake, sizes["block"])
    return {
        "impl": impl,
        "time_s": time.perf_counter() - start,
        "values": list(values),
        "peak_rss_mb": _maxrss_mb(),
        "baseline_rss_mb": baseline,
        "threads": torch.get_num_threads(),
    }


def bench_precision_recall(sizes: dict[str, int], dtype: str) -> dict[str, Any]:
    runs = {}
    for impl in ("ours", "numpy"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            impl,
            "--sizes",
            json.dumps(sizes),
            "--dtype",
            dtype,
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
        runs[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
    ours, base = runs["ours"], runs["numpy"]
    return {
        "bench": "precision_recall",
        "distance_dtype": dtype,
        **sizes,
        "ours": ours,
        "numpy": base,
        "speedup": base["time_s"] / ours["time_s"],
        "identical": ours["values"] == base["values"],
    }


def bench_frechet(sizes: dict[str, int]) -> dict[str, Any]:
    from ssg_eval.metrics.frechet import frechet_distance
    from ssg_eval.metrics.stats import feature_statistics

    start = time.perf_counter()
    mu1, sigma1 = feature_statistics(make_features(sizes["n_fake"], sizes["dim"], 2, 0.05))
    mu2, sigma2 = feature_statistics(make_features(sizes["n_real"], sizes["dim"], 1, 0.0))
    stats_s = time.perf_counter() - start
    times, values = {}, {}
    for method in ("eigh", "sqrtm"):
        start = time.perf_counter()
        values[method] = frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
        times[method] = time.perf_counter() - start
    return {
        "bench": "frechet",
        **sizes,
        "stats_s": stats_s,
        "eigh_s": times["eigh"],
        "sqrtm_s": times["sqrtm"],
        "speedup": times["sqrtm"] / times["eigh"],
        "fid_eigh": values["eigh"],
        "fid_sqrtm": values["sqrtm"],
        "abs_diff": abs(values["eigh"] - values["sqrtm"]),
        "rel_diff": abs(values["eigh"] - values["sqrtm"]) / abs(values["sqrtm"]),
    }


def bench_extraction(quick: bool) -> dict[str, Any]:
    """The Inception comparison lives in bench_features.py (same record, one code path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_features", Path(__file__).parent
                                                  / "bench_features.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bench_extraction(dict(module.QUICK if quick else module.FULL))


def _common(quick: bool) -> dict[str, Any]:
    from ssg_eval.utils.provenance import device_description, git_state, library_versions

    return {
        "quick": quick,
        "device": "cpu",
        "device_info": device_description(),
        "versions": library_versions(),
        **git_state(),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """CLI entry: run the three comparisons, print ratios, append JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI sizes (< 60 s on 2 cores)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument(
        "--only", nargs="*", default=["frechet", "pr"], choices=["frechet", "pr", "extraction"]
    )  # extraction: bench_features.py
    results = Path(os.environ.get("SSG_EVAL_RESULTS", REPO / "results"))
    parser.add_argument("--out", default=str(results / "bench" / "metrics.jsonl"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_precision_recall(args.child, json.loads(args.sizes), args.dtype)))
        return []
    sizes = dict(QUICK if args.quick else FULL)
    records = []
    if "frechet" in args.only:
        r = bench_frechet(sizes)
        print(
            f"frechet {r['n_fake']}x{r['dim']} vs {r['n_real']}x{r['dim']}: "
            f"eigh {r['eigh_s']:.2f} s | scipy sqrtm {r['sqrtm_s']:.2f} s | "
            f"x{r['speedup']:.1f} | rel diff {r['rel_diff']:.1e}"
        )
        records.append(r)
    if "pr" in args.only:
        r = bench_precision_recall(sizes, args.dtype)
        o, n = r["ours"], r["numpy"]
        print(
            f"precision/recall {r['n_fake']} vs {r['n_real']} x{r['dim']} ({args.dtype}): "
            f"ours {o['time_s']:.1f} s, {o['peak_rss_mb']:.0f} MB | "
            f"numpy ADM-style {n['time_s']:.1f} s, {n['peak_rss_mb']:.0f} MB | "
            f"x{r['speedup']:.2f} | identical {r['identical']} {o['values']}"
        )
        records.append(r)
    if "extraction" in args.only:
        r = bench_extraction(args.quick)
        print(
            f"inception extraction {r['images']} images 256px, batch {r['batch_size']}: ours "
            f"{r['ours_img_s']:.2f} img/s | torch-fidelity {r['torch_fidelity_img_s']:.2f} img/s"
            f" | x{r['speedup']:.2f} | max rel diff {r['max_rel_diff']}"
        )
        records.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    common = _common(args.quick)
    with open(out, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({**common, **record}, sort_keys=True) + "\n")
    return records


if __name__ == "__main__":
    main()

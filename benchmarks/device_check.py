"""One prepared device check: what a Table 1 row costs on this machine, printed as one table.

Builds the VAR-d16 architecture from `conf/` with name-derived random weights (no checkpoint),
times sampling with CFG and with CFG+SSG (alternating batches after warm-up), Inception feature
extraction (random weights, float32) and the metric arithmetic (FID, sFID, IS, precision/recall)
on synthetic features of the real sizes, records peak memory and projects the minutes of one
50k-sample row. Appends one JSON line to `<results>/bench/device_check.jsonl`. A global time
guard skips what is left once `--time-budget-s` is spent and still prints the table. Never
imported by ssg_eval.

    bash benchmarks/device_check.sh                       # CUDA: the full check (< 6 min, H200)
    python benchmarks/device_check.py --cpu --quick       # CI: tiny sizes, well under 60 s
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from ssg_eval.config import validate
from ssg_eval.features.extract import extract_features
from ssg_eval.features.inception import build_inception, make_random_inception_weights
from ssg_eval.guidance import build_processors
from ssg_eval.metrics.frechet import frechet_distance
from ssg_eval.metrics.inception_score import inception_score
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.models.load import build_model
from ssg_eval.sampling.generate import image_shape_of
from ssg_eval.sampling.loop import generate_batch, make_generators
from ssg_eval.utils.dist import autocast_dtype, setup_runtime
from ssg_eval.utils.provenance import git_state

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
GIB = float(2**30)
ROW_SAMPLES, ROW_INCEPTION = 50_000, 60_000  # one Table 1 row: 50k samples + 10k reference images
# Sizes per mode: (full, quick). Quick = the 256 schedule (V 4096, 10 scales) at depth 1 with a
# tiny 2x VAE and small feature sets: the same code paths, seconds on two CPU cores.
SIZES = {
    "num_images": (512, 2),
    "batch": (64, 1),
    "inception_images": (2000, 2),
    "inception_batch": (200, 1),
    "pr_reference": (10_000, 500),
    "pr_samples": (50_000, 2000),
    "pool_dim": (2048, 256),
    "spatial_dim": (2023, 253),
    "float32_images": (128, 0),
}
QUICK_MODEL = [
    "model.depth=1",
    "model.vae_ch=32",
    "model.vae_num_res_blocks=1",
    "model.vae_ch_mult=[1,1]",
    "model.num_classes=10",
    "sampler.num_samples=10",
]


class TimeGuard(Exception):
    """Raised before a part starts when the global time budget is spent."""


def sync(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU), so host clocks bracket it exactly."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator; the host RSS peak cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak CUDA memory allocated since `reset_peak`, or the process's peak host RSS, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB


def compose_cfg(args: argparse.Namespace, runtime: str, device: torch.device) -> Any:
    """The production config: `model`, `guidance=ssg`, `sampler=var_eval`, no checkpoints."""
    overrides = [
        f"model={args.model}",
        "guidance=ssg",
        "sampler=var_eval",
        f"runtime={runtime}",
        f"runtime.device={device.type}",
        "model.var_ckpt=null",
        "model.vae_ckpt=null",
    ]
    overrides += (QUICK_MODEL if args.quick else []) + list(args.override)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="sample", overrides=overrides)
    validate(cfg)
    return cfg


def time_sampling(
    var: Any,
    vae: Any,
    cfg: Any,
    processors: dict[str, list],
    device: torch.device,
    dtype_name: str,
    num_images: int,
    batch: int,
    deadline: float,
) -> dict[str, Any]:
    """Median seconds per batch of plain CFG and CFG+SSG, alternating after one warm-up each.

    Both variants get the same labels and per-sample seeds (the paired comparison of production
    runs). The loop stops early once `deadline` passes, after at least one timed pair.
    """
    dtype = autocast_dtype(dtype_name)
    sampler = cfg.sampler
    kwargs = dict(
        temperature=float(sampler.temperature),
        top_k=int(sampler.top_k),
        top_p=float(sampler.top_p),
        truncation_impl=str(sampler.truncation_impl),
        autocast_dtype=dtype,
        decode_dtype=dtype,
    )

    def one(name: str, index: int) -> float:
        first = index * batch
        labels_B = (torch.arange(first, first + batch) % int(cfg.model.num_classes)).to(device)
        generators = make_generators(range(first, first + batch), device)
        sync(device)
        start = time.perf_counter()
        generate_batch(var, vae, labels_B, generators, processors[name], **kwargs)
        sync(device)
        return time.perf_counter() - start

    reset_peak(device)
    one("cfg", 0), one("cfg_ssg", 0)  # warm-up (kernel selection, allocator), excluded
    times: dict[str, list[float]] = {"cfg": [], "cfg_ssg": []}
    for index in range(max(1, math.ceil(num_images / batch))):
        if index > 0 and time.perf_counter() > deadline:
            break
        for name in times:  # ABAB: drift hits both variants equally
            times[name].append(one(name, index))
    med = {name: statistics.median(values) for name, values in times.items()}
    return {
        "images_per_s_cfg": batch / med["cfg"],
        "images_per_s_cfg_ssg": batch / med["cfg_ssg"],
        "ssg_overhead_pct": 100.0 * (med["cfg_ssg"] / med["cfg"] - 1.0),
        "batch_s_cfg": times["cfg"],
        "batch_s_cfg_ssg": times["cfg_ssg"],
        "timed_images_per_variant": batch * len(times["cfg"]),
        "peak_gib": peak_gib(device),
    }


def time_inception(
    model: torch.nn.Module, images: np.ndarray, batch: int, device: torch.device, deadline: float
) -> dict[str, Any]:
    """Images/s of `extract_features` (host uint8 in, float32 features out) at one batch size.

    One batch of warm-up is excluded; then groups of up to 10 batches are timed until the images
    are used up or `deadline` passes (after at least one group).
    """
    reset_peak(device)

    def run(part: np.ndarray) -> None:
        extract_features([part], model, batch_size=batch, device=device, progress=False)

    run(images[:batch])
    done, seconds, group = 0, 0.0, 10 * batch
    for start in range(0, len(images), group):
        if done and time.perf_counter() > deadline:
            break
        part = images[start : start + group]
        sync(device)
        begin = time.perf_counter()
        run(part)
        sync(device)
        seconds += time.perf_counter() - begin
        done += len(part)
    return {"images_per_s": done / seconds, "images": done, "peak_gib": peak_gib(device)}


def synthetic_features(sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Non-negative float32 'pool' features (like pool3) and logits of the real shapes."""
    rng = np.random.default_rng(0)
    n_ref, n_fake, dim = sizes["pr_reference"], sizes["pr_samples"], sizes["pool_dim"]
    real = np.abs(rng.standard_normal((n_ref, dim), dtype=np.float32))
    fake = np.abs(rng.standard_normal((n_fake, dim), dtype=np.float32)) * np.float32(1.05)
    logits = rng.standard_normal((n_fake, 1008), dtype=np.float32) * np.float32(3.0)
    return {"real": real, "fake": fake, "logits": logits}


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of one synchronised call."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def time_frechet(real: np.ndarray, fake: np.ndarray, method: str) -> dict[str, Any]:
    """Seconds of what a run pays for FID/sFID: sample statistics + the Fréchet distance.

    The reference statistics are precomputed in production (stored `mu`/`sigma`), so they are
    built here outside the timed region.
    """
    mu_ref, sigma_ref = feature_statistics(real)
    seconds, value = timed(
        lambda: frechet_distance(*feature_statistics(fake), mu_ref, sigma_ref, method=method),
        torch.device("cpu"),
    )
    return {"seconds": seconds, "value": value, "dim": real.shape[1], "n": len(fake)}


def fmt(value: float | None, digits: int = 2) -> str:
    """A table cell: fixed digits, or 'n/a' for a missing/non-finite value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def projected_minutes(results: dict[str, Any], variant: str) -> float | None:
    """50k / sampling img/s + 60k / Inception img/s + metric seconds, in minutes (None if any
    figure is missing). Inception uses the production batch size when it was measured."""
    sampling = results.get("sampling") or {}
    inception = results.get("inception_production") or results.get("inception") or {}
    metric_parts = [results.get(key) or {} for key in ("pr", "fid", "sfid", "is")]
    if f"images_per_s_{variant}" not in sampling or "images_per_s" not in inception:
        return None
    if any("seconds" not in part for part in metric_parts):
        return None
    seconds = ROW_SAMPLES / sampling[f"images_per_s_{variant}"]
    seconds += ROW_INCEPTION / inception["images_per_s"] + sum(p["seconds"] for p in metric_parts)
    return seconds / 60.0


def table_rows(results: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, note) rows of the printed table, in a fixed order."""
    res, status = results, meta["status"]

    def cell(part: str, key: str, digits: int = 2) -> str:
        if part in status and status[part] != "ok":
            return status[part]
        return fmt((res.get(part) or {}).get(key), digits)

    b, sizes = meta["batch"], meta["sizes"]
    samp = res.get("sampling") or {}
    timed_n = samp.get("timed_images_per_variant", 0)
    inc_b, prod_b = sizes["inception_batch"], meta["production_feature_batch"]
    pr_n = f"{sizes['pr_samples']} samples vs {sizes['pr_reference']} reference"
    peaks = {k: (res.get(k) or {}).get("peak_gib") for k in ("sampling", "inception", "pr")}
    peak_values = [v for v in peaks.values() if v is not None]
    peak_note = ", ".join(f"{k} {fmt(v)}" for k, v in peaks.items())
    peak_kind = "CUDA max_memory_allocated" if meta["device"] == "cuda" else "host peak RSS"
    f32 = "float32 (TF32 off)"
    return [
        (
            "sampling img/s, CFG",
            cell("sampling", "images_per_s_cfg"),
            f"{meta['dtype']}, batch {b}, median of {timed_n // max(b, 1)} batches",
        ),
        (
            "sampling img/s, CFG+SSG",
            cell("sampling", "images_per_s_cfg_ssg"),
            "same labels and seeds, alternating batches",
        ),
        ("SSG overhead %", cell("sampling", "ssg_overhead_pct"), "median CFG+SSG / CFG - 1"),
        (
            f"Inception img/s, batch {inc_b}",
            cell("inception", "images_per_s", 1),
            "random weights, float32, host uint8 to features",
        ),
        (
            f"Inception img/s, batch {prod_b} (production)",
            cell("inception_production", "images_per_s", 1),
            "metrics.feature_batch_size",
        ),
        ("P/R s", cell("pr", "seconds"), f"{pr_n}, {meta['pr_dtype']} distances, {meta['device']}"),
        (
            "FID s",
            cell("fid", "seconds"),
            f"stats {sizes['pr_samples']}x{sizes['pool_dim']} "
            f"+ Frechet ({meta['fid_method']}, host)",
        ),
        (
            "sFID s",
            cell("sfid", "seconds"),
            f"stats {sizes['pr_samples']}x{sizes['spatial_dim']} "
            f"+ Frechet ({meta['fid_method']}, host)",
        ),
        ("IS s", cell("is", "seconds"), f"{sizes['pr_samples']}x1008 logits, host"),
        (
            "peak memory GiB",
            fmt(max(peak_values) if peak_values else None),
            f"{peak_kind}: {peak_note}",
        ),
        (
            "projected min, one 50k row, CFG",
            fmt(projected_minutes(res, "cfg"), 1),
            "50k/sampling + 60k/Inception + metric s",
        ),
        (
            "projected min, one 50k row, CFG+SSG",
            fmt(projected_minutes(res, "cfg_ssg"), 1),
            "50k/sampling + 60k/Inception + metric s",
        ),
        ("sampling img/s, CFG, float32", cell("sampling_float32", "images_per_s_cfg"), f32),
        ("sampling img/s, CFG+SSG, float32", cell("sampling_float32", "images_per_s_cfg_ssg"), f32),
    ]


def print_table(results: dict[str, Any], meta: dict[str, Any]) -> None:
    """Print the one Markdown table (plus a header line naming device, torch, dtype, batch)."""
    print(
        f"device_check: {meta['device_name']} | torch {meta['torch']} | dtype {meta['dtype']} "
        f"| batch {meta['batch']} | model {meta['model']} ({meta['num_params_var'] / 1e6:.0f}M, "
        f"random weights) | {meta['elapsed_s']:.0f} s of {meta['time_budget_s']:.0f} s budget"
    )
    rows = table_rows(results, meta)
    widths = [max(len(row[i]) for row in rows + [("figure", "value", "note")]) for i in range(3)]
    for index, row in enumerate([("figure", "value", "note"), *rows]):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; size options default to the full (GPU) or `--quick` preset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (CI; implies no GPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI, CPU)")
    parser.add_argument("--model", default="var_d16", help="conf/model entry (random weights)")
    parser.add_argument(
        "--dtype",
        choices=("bfloat16", "float32"),
        default=None,
        help="sampling autocast + decode dtype (default: bfloat16 on CUDA, "
        "float32 on CPU); bfloat16 uses runtime=fast (TF32 on)",
    )
    for key, (full, quick) in SIZES.items():
        flag = "--" + key.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"default {full} (--quick {quick})")
    parser.add_argument(
        "--time-budget-s",
        type=float,
        default=330.0,
        help="global guard: parts not started by then are skipped",
    )
    parser.add_argument(
        "--results-dir",
        default=None,
        help="where bench/device_check.jsonl goes (default: paths.results)",
    )
    parser.add_argument("--commit", default=None, help="commit to record (default: git HEAD)")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override")
    args = parser.parse_args(argv)
    args.sizes = {
        k: getattr(args, k) if getattr(args, k) is not None else v[int(args.quick)]
        for k, v in SIZES.items()
    }
    if min(args.sizes[k] for k in ("num_images", "batch", "inception_images")) < 1:
        parser.error("--num-images, --batch and --inception-images must be >= 1")
    return args


def choose_device(args: argparse.Namespace) -> torch.device:
    """CUDA unless `--cpu`; a clear error when CUDA was expected but is missing."""
    if args.cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("device_check: CUDA is not available; use --cpu --quick on a CPU machine")
    return torch.device("cuda", 0)


def measure(args: argparse.Namespace, device: torch.device, start: float) -> tuple[dict, dict]:
    """Run every part in order under the time guard; returns (results, meta)."""
    deadline = start + args.time_budget_s
    sizes, dtype = args.sizes, args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    runtime = "fast" if dtype == "bfloat16" else "default"
    cfg = compose_cfg(args, runtime, device)
    runtime_applied = setup_runtime(cfg.runtime)
    build_start = time.perf_counter()
    var, vae, info = build_model(cfg.model, device)
    plain_guidance = cfg.guidance.copy()
    plain_guidance.ssg.enabled = False
    processors = {
        "cfg": build_processors(plain_guidance, list(cfg.model.patch_nums)),
        "cfg_ssg": build_processors(cfg.guidance, list(cfg.model.patch_nums)),
    }
    results: dict[str, Any] = {"build_s": time.perf_counter() - build_start}
    status: dict[str, str] = {}
    part_s: dict[str, float] = {"build": results["build_s"]}
    side = image_shape_of(cfg.model)[0]
    prod_batch = int(cfg.metrics.feature_batch_size)
    shared: dict[str, Any] = {}

    def slice_end(fraction: float) -> float:
        return time.perf_counter() + fraction * max(0.0, deadline - time.perf_counter())

    def inception(batch: int, fraction: float) -> dict[str, Any]:
        if "model" not in shared:
            tmp = Path(shared.setdefault("tmp", tempfile.mkdtemp(prefix="device_check_")))
            make_random_inception_weights(tmp / "random_inception.pth", seed=0)
            shared["model"] = build_inception(str(tmp / "random_inception.pth"), device)
            rng = np.random.default_rng(1)
            shape = (sizes["inception_images"], side, side, 3)
            shared["images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        return time_inception(shared["model"], shared["images"], batch, device, slice_end(fraction))

    def features() -> dict[str, np.ndarray]:
        if "features" not in shared:
            shared["features"] = synthetic_features(sizes)
        return shared["features"]

    def pr() -> dict[str, Any]:
        feats = features()
        reset_peak(device)
        seconds, (precision, recall) = timed(
            lambda: precision_recall(
                feats["real"],
                feats["fake"],
                k=int(cfg.metrics.pr_k),
                block_size=int(cfg.metrics.pr_block_size),
                distance_dtype=str(cfg.metrics.pr_distance_dtype),
                device=device,
            ),
            device,
        )
        return {
            "seconds": seconds,
            "precision": precision,
            "recall": recall,
            "peak_gib": peak_gib(device),
        }

    def frechet(dim: int) -> dict[str, Any]:
        feats = features()
        return time_frechet(feats["real"][:, :dim], feats["fake"][:, :dim], cfg.metrics.fid_method)

    def inception_score_part() -> dict[str, Any]:
        logits = features()["logits"]
        seconds, (mean, _) = timed(
            lambda: inception_score(logits, int(cfg.metrics.is_split_size)), device
        )
        return {"seconds": seconds, "value": mean}

    def sampling_float32() -> dict[str, Any]:
        if dtype == "float32" or sizes["float32_images"] < 1:
            raise TimeGuard("skipped (main dtype)" if dtype == "float32" else "skipped (--quick)")
        setup_runtime(compose_cfg(args, "default", device).runtime)  # TF32 off, as runtime=default
        return time_sampling(
            var,
            vae,
            cfg,
            processors,
            device,
            "float32",
            sizes["float32_images"],
            sizes["batch"],
            deadline,
        )

    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        (
            "sampling",
            lambda: time_sampling(
                var,
                vae,
                cfg,
                processors,
                device,
                dtype,
                sizes["num_images"],
                sizes["batch"],
                slice_end(0.4),
            ),
        ),
        ("inception", lambda: inception(sizes["inception_batch"], 0.3)),
        ("inception_production", lambda: inception(prod_batch, 0.3)),
        ("pr", pr),
        ("fid", lambda: frechet(sizes["pool_dim"])),
        ("sfid", lambda: frechet(sizes["spatial_dim"])),
        ("is", inception_score_part),
        ("sampling_float32", sampling_float32),
    ]
    for name, part in parts:
        if name == "inception_production" and prod_batch == sizes["inception_batch"]:
            status[name] = "same as above"
            continue
        if args.quick and name == "inception_production":
            status[name] = "skipped (--quick)"
            continue
        if name != "sampling" and time.perf_counter() > deadline:
            status[name] = "skipped (time guard)"
            continue
        part_start = time.perf_counter()
        try:
            results[name] = part()
            status[name] = "ok"
        except TimeGuard as reason:
            status[name] = str(reason)
        except Exception as err:  # keep measuring: one GPU run must report everything it can
            traceback.print_exc()
            status[name] = f"error: {type(err).__name__}"
        part_s[name] = time.perf_counter() - part_start
    meta = {
        "status": status,
        "part_s": part_s,
        "batch": sizes["batch"],
        "sizes": sizes,
        "dtype": dtype,
        "device": device.type,
        "model": cfg.model.name,
        "num_params_var": info["num_params_var"],
        "production_feature_batch": prod_batch,
        "pr_dtype": str(cfg.metrics.pr_distance_dtype),
        "fid_method": str(cfg.metrics.fid_method),
        "runtime": runtime_applied,
        "truncation_impl": str(cfg.sampler.truncation_impl),
        "results_dir": args.results_dir or str(cfg.paths.results),
    }
    return results, meta


def write_json_line(results: dict[str, Any], meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """Append the record (figures, status, provenance) as one JSON line; returns it."""
    record = {
        "bench": "device_check",
        **{k: v for k, v in meta.items() if k != "results_dir"},
        "projected_min_cfg": projected_minutes(results, "cfg"),
        "projected_min_cfg_ssg": projected_minutes(results, "cfg_ssg"),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, append the JSON line; exit 1 if any part raised."""
    start = time.perf_counter()
    args = parse_args(argv)
    device = choose_device(args)
    results, meta = measure(args, device, start)
    git = git_state(REPO)
    meta.update(
        {
            "commit": args.commit or git["commit"] or "unknown",
            "dirty": None if args.commit else git["dirty"],
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "time_budget_s": args.time_budget_s,
            "elapsed_s": time.perf_counter() - start,
        }
    )
    print_table(results, meta)
    results_dir = Path(meta["results_dir"])
    if not results_dir.is_absolute():
        results_dir = REPO / results_dir
    out = results_dir / "bench" / "device_check.jsonl"
    write_json_line(results, meta, out)
    print(f"device_check: appended one JSON line to {out}")
    return 1 if any(s.startswith("error") for s in meta["status"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

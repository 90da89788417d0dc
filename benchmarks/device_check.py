"""One prepared device check: what a Table 1 row costs on this machine, printed as one table.

Builds the VAR-d16 architecture from `conf/` with name-derived random weights (no checkpoint),
times sampling with CFG and with CFG+SSG (alternating batches after warm-up), Inception feature
extraction (random weights, float32) and the metric arithmetic (FID, sFID, IS, precision/recall)
on synthetic features of the real sizes, records peak memory and projects the minutes of one
50k-sample row. Appends one JSON line to `<results>/bench/device_check.jsonl`. A global time
guard skips what is left once `--time-budget-s` is spent and still prints the table. Never
imported by ssg_eval.
It runs past 300 lines on purpose: a lent GPU gives one short run, so every figure the issues ask
for is measured and printed by this one script.

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
from hydra import compose

from ssg_eval.cli import compose_context
from ssg_eval.features.extract import device_batch_size, extract_features
from ssg_eval.features.inception import build_inception, make_random_inception_weights
from ssg_eval.guidance import build_processors
from ssg_eval.metrics.frechet import frechet_distance_features
from ssg_eval.metrics.inception_score import inception_score
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.models.load import build_model
from ssg_eval.sampling.decode import decode_images, latents_from_tokens
from ssg_eval.sampling.draw import make_generators
from ssg_eval.sampling.generate import image_shape_of
from ssg_eval.sampling.loop import generate_batch, sample_scales
from ssg_eval.sampling.shards import to_uint8
from ssg_eval.utils.dist import autocast_dtype, setup_runtime
from ssg_eval.utils.provenance import git_state
from ssg_eval.validation import validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import device_check_row  # noqa: E402  (the row parts, beside this script)

REPO = Path(__file__).resolve().parents[1]
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
    """The production config: `model`, `guidance=cfg_ssg`, `sampler=var_eval`, no checkpoints."""
    overrides = [
        f"model={args.model}",
        "guidance=cfg_ssg",
        "sampler=var_eval",
        f"runtime={runtime}",
        f"runtime.device={device.type}",
        "model.var_ckpt=null",
        "model.vae_ckpt=null",
    ]
    overrides += (QUICK_MODEL if args.quick else []) + list(args.override)
    with compose_context():
        cfg = compose(config_name="config", overrides=overrides)
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
    for name in ("cfg", "cfg_ssg"):  # warm-up (kernel selection, allocator), excluded
        one(name, 0)
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


def time_decode_host(
    var: Any,
    vae: Any,
    cfg: Any,
    processors: list,
    device: torch.device,
    dtype_name: str,
    batch: int,
    repeats: int,
    deadline: float,
) -> dict[str, Any]:
    """Per-batch seconds of the three serial phases of production sampling (CFG+SSG).

    `steps`: the transformer steps (`sample_scales`, tokens of every scale); `decode`: f̂ from
    the tokens and the VQVAE decoder (`latents_from_tokens` + `decode_images`, what
    `generate_chunk` runs per decode group); `host`: the device-to-host copy and the uint8
    conversion (`to_uint8`, float64 on the host). Today they run one after another; overlapping
    decode and host transfer with the next batch's steps (CUDA streams) can at best hide `host`
    and the decoder's idle gaps, which these figures bound. Medians of `repeats` batches after a
    warm-up.
    """  # fmt: skip
    dtype = autocast_dtype(dtype_name)
    sampler = cfg.sampler
    kwargs = dict(temperature=float(sampler.temperature), top_k=int(sampler.top_k),
                  top_p=float(sampler.top_p), truncation_impl=str(sampler.truncation_impl),
                  autocast_dtype=dtype)  # fmt: skip
    labels_B = (torch.arange(batch) % int(cfg.model.num_classes)).to(device)
    rounding = str(sampler.uint8_rounding)
    phases: dict[str, list[float]] = {"steps": [], "decode": [], "host": []}
    for index in range(repeats + 1):
        if index > 1 and time.perf_counter() > deadline:
            break
        generators = make_generators(range(index * batch, (index + 1) * batch), device)
        seconds = {}
        with torch.inference_mode():
            seconds["steps"], sample = timed(lambda g=generators: sample_scales(
                var, vae, labels_B, g, processors, **kwargs), device)  # fmt: skip
            seconds["decode"], images = timed(lambda t=sample.tokens: decode_images(
                vae, latents_from_tokens(vae, t), dtype), device)  # fmt: skip
        seconds["host"], _ = timed(lambda x=images: to_uint8(x, rounding), device)
        if index > 0:  # the first batch is the warm-up
            for name, value in seconds.items():
                phases[name].append(value)
    med = {name: statistics.median(values) for name, values in phases.items()}
    total = sum(med.values())
    return {
        **{f"{name}_s": value for name, value in med.items()},
        "decode_host_pct": 100.0 * (med["decode"] + med["host"]) / total,
        "host_pct": 100.0 * med["host"] / total,
        "images_per_s_serial": batch / total,
        "images_per_s_host_hidden": batch / (med["steps"] + med["decode"]),
        "images_per_s_all_hidden": batch / max(med["steps"], med["decode"] + med["host"]),
        "batches": len(phases["steps"]),
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
    """Seconds of what a run pays for FID/sFID: `frechet_distance_features` of the samples.

    That is the production call (samples as features, the reference as stored `mu`/`sigma`), so
    the reference statistics are built outside the timed region.
    """
    mu_ref, sigma_ref = feature_statistics(real)
    seconds, value = timed(
        lambda: frechet_distance_features(fake, mu_ref, sigma_ref, method=method),
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
    f32, proj = "float32 (TF32 off)", "50k/sampling + 60k/Inception + metric s"
    dh = res.get("decode_host") or {}
    decode_note = "serial path; per batch: " + ", ".join(
        f"{k} {fmt(dh.get(f'{k}_s'), 3)} s" for k in ("steps", "decode", "host")
    )
    stats = f"stats {sizes['pr_samples']}x%d + Frechet ({meta['fid_method']}, host)"
    return [
        ("sampling img/s, CFG", cell("sampling", "images_per_s_cfg"),
         f"{meta['dtype']}, batch {b}, median of {timed_n // max(b, 1)} batches"),
        ("sampling img/s, CFG+SSG", cell("sampling", "images_per_s_cfg_ssg"),
         "same labels and seeds, alternating batches"),
        ("SSG overhead %", cell("sampling", "ssg_overhead_pct"), "median CFG+SSG / CFG - 1"),
        (f"Inception img/s, batch {inc_b}", cell("inception", "images_per_s", 1),
         "random weights, float32, host uint8 to features"),
        (f"Inception img/s, batch {prod_b} (production)",
         cell("inception_production", "images_per_s", 1), "metrics.feature_batch_size"),
        ("P/R s", cell("pr", "seconds"), f"{pr_n}, {meta['pr_dtype']} distances, {meta['device']}"),
        ("FID s", cell("fid", "seconds"), stats % sizes["pool_dim"]),
        ("sFID s", cell("sfid", "seconds"), stats % sizes["spatial_dim"]),
        ("IS s", cell("is", "seconds"), f"{sizes['pr_samples']}x1008 logits, host"),
        ("peak memory GiB", fmt(max(peak_values) if peak_values else None),
         f"{peak_kind}: {peak_note}"),
        ("projected min, one 50k row, CFG", fmt(projected_minutes(res, "cfg"), 1), proj),
        ("projected min, one 50k row, CFG+SSG", fmt(projected_minutes(res, "cfg_ssg"), 1), proj),
        ("decode + host transfer % of batch", cell("decode_host", "decode_host_pct", 1),
         decode_note),
        ("sampling img/s, host transfer overlapped",
         cell("decode_host", "images_per_s_host_hidden"),
         "projected: batch / (steps + decode), CFG+SSG"),
        ("sampling img/s, decode+host overlapped", cell("decode_host", "images_per_s_all_hidden"),
         "projected bound: batch / max(steps, decode + host)"),
        *device_check_row.table_rows(cell, b),
        ("sampling img/s, CFG, float32", cell("sampling_float32", "images_per_s_cfg"), f32),
        ("sampling img/s, CFG+SSG, float32", cell("sampling_float32", "images_per_s_cfg_ssg"),
         f32),
    ]  # fmt: skip


def print_table(results: dict[str, Any], meta: dict[str, Any]) -> None:
    """Print the one Markdown table (plus a header line naming device, torch, dtype, batch)."""
    params = f"{meta['num_params_var'] / 1e6:.3g}M params, random weights"
    print(
        f"device_check: {meta['device_name']} | torch {meta['torch']} | dtype {meta['dtype']} "
        f"| batch {meta['batch']} | model {meta['model']} ({params}) | "
        f"{meta['elapsed_s']:.0f} s of {meta['time_budget_s']:.0f} s budget"
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


class DeviceCheck:
    """The parts of the check, in `PARTS` order, sharing one config, model and feature set.

    Each part returns a dict of figures; `run` applies the skip rules and the time guard.
    """

    PARTS = (
        "sampling",
        "inception",
        "inception_production",
        "pr",
        "fid",
        "sfid",
        "is",
        "decode_host",
        "overlap",
        "features_while_sampling",
        "sampling_float32",
    )

    def __init__(self, args: argparse.Namespace, device: torch.device, start: float):
        self.args, self.device, self.sizes = args, device, args.sizes
        self.deadline = start + args.time_budget_s
        self.dtype = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
        runtime = "fast" if self.dtype == "bfloat16" else "default"  # fast: TF32 + cuDNN benchmark
        self.cfg = compose_cfg(args, runtime, device)
        self.runtime = setup_runtime(self.cfg.runtime)
        build_start = time.perf_counter()
        self.var, self.vae, self.info = build_model(self.cfg.model, device)
        plain = self.cfg.guidance.copy()
        plain.order = [n for n in plain.order if n != "ssg"]
        patch_nums = list(self.cfg.model.patch_nums)
        self.processors = {
            "cfg": build_processors(plain, patch_nums),
            "cfg_ssg": build_processors(self.cfg.guidance, patch_nums),
        }
        self.build_s = time.perf_counter() - build_start
        batch = self.cfg.metrics.feature_batch_size  # null: the device's choice, as in production
        self.production_batch = device_batch_size(device) if batch is None else int(batch)
        self._cache: dict[str, Any] = {}

    def slice_end(self, fraction: float) -> float:
        """A part's own deadline: `fraction` of the budget left now."""
        now = time.perf_counter()
        return now + fraction * max(0.0, self.deadline - now)

    def sampling(self, dtype: str | None = None, num_images: int | None = None) -> dict[str, Any]:
        """CFG vs CFG+SSG images/s in the main dtype (40% of the remaining budget at most)."""
        last = self.deadline if dtype else self.slice_end(0.4)
        return time_sampling(
            self.var,
            self.vae,
            self.cfg,
            self.processors,
            self.device,
            dtype or self.dtype,
            num_images or self.sizes["num_images"],
            self.sizes["batch"],
            last,
        )

    def decode_host(self) -> dict[str, Any]:
        """Steps / decode / host-transfer split of a CFG+SSG batch (3 batches, 10% of budget)."""
        return time_decode_host(
            self.var, self.vae, self.cfg, self.processors["cfg_ssg"], self.device, self.dtype,
            self.sizes["batch"], 3, self.slice_end(0.1),
        )  # fmt: skip

    def overlap(self) -> dict[str, Any]:
        """Chunk loop serial vs decode/host overlapped (`device_check_row.overlap_part`)."""
        return device_check_row.overlap_part(self)

    def features_while_sampling(self) -> dict[str, Any]:
        """Chunk loop without vs with the per-shard Inception pass (`device_check_row`)."""
        return device_check_row.features_part(self)

    def inception_weights(self) -> str:
        """Random Inception weights in torch-fidelity's layout, written once per check."""
        if "weights" not in self._cache:
            folder = self._cache.setdefault(
                "folder", tempfile.TemporaryDirectory(prefix="device_check_")
            )
            weights = Path(folder.name) / "random_inception.pth"
            make_random_inception_weights(weights, seed=0)
            self._cache["weights"] = str(weights)
        return self._cache["weights"]

    def sampling_float32(self) -> dict[str, Any]:
        """The same at the reference precision (runtime=default: TF32 off), in what time is left."""
        setup_runtime(compose_cfg(self.args, "default", self.device).runtime)
        return self.sampling("float32", self.sizes["float32_images"])

    def inception(self, batch: int | None = None) -> dict[str, Any]:
        """Inception images/s on random uint8 images of the model's output size."""
        # the features stage applies no runtime switches: torch's cuDNN defaults, not runtime=fast
        torch.backends.cudnn.benchmark = torch.backends.cudnn.deterministic = False
        if "inception" not in self._cache:
            side = image_shape_of(self.cfg.model)[0]
            shape = (self.sizes["inception_images"], side, side, 3)
            self._cache.update(
                inception=build_inception(self.inception_weights(), self.device),
                images=np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8),
            )
        return time_inception(
            self._cache["inception"],
            self._cache["images"],
            batch or self.sizes["inception_batch"],
            self.device,
            self.slice_end(0.3),
        )

    def inception_production(self) -> dict[str, Any]:
        """The same at `metrics.feature_batch_size` (what the features stage runs)."""
        return self.inception(self.production_batch)

    def features(self) -> dict[str, np.ndarray]:
        """The synthetic feature set shared by the metric parts (built once)."""
        if "features" not in self._cache:
            self._cache["features"] = synthetic_features(self.sizes)
        return self._cache["features"]

    def pr(self) -> dict[str, Any]:
        """Precision/recall seconds, production settings (k, block, distance dtype), on device."""
        feats, metrics = self.features(), self.cfg.metrics
        reset_peak(self.device)
        settings = dict(
            k=int(metrics.pr_k),
            block_size=int(metrics.pr_block_size),
            distance_dtype=str(metrics.pr_distance_dtype),
            device=self.device,
        )
        seconds, (precision, recall) = timed(
            lambda: precision_recall(feats["real"], feats["fake"], **settings), self.device
        )
        return {
            "seconds": seconds,
            "precision": precision,
            "recall": recall,
            "peak_gib": peak_gib(self.device),
        }

    def fid(self, dim: int | None = None) -> dict[str, Any]:
        """FID seconds on pool-sized features (`dim` columns of the shared set)."""
        dim = dim or self.sizes["pool_dim"]
        feats = self.features()
        real, fake = feats["real"][:, :dim], feats["fake"][:, :dim]
        return time_frechet(real, fake, str(self.cfg.metrics.fid_method))

    def sfid(self) -> dict[str, Any]:
        """sFID seconds: the same on spatial-tap-sized features."""
        return self.fid(self.sizes["spatial_dim"])

    def inception_score(self) -> dict[str, Any]:
        """IS seconds over the synthetic logits (consecutive `metrics.is_split_size` splits)."""
        logits, split = self.features()["logits"], int(self.cfg.metrics.is_split_size)
        seconds, (mean, _) = timed(lambda: inception_score(logits, split), self.device)
        return {"seconds": seconds, "value": mean}

    def skip_reason(self, name: str) -> str | None:
        """Why a part does not run (None: it runs)."""
        if name == "inception_production":
            if self.production_batch == self.sizes["inception_batch"]:
                return "same as above"
            if self.args.quick:
                return "skipped (--quick)"
        if name == "sampling_float32":
            if self.dtype == "float32":
                return "skipped (main dtype)"
            if self.sizes["float32_images"] < 1:
                return "skipped (0 images)"
        if name != "sampling" and time.perf_counter() > self.deadline:
            return "skipped (time guard)"
        return None

    def run(self) -> tuple[dict[str, Any], dict[str, str], dict[str, float]]:
        """Every part in order: (results, status, wall seconds per part)."""
        results: dict[str, Any] = {}
        status: dict[str, str] = {}
        part_s = {"build": self.build_s}
        methods = {name: getattr(self, name) for name in self.PARTS if name != "is"}
        methods["is"] = self.inception_score
        for name in self.PARTS:
            reason = self.skip_reason(name)
            if reason is not None:
                status[name] = reason
                continue
            part_start = time.perf_counter()
            try:
                results[name] = methods[name]()
                status[name] = "ok"
            except Exception as err:  # keep measuring: one GPU run must report all it can
                traceback.print_exc()
                status[name] = f"error: {type(err).__name__}"
            part_s[name] = time.perf_counter() - part_start
        if "folder" in self._cache:
            self._cache["folder"].cleanup()
        return results, status, part_s

    def meta(self) -> dict[str, Any]:
        """Settings that identify the measurement (for the table header and the JSON line)."""
        cfg = self.cfg
        return {
            "batch": self.sizes["batch"],
            "sizes": self.sizes,
            "dtype": self.dtype,
            "device": self.device.type,
            "model": cfg.model.name,
            "num_params_var": self.info["num_params_var"],
            "production_feature_batch": self.production_batch,
            "pr_dtype": str(cfg.metrics.pr_distance_dtype),
            "fid_method": str(cfg.metrics.fid_method),
            "runtime": self.runtime,
            "truncation_impl": str(cfg.sampler.truncation_impl),
            "results_dir": self.args.results_dir or str(cfg.paths.results),
        }


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
    check = DeviceCheck(args, device, start)
    results, status, part_s = check.run()
    meta = {**check.meta(), "status": status, "part_s": part_s}
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

"""Per-scale cost of the guidance processors (CFG ramp, SSG with DSE) on VAR-d16-sized logits.

Builds the processors from the project's conf/ with the production builders, times one call per
scale (median of repeats after warm-up, synchronised on CUDA) and appends one JSON line per
measurement to <paths.results>/bench/processors.jsonl. It is never imported by `ssg_eval`.

    python benchmarks/bench_processors.py --quick
    python benchmarks/bench_processors.py --device cuda --batch-size 16
    python benchmarks/bench_processors.py --override guidance.ssg.prior_mode=interpolate_only
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose
from omegaconf import OmegaConf

from ssg_eval.cli import compose_context
from ssg_eval.guidance import build_processors
from ssg_eval.guidance.base import StepContext
from ssg_eval.utils.provenance import device_description, git_state


def _compose(overrides: list[str]) -> Any:
    base = ["model=var_d16", "guidance=cfg_ssg"]
    with compose_context():
        return compose(config_name="config", overrides=base + overrides)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_call(proc: Any, args: tuple, device: torch.device, warmup: int, repeats: int) -> list:
    for _ in range(warmup):
        proc(*args)
    times_ms = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        proc(*args)
        _sync(device)
        times_ms.append((time.perf_counter() - start) * 1e3)
    return times_ms


def bench_processors(
    *, device: str, batch_size: int, warmup: int, repeats: int, overrides: list[str], quick: bool
) -> list[dict[str, Any]]:
    """Time every processor in `guidance.order` of the composed config at every scale.

    Returns:
        One record per (processor, scale) plus one `scope=total` record per processor.
    """
    cfg = _compose(overrides)
    patch_nums = [int(p) for p in cfg.model.patch_nums]
    vocab = int(cfg.model.vocab_size)
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    common = {
        "bench": "processors",
        "batch_size": batch_size,
        "vocab_size": vocab,
        "model": str(cfg.model.name),
        "dtype": "float32",
        "device": dev.type,
        "device_info": device_description(),
        "num_threads": torch.get_num_threads(),
        "warmup": warmup,
        "repeats": repeats,
        "quick": quick,
        "torch": torch.__version__,
        **git_state(),
    }
    names = list(cfg.guidance.order)
    records = []
    with torch.inference_mode():
        for name, proc in zip(names, build_processors(cfg.guidance, patch_nums), strict=True):
            params = OmegaConf.to_container(cfg.guidance[name], resolve=True)
            state, total_ms = proc.init_state(batch_size), 0.0
            for si, pn in enumerate(patch_nums):
                shape = (batch_size, pn * pn, vocab)
                cond_BlV = torch.randn(shape, generator=gen, device=dev)
                uncond_BlV = torch.randn(shape, generator=gen, device=dev)
                prev = patch_nums[si - 1] if si else None
                ctx = StepContext(si, len(patch_nums), pn, prev, cond_BlV, uncond_BlV)
                times_ms = _time_call(proc, (cond_BlV, ctx, state), dev, warmup, repeats)
                _, state = proc(cond_BlV, ctx, state)
                median_ms = statistics.median(times_ms)
                total_ms += median_ms
                records.append(
                    {
                        **common,
                        "processor": name,
                        "params": params,
                        "scope": "scale",
                        "scale_index": si,
                        "patch_num": pn,
                        "time_ms_median": median_ms,
                        "time_ms_min": min(times_ms),
                    }
                )
            records.append(
                {**common, "processor": name, "params": params, "scope": "total"}
                | {"scale_index": None, "patch_num": None, "time_ms_median": total_ms}
            )
    return records


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """CLI entry: run the benchmark, print and append one JSON line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI mode: B=4, 1 warm-up, 3 repeats")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--batch-size", type=int, default=None, help="default 4 quick / 16 full")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 quick / 10 full")
    parser.add_argument("--warmup", type=int, default=None, help="default 1 quick / 3 full")
    parser.add_argument(
        "--override", action="append", default=[], help="Hydra override, e.g. paths.results=/x"
    )
    args = parser.parse_args(argv)
    records = bench_processors(
        device=args.device,
        batch_size=args.batch_size or (4 if args.quick else 16),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 3),
        repeats=args.repeats or (3 if args.quick else 10),
        overrides=list(args.override),
        quick=args.quick,
    )
    out_path = Path(_compose(list(args.override)).paths.results).resolve() / "bench"
    out_path.mkdir(parents=True, exist_ok=True)
    with open(out_path / "processors.jsonl", "a", encoding="utf-8") as f:
        for record in records:
            line = json.dumps(record, sort_keys=True)
            print(line)
            f.write(line + "\n")
    return records


if __name__ == "__main__":
    main()

"""What does SSG cost? Wall time of sampling with CFG vs CFG+SSG on one architecture, side by side.

Builds the model from `conf/` with name-derived random weights (no checkpoint needed), alternates
plain and SSG batches (ABAB, after one warm-up each), reports medians and the overhead ratio, the
per-scale wall time, and the DSE op alone at the last transition. Appends JSON lines to
`<paths.results>/bench/sampling.jsonl`. Never imported by ssg_eval.

    python benchmarks/bench_sampling.py                  # d16 architecture, batch 4, CPU
    python benchmarks/bench_sampling.py --quick          # CI: small 256-schedule model
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose

from ssg_eval.cli import compose_context
from ssg_eval.guidance import build_processors
from ssg_eval.guidance.dse import dse_upsample
from ssg_eval.models.load import build_model
from ssg_eval.sampling.decode import decode_images, latents_from_tokens
from ssg_eval.sampling.draw import make_generators
from ssg_eval.sampling.loop import sample_scales
from ssg_eval.utils.provenance import collect_provenance


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose_cfg(model: str, overrides: list[str]):
    with compose_context():
        return compose(
            config_name="config",
            overrides=[f"model={model}", "guidance=cfg_ssg", "sampler=var_eval", *overrides],
        )


def time_batch(var, vae, labels, seeds, processors, cfg, device, per_scale=None) -> float:
    """Seconds for one batch, tokens to pixels (synchronised); optionally per-scale seconds."""
    generators = make_generators(seeds, device)
    _sync(device)
    start = time.perf_counter()
    sample = sample_scales(
        var, vae, labels, generators, processors,
        temperature=cfg.sampler.temperature, top_k=cfg.sampler.top_k, top_p=cfg.sampler.top_p,
        truncation_impl=cfg.sampler.truncation_impl, diagnostics=per_scale is not None,
    )  # fmt: skip
    decode_images(vae, latents_from_tokens(vae, sample.tokens))
    _sync(device)
    end = time.perf_counter()
    if per_scale is not None:
        edges = [start, *sample.scale_end_s]
        per_scale.append([b - a for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return end - start


def time_dse(patch_nums, batch, vocab, device, repeats: int) -> float:
    """Median seconds of DSE alone at the last transition (pn[-2] -> pn[-1])."""
    prev = torch.randn(batch, vocab, patch_nums[-2], patch_nums[-2], device=device)
    size = (patch_nums[-1], patch_nums[-1])
    dse_upsample(prev, size)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        dse_upsample(prev, size)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args: argparse.Namespace) -> dict:
    overrides = [*args.override, "model.var_ckpt=null", "model.vae_ckpt=null"]
    if args.quick:
        # The 256 schedule with V 4096 but depth 1 and a tiny VAE: the real logit shapes, fast.
        overrides += ["model.depth=1", "model.vae_ch=32", "model.vae_num_res_blocks=1",
                      "model.num_classes=10", "sampler.num_samples=10"]  # fmt: skip
    cfg = compose_cfg(args.model, overrides)
    device = torch.device(args.device)
    var, vae, info = build_model(cfg.model, device)
    labels = torch.arange(args.batch, device=device) % cfg.model.num_classes
    seeds = list(range(args.batch))
    guidance_plain = cfg.guidance.copy()
    guidance_plain.order = [n for n in guidance_plain.order if n != "ssg"]
    plain = build_processors(guidance_plain, list(cfg.model.patch_nums))
    ssg = build_processors(cfg.guidance, list(cfg.model.patch_nums))
    for processors in (plain, ssg):  # warm-up, excluded
        time_batch(var, vae, labels, seeds, processors, cfg, device)
    t_plain, t_ssg, scales_plain, scales_ssg = [], [], [], []
    for _ in range(args.repeats):  # ABAB so that drift hits both equally
        t_plain.append(time_batch(var, vae, labels, seeds, plain, cfg, device, scales_plain))
        t_ssg.append(time_batch(var, vae, labels, seeds, ssg, cfg, device, scales_ssg))
    med_plain, med_ssg = statistics.median(t_plain), statistics.median(t_ssg)
    last_scale_plain = statistics.median(s[-1] for s in scales_plain)
    dse_s = time_dse(list(cfg.model.patch_nums), args.batch, cfg.model.vocab_size, device, 5)
    prov = collect_provenance()
    result = {
        "bench": "sampling",
        "model": cfg.model.name,
        "depth": cfg.model.depth,
        "device": str(device),
        "dtype": "float32",
        "batch_size": args.batch,
        "repeats": args.repeats,
        "plain_s_median": med_plain,
        "ssg_s_median": med_ssg,
        "plain_images_per_s": args.batch / med_plain,
        "ssg_images_per_s": args.batch / med_ssg,
        "ssg_overhead_pct": 100.0 * (med_ssg / med_plain - 1.0),
        "per_scale_plain_s": [statistics.median(col) for col in zip(*scales_plain, strict=True)],
        "per_scale_ssg_s": [statistics.median(col) for col in zip(*scales_ssg, strict=True)],
        "dse_last_transition_s": dse_s,
        "last_scale_step_s": last_scale_plain,
        "dse_vs_last_scale_step_pct": 100.0 * dse_s / last_scale_plain,
        "num_params_var": info["num_params_var"],
        "commit": prov["git"]["commit"],
        "device_info": prov["device"],
        "quick": args.quick,
    }
    out = Path(cfg.paths.results) / "bench" / "sampling.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="var_d16")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="small model for CI")
    parser.add_argument("--override", action="append", default=[], help="Hydra override")
    args = parser.parse_args(argv)
    result = run(args)
    print(
        f"sampling {result['model']} B={result['batch_size']} on {result['device']}: "
        f"plain {result['plain_images_per_s']:.3f} img/s, SSG {result['ssg_images_per_s']:.3f} "
        f"img/s, SSG overhead {result['ssg_overhead_pct']:+.2f}% | DSE alone "
        f"{1e3 * result['dse_last_transition_s']:.2f} ms = "
        f"{result['dse_vs_last_scale_step_pct']:.2f}% of the last scale's step"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

"""What does the per-band metric (FWD per band, power bands, paired CIs) and a paired grid cost?

Times each part on synthetic 256-px images at a small N (Haar, level 4: 256 packets of 768
coefficients), separates per-image from fixed costs, projects a 50k row and appends one JSON line to
`results/bench/bands.jsonl`. The token re-run of a grid (16 samples) is sampling and is not timed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ssg_eval.analysis.bands import band_deltas
from ssg_eval.features.frequency import packet_bands, packet_coefficients, psd_band_powers
from ssg_eval.metrics.wavelet import (
    PacketMoments,
    band_means,
    packet_frechet,
    packet_influence,
    sensitivity_matrices,
)
from ssg_eval.report.grids import grid_png
from ssg_eval.smoke import synthetic_images

EDGES = (0.0, 0.25, 0.5, 1.0)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--level", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--target", type=int, default=50_000)
    parser.add_argument("--out", default="results/bench/bands.jsonl")
    args = parser.parse_args()
    n, level = args.num_images, args.level
    images = synthetic_images(n, args.size, seed=0, noise=8.0)
    coeffs, t_transform = _timed(lambda: packet_coefficients(images, "haar", level))
    moments = PacketMoments.zeros(*coeffs.shape[1:])
    _, t_moments = _timed(lambda: moments.update(coeffs))
    (mu, sigma), t_cov = _timed(moments.mean_cov)
    ref_mu, ref_sigma = mu + 0.01, sigma * 1.01 + np.eye(sigma.shape[-1]) * 1e-6
    fwd, t_fd = _timed(lambda: packet_frechet(mu, sigma, ref_mu, ref_sigma))
    sens, t_sens = _timed(lambda: sensitivity_matrices(sigma, ref_sigma))
    influence, t_infl = _timed(lambda: packet_influence(coeffs, mu, ref_mu, sens).numpy())
    _, t_psd = _timed(lambda: psd_band_powers(images, EDGES))
    bands, labels = packet_bands(level), np.arange(n) % 10
    arrays = {"fwd": np.asarray(fwd.mean()), "fwd_bands": band_means(fwd, bands, 2**level),
              "influence_bands": band_means(influence, bands, 2**level),
              "influence_fwd": influence.mean(1), "psd": psd_band_powers(images, EDGES),
              "ref_psd": np.ones(3), "labels": labels}  # fmt: skip
    _, t_boot = _timed(lambda: band_deltas(arrays, arrays, num_resamples=args.resamples, seed=0,
                                           psd_edges=EDGES))  # fmt: skip
    changed = [np.zeros((8, pn, pn), bool) for pn in (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)]
    _, t_grid = _timed(lambda: grid_png(images[:8], images[:8], ["x"] * 8, changed))
    per_image = (t_transform * 2 + t_moments + t_infl + t_psd) / n  # transform runs in both passes
    fixed = t_cov + t_fd + t_sens
    boot_50k = t_boot * args.target / n
    total = per_image * args.target + fixed + boot_50k
    record = {"num_images": n, "size": args.size, "level": level, "threads":
              torch.get_num_threads(), "transform_s": t_transform, "moments_s": t_moments,
              "cov_s": t_cov, "frechet_per_packet_s": t_fd, "sensitivity_s": t_sens,
              "influence_s": t_infl, "psd_s": t_psd, "bootstrap_s": t_boot, "grid_png_s": t_grid,
              "per_image_s": per_image, "fixed_s": fixed,
              "projected_s": {"per_image_part": per_image * args.target, "fixed": fixed,
                              "bootstrap": boot_50k, "total": total}}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

"""The offline smoke job: build tiny assets in the official formats, then run the smoke suite.

Assets (tiny VAR/VQVAE checkpoints in the official key layout, a random-weight Inception state
dict in torch-fidelity's layout whose classifier is calibrated to give informative logits, and an
ADM-format reference batch of held-out samples of the tiny baseline) are written once under
`<paths.results>/assets`; everything downstream is the production code path.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra import compose

from ssg_eval.cli import compose_context, run_cli
from ssg_eval.runs.io import atomic_open, atomic_write_bytes, atomic_write_npz
from ssg_eval.stages.suite import load_suite, run_suite
from ssg_eval.utils.logging import configure_cli_logging, get_logger

log = get_logger(__name__)
DEFAULT_RESULTS = "results/smoke"
# Held-out baseline samples in the smoke reference; their sampling seed is never an evaluated one.
REFERENCE_IMAGES = 40
REFERENCE_SEED = 1_000_003
LOGIT_STD = 4.0  # spread of the calibrated random classifier's logits (IS > 1, finite)
# Real reference images are never a draw from the model under test: the two distributions only
# overlap. The smoke reference stands for that: its held-out baseline samples are brightened by
# this many grey levels, so precision and recall measure a partial overlap and lie inside (0, 1)
# on every row (with the bare held-out draw most of them are exactly 1 at N = 20).
REFERENCE_SHIFT = 8
# The name-derived init gives every weight std 0.02, which leaves the class almost without effect
# on the tiny models' logits (CFG on tiny_d1 then changes no token). The smoke checkpoints scale
# the class embedding to std 0.5 (the codebook's), so every guidance changes the samples.
CLASS_EMB_SCALE = 25.0


def synthetic_images(
    num: int, size: int, seed: int, spread: float = 1.0, noise: float = 8.0
) -> np.ndarray:
    """Smooth random RGB images (uint8 NHWC): low-frequency cosines plus mild noise.

    Args:
        num, size, seed: count, side and RNG seed.
        spread: contrast of the cosines; noise: std of the added Gaussian noise (grey levels).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    images = np.empty((num, size, size, 3), dtype=np.uint8)
    for i in range(num):
        freq = rng.uniform(0.5, 3.0, size=(3, 2))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        channels = [
            np.cos(2 * np.pi * (freq[c, 0] * xx + freq[c, 1] * yy) + phase[c]) for c in range(3)
        ]
        img = 127.5 + spread * 100 * np.stack(channels, -1) + rng.normal(0, noise, (size, size, 3))
        images[i] = np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)
    return images


def _save_state_dict(module: torch.nn.Module, path: Path) -> None:
    with atomic_open(path) as handle:
        torch.save(module.state_dict(), handle)


def held_out_baseline_images(cfg, num: int = REFERENCE_IMAGES, seed: int = REFERENCE_SEED):
    """Samples of the baseline cell `cfg` at another sampling seed (uint8 NHWC, index order).

    The seed differs from every evaluated seed, so these per-sample seeds never occur in a smoke
    run: a held-out draw from the baseline's own distribution (`shifted` moves it off that).
    """
    from omegaconf import open_dict

    from ssg_eval.sampling.generate import build_sampling_model, generate_chunk
    from ssg_eval.sampling.plan import SamplePlan
    from ssg_eval.utils.dist import resolve_device

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.sampler.seed = seed
    device = resolve_device(str(cfg.runtime.device))
    model = build_sampling_model(cfg, device)
    plan = SamplePlan(num, int(cfg.model.num_classes), num, seed)
    return generate_chunk(model, cfg, plan, 0, device)


def shifted(images: np.ndarray, levels: int = REFERENCE_SHIFT) -> np.ndarray:
    """`images` (uint8) brightened by `levels` grey levels, clipped to [0, 255]."""
    return np.clip(images.astype(np.int16) + levels, 0, 255).astype(np.uint8)


def calibrate_classifier(state: dict, pool: np.ndarray, logit_std: float = LOGIT_STD) -> dict:
    """Make the random Inception's class logits informative on the images it will see.

    torch-fidelity's `logits_unbiased` are `pool @ fc.weightᵀ` (no bias). Random pool features
    share a large common direction, which makes every image's logits nearly equal (IS = 1.00).
    Removing that direction (the mean of `pool`) from every fc row and rescaling the rows so the
    logits spread with std `logit_std` across `pool` gives sample-dependent, peaked class
    probabilities (IS > 1) while pool and spatial features (FID, sFID, P/R) are unchanged.

    Args:
        state: Inception state dict (torch-fidelity layout); not modified.
        pool: (n, 2048) pool features of representative images.
        logit_std: target std of the logits over `pool`.

    Returns:
        A new state dict with `fc.weight` replaced.
    """
    weight = state["fc.weight"].double()
    mean = torch.as_tensor(pool, dtype=torch.float64).mean(0)
    unit = mean / mean.norm().clamp_min(1e-12)
    weight = weight - (weight @ unit)[:, None] * unit[None, :]
    logits = torch.as_tensor(pool, dtype=torch.float64) @ weight.T
    weight = weight * (logit_std / logits.std().clamp_min(1e-12))
    return {**state, "fc.weight": weight.to(state["fc.weight"].dtype)}


def make_inception_and_reference(baseline_cfg, weights: Path, reference: Path) -> None:
    """Random Inception calibrated on, and a reference batch made of, shifted held-out samples."""
    from ssg_eval.features.extract import extract_features
    from ssg_eval.features.inception import build_inception, make_random_inception_weights
    from ssg_eval.metrics.stats import feature_statistics
    from ssg_eval.sampling.plan import SamplePlan

    images = shifted(held_out_baseline_images(baseline_cfg))
    raw = weights.with_name(weights.name + ".raw")
    make_random_inception_weights(raw, seed=0)
    try:
        batch = int(baseline_cfg.metrics.feature_batch_size)
        feats = extract_features([images], build_inception(str(raw), torch.device("cpu")),
                                 batch_size=batch, device="cpu", progress=False)  # fmt: skip
        state = calibrate_classifier(torch.load(raw, map_location="cpu"), feats["pool"])
    finally:
        raw.unlink(missing_ok=True)
    _save_tensors(state, weights)
    # pool / spatial do not depend on fc, so the statistics hold for the calibrated network too
    mu, sigma = feature_statistics(feats["pool"])
    mu_s, sigma_s = feature_statistics(feats["spatial"])
    # the plan's labels of the held-out images: per-class FID (metrics.metrics=[..., per_class])
    plan = SamplePlan(len(images), int(baseline_cfg.model.num_classes), len(images), REFERENCE_SEED)
    labels = plan.labels(np.arange(len(images))).astype(np.int64)
    atomic_write_npz(reference, arr_0=images, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s,
                     labels=labels)  # fmt: skip


def _save_tensors(state: dict, path: Path) -> None:
    buffer = io.BytesIO()  # bytes independent of the file name
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _guide_models(cfg) -> list:
    """The main model's config with each active guide's depth, AdaLN and checkpoint path."""
    from omegaconf import OmegaConf

    guides = []
    for name in cfg.guidance.order:
        node = cfg.guidance.get(name)
        guide = node.get("guide") if hasattr(node, "get") else None
        if guide is not None and guide.get("var_ckpt"):
            model = OmegaConf.to_container(cfg.model, resolve=True)
            model.update(depth=int(guide.depth), shared_aln=bool(guide.shared_aln),
                         var_ckpt=str(guide.var_ckpt))  # fmt: skip
            guides.append(OmegaConf.create(model))
    return guides


def make_checkpoints(cell_cfgs: Sequence) -> list[Path]:
    """Write every missing tiny VAR (cell models and their guides) and VQVAE checkpoint.

    Returns:
        The checkpoint files created in this call (existing ones are kept as they are).
    """
    from ssg_eval.models.load import build_var, build_vqvae, init_from_names

    created: list[Path] = []
    for cfg in cell_cfgs:
        for model in (*_guide_models(cfg), cfg.model):  # a guide is a tiny model of another depth
            var_path = Path(model.var_ckpt)
            var_path.parent.mkdir(parents=True, exist_ok=True)
            if not var_path.is_file():
                var = build_var(model)
                init_from_names(var, seed_prefix=model.init_seed + model.depth)
                with torch.no_grad():
                    var.class_emb.weight.mul_(CLASS_EMB_SCALE)
                _save_state_dict(var, var_path)
                created.append(var_path)
        vae_path = Path(cfg.model.vae_ckpt)
        if not vae_path.is_file():
            vae = build_vqvae(cfg.model)
            init_from_names(vae, seed_prefix=cfg.model.init_seed)
            _save_state_dict(vae, vae_path)
            created.append(vae_path)
    return created


def make_assets(cell_cfgs: Sequence) -> list[Path]:
    """Write every missing asset the smoke cells reference (checkpoints, Inception, reference).

    The reference batch holds held-out samples of the first baseline cell (guidance `cfg`,
    sampling seed `REFERENCE_SEED`) brightened by `REFERENCE_SHIFT` grey levels (a reference that
    only overlaps the model's distribution, as real images do), and the random Inception's
    classifier is calibrated on them (`calibrate_classifier`), so FID, IS, precision and recall
    respond to the samples.

    Args:
        cell_cfgs: composed configs of the smoke cells.

    Returns:
        The asset files that were created in this call (existing ones are kept as they are).
    """
    created = make_checkpoints(cell_cfgs)
    metrics = cell_cfgs[0].metrics
    weights, reference = Path(metrics.inception_weights), Path(metrics.reference)
    if not (weights.is_file() and reference.is_file()):
        # the two belong together: the classifier is calibrated on the reference images
        baseline = next((c for c in cell_cfgs if c.guidance.name == "cfg"), cell_cfgs[0])
        make_inception_and_reference(baseline, weights, reference)
        created += [weights, reference]
    return created


def run_smoke(
    overrides: Sequence[str] = (),
    seeds: Sequence[int] | None = None,
    suite: str = "smoke",
    guidance: str | None = None,
) -> dict:
    """Create the tiny assets (once), then run the tiny `suite` (smoke, smoke_512, ...).

    `guidance="tuned"` runs the SSG cells with `make tune`'s result (suite `smoke_tuned`); a dry
    run (`dry_run=true`) creates no asset.
    """
    overrides = list(overrides)
    if not any(o.startswith("paths.results=") for o in overrides):
        overrides.insert(0, f"paths.results={DEFAULT_RESULTS}")
    with compose_context():
        cells = [
            compose(config_name="config", overrides=[*cell, *overrides])
            for cell in load_suite(suite).cells()
        ]
    if not cells[0].dry_run:
        for path in make_assets(cells):
            log.info("created smoke asset %s", path)
    return run_suite(suite, overrides, seeds, guidance)


def main(argv: Sequence[str] | None = None) -> None:
    """`make smoke` / `python -m ssg_eval.smoke [--seeds ...] [hydra overrides]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--suite", default="smoke", help="a tiny suite: smoke, smoke_512, ...")
    parser.add_argument("--guidance", default=None, help="tuned: SSG cells use make tune's result")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every smoke cell")
    args = parser.parse_intermixed_args(argv)
    configure_cli_logging()
    written = run_cli(
        "ssg-smoke", lambda: run_smoke(args.overrides, args.seeds, args.suite, args.guidance)
    )
    print(
        "ssg-smoke (pipeline check, not a reproduction): wrote "
        + ", ".join(map(str, written.values()))
    )


if __name__ == "__main__":
    main()

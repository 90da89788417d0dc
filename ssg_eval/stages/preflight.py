"""Up-front input checks: every checkpoint, weight file and reference a set of runs will need.

Called before any sampling so that a missing file stops the whole job with one message listing
every missing file and where it goes; this module only looks at paths, it loads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ssg_eval.runs.layout import run_dir

TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path(configured: str | None) -> Path:
    """The Inception weights the features stage will read: the configured file, else the cache."""
    if configured:
        return Path(configured).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS


def missing_inputs(cfg: Any) -> list[str]:
    """Lines `key: path (fix)` for every absent input of `cfg`'s unfinished stages."""
    directory = run_dir(cfg)
    sampled = (directory / "manifest.json").is_file()
    featured = (directory / "features.npz").is_file()
    measured = (directory / "metrics.json").is_file()
    missing = []
    if not sampled:
        for key, what in (
            ("var_ckpt", f"the {cfg.model.name} checkpoint"),
            ("vae_ckpt", "the VQVAE"),
        ):
            path = cfg.model[key]
            if path is not None and not Path(path).is_file():
                missing.append(
                    f"model.{key}: {path} ({what}; put it there, set SSG_EVAL_CKPT_DIR, or "
                    f"override model.{key}=...)"
                )
        guide = cfg.guidance.autoguidance.guide if "autoguidance" in cfg.guidance.order else None
        if guide is not None and guide.var_ckpt is not None and not Path(guide.var_ckpt).is_file():
            missing.append(
                f"guidance.autoguidance.guide.var_ckpt: {guide.var_ckpt} (the guide model "
                f"{guide.name}; put it there or override guidance.autoguidance.guide.var_ckpt=...)"
            )
    if not (featured and measured):
        weights = inception_weights_path(cfg.metrics.inception_weights)
        if not weights.is_file():
            missing.append(
                f"metrics.inception_weights: {weights} (torch-fidelity's {TORCH_FIDELITY_WEIGHTS};"
                " copy it there or set SSG_EVAL_INCEPTION)"
            )
    if not measured and "fd_dinov2" in cfg.metrics.metrics:
        dinov2 = cfg.metrics.dinov2_weights
        if not dinov2 or not Path(dinov2).is_file():
            missing.append(
                f"metrics.dinov2_weights: {dinov2} (DINOv2's dinov2_vitl14_pretrain.pth for "
                "fd_dinov2; set SSG_EVAL_DINOV2 or drop fd_dinov2 from metrics.metrics)"
            )
    if not measured and not Path(cfg.metrics.reference).is_file():
        missing.append(
            f"metrics.reference: {cfg.metrics.reference} (ADM reference batch "
            f"{cfg.metrics.reference_name}; see reference_stats/README.md or set "
            "SSG_EVAL_REFERENCE)"
        )
    return missing


def check_inputs(cfgs: Iterable[Any]) -> None:
    """Raise one FileNotFoundError listing every missing input of every config (deduplicated).

    Raises:
        FileNotFoundError: at least one input file is missing.
    """
    lines: list[str] = []
    for cfg in cfgs:
        for line in missing_inputs(cfg):
            if line not in lines:
                lines.append(line)
    if lines:
        raise FileNotFoundError(
            f"{len(lines)} input file(s) missing, nothing was started:\n  - " + "\n  - ".join(lines)
        )

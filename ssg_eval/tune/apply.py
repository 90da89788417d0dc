"""Feeding a tune's result to Table 1: the overrides that switch an SSG cell to its tuned guidance.

`make tune` writes `<guidance dir>/guidance/tuned_<model.name>.yaml`; `make table1 GUIDANCE=tuned`
adds these overrides to every SSG cell. This module only builds override strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssg_eval.stages.entry import CONF_DIR

__all__ = ["DEFAULT_GUIDANCE_DIR", "ssg_active", "tuned_cell_overrides"]

# A user-config folder (git-ignored) added to Hydra's search path; found through the stage
# module's CONF_DIR so it moves with the packaged conf/.
DEFAULT_GUIDANCE_DIR = Path(CONF_DIR) / "local"


def ssg_active(cfg: Any) -> bool:
    """True when the composed config runs the SSG processor."""
    guidance = cfg.guidance
    return "ssg" in list(guidance.order) and bool(guidance.ssg.get("enabled", True))


def tuned_cell_overrides(cfg: Any, guidance_dir: str | Path | None = None) -> list[str]:
    """Overrides that make an SSG cell use the tuned guidance of its model; [] for other cells.

    Args:
        cfg: the cell's composed config.
        guidance_dir: folder holding `guidance/tuned_<model>.yaml` (default `ssg_eval/conf/local`).

    Returns:
        `hydra.searchpath=[file://<dir>]`, `guidance=tuned_<model.name>` and a run name with a
        `_tuned` suffix (a new run, never the untuned cell's samples).

    Raises:
        FileNotFoundError: the model has no tuned guidance file (names it and the command).
    """
    if not ssg_active(cfg):
        return []
    folder = Path(guidance_dir or DEFAULT_GUIDANCE_DIR).resolve()
    name = f"tuned_{cfg.model.name}"
    path = folder / "guidance" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: GUIDANCE=tuned needs a tuned guidance for {cfg.model.name}; "
            "run make tune TARGET=... first (docs/TUNING.md)"
        )
    return [f"hydra.searchpath=[file://{folder}]", f"guidance={name}",
            f"run_name={cfg.run_name}_tuned"]  # fmt: skip

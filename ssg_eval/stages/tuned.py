"""A tune's result in a suite: the overrides that switch an SSG cell to its tuned guidance.

`make tune MODEL=<model>` writes `<paths.results>/tune/<model>/guidance/tuned_<model>.yaml`;
`make table1 GUIDANCE=tuned` adds these overrides to every SSG cell, putting that folder on
Hydra's search path. This module only builds override strings; it never writes into the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ssg_active", "tuned_guidance_dir", "tuned_cell_overrides"]


def ssg_active(cfg: Any) -> bool:
    """True when the composed config runs the SSG processor."""
    return "ssg" in list(cfg.guidance.order)


def tuned_guidance_dir(results: str | Path, model_name: str) -> Path:
    """`<results>/tune/<model>`: the search-path root that holds `guidance/tuned_<model>.yaml`."""
    return Path(results).expanduser().resolve() / "tune" / str(model_name)


def tuned_cell_overrides(cfg: Any, guidance_dir: str | Path | None = None) -> list[str]:
    """Overrides that make an SSG cell use the tuned guidance of its model; [] for other cells.

    Args:
        cfg: the cell's composed config.
        guidance_dir: folder holding `guidance/tuned_<model>.yaml` (default
            `<paths.results>/tune/<model.name>`, where `make tune MODEL=<model>` writes it).

    Returns:
        `hydra.searchpath=[file://<dir>]`, `guidance=tuned_<model.name>` and a run name with a
        `_tuned` suffix (a new run, never the untuned cell's samples).

    Raises:
        FileNotFoundError: the model has no tuned guidance file (names it and the command).
    """
    if not ssg_active(cfg):
        return []
    folder = Path(guidance_dir or tuned_guidance_dir(cfg.paths.results, cfg.model.name)).resolve()
    name = f"tuned_{cfg.model.name}"
    path = folder / "guidance" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: GUIDANCE=tuned needs a tuned guidance for {cfg.model.name}; "
            f"run make tune MODEL={cfg.model.name} first (docs/TUNING.md)"
        )
    return [f"hydra.searchpath=[file://{folder}]", f"guidance={name}",
            f"run_name={cfg.run_name}_tuned"]  # fmt: skip

"""The two SSG spectral figures (latent panels, pixel ratio) from `analysis.spectral` numbers.

This module owns the matplotlib side only (Agg backend selected inside each call, PNGs written
atomically); it must not compute spectra, sample or read run directories.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssg_eval.analysis.spectral import LatentPanel
from ssg_eval.runs.io import atomic_write_bytes

__all__ = ["plot_latent_panels", "plot_pixel_ratio"]


def _save_png(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_latent_panels(panels: Sequence[LatentPanel], path: str | Path, title: str = "") -> Path:
    """Latent-level figure: one panel per transition, mean ± 1 std, Nyquist and zero lines.

    Args:
        panels: the transitions to draw, left to right.
        path: destination PNG (written atomically).
        title: optional figure title.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        ax.plot(panel.bins, panel.mean, color="tab:blue", label="SSG − baseline")
        ax.fill_between(
            panel.bins,
            panel.mean - panel.std,
            panel.mean + panel.std,
            color="tab:blue",
            alpha=0.25,
            label="±1 std",
        )
        ax.axvline(
            panel.nyquist,
            color="red",
            linestyle="--",
            label=f"Nyquist (pn = {panel.prev_patch_num})",
        )
        ax.axhline(0.0, color="green", linestyle="--", linewidth=1)
        ax.set_title(
            f"step {panel.to_step - 1}→{panel.to_step} ({panel.prev_patch_num}→{panel.patch_num})"
        )
        ax.set_xlabel("Radial Bins (Freq.)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("ΔLog Magnitude")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return _save_png(fig, Path(path))
    finally:
        plt.close(fig)


def plot_pixel_ratio(
    freqs: np.ndarray,
    ratios: dict[str, np.ndarray],
    path: str | Path,
    title: str = "",
) -> Path:
    """Pixel-level figure: generated ÷ reference radial amplitude per run, log frequency axis.

    Args:
        freqs: (F,) radial frequencies in cycles per image; the DC bin (0) is not drawn.
        ratios: legend label -> (F,) amplitude ratio to the reference.
        path: destination PNG (written atomically).
        title: optional axes title.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.asarray(freqs, dtype=np.float64)
    shown = freqs > 0
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, ratio in ratios.items():
        ax.plot(freqs[shown], np.asarray(ratio)[shown], label=label)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="dataset")
    ax.set_xscale("log")
    ax.set_xlabel("Spatial Frequency (cycles per image)")
    ax.set_ylabel("Spectral Amplitude Ratio to Dataset")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    try:
        return _save_png(fig, Path(path))
    finally:
        plt.close(fig)

"""Paired sample grids: baseline | guided | |difference| | per-scale token-change maps, as PNGs.

Pure drawing with PIL (arrays in, deterministic PNG bytes out: the bitmap default font, nearest
resizes, no timestamp in the file); it must not read runs or sample (that is `report.assets`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["MIN_SIDE", "grid_indices", "grid_png", "hot_colormap"]

MIN_SIDE = 96  # smaller images are enlarged (nearest, integer factor) to at least this side
HEADER = 14  # pixels of the column-title strip and of each row's caption strip
GAP = 4
BACKGROUND, TEXT = (255, 255, 255), (0, 0, 0)
UNCHANGED, CHANGED = (40, 40, 40), (255, 140, 0)


def grid_indices(labels_N: np.ndarray, count: int) -> list[int]:
    """The first `count` plan indices of distinct classes, in index order.

    With labels `index % num_classes` and `count <= num_classes` these are 0..count−1.
    """
    chosen, seen = [], set()
    for index, label in enumerate(np.asarray(labels_N).tolist()):
        if label not in seen:
            seen.add(label)
            chosen.append(index)
            if len(chosen) == count:
                break
    return chosen


def hot_colormap(values: np.ndarray) -> np.ndarray:
    """Black → red → yellow → white for values in [0, 1] (clipped); uint8 (..., 3)."""
    t = np.clip(np.asarray(values, dtype=np.float64), 0, 1)[..., None] * 3
    rgb = np.clip(np.concatenate([t, t - 1, t - 2], axis=-1), 0, 1)
    return np.floor(rgb * 255 + 0.5).astype(np.uint8)


def _enlarge(image_HW3: np.ndarray, factor: int) -> Image.Image:
    return Image.fromarray(np.repeat(np.repeat(image_HW3, factor, 0), factor, 1))


def _token_block(changed: Sequence[np.ndarray], side: int) -> Image.Image:
    """Scale maps (pn × pn bool) in a 2-row layout whose height is `side`."""
    rows = 1 if len(changed) == 1 else 2
    cols = math.ceil(len(changed) / rows)
    cell = side // rows
    block = Image.new("RGB", (cols * cell, rows * cell), BACKGROUND)
    for k, mask in enumerate(changed):
        colours = np.where(np.asarray(mask)[..., None], CHANGED, UNCHANGED).astype(np.uint8)
        tile = Image.fromarray(colours).resize((cell - 2, cell - 2), Image.Resampling.NEAREST)
        block.paste(tile, ((k % cols) * cell + 1, (k // cols) * cell + 1))
    return block


def grid_png(
    baseline_NHWC: np.ndarray,
    guided_NHWC: np.ndarray,
    captions: Sequence[str],
    changed: Sequence[np.ndarray] | None = None,
    titles: Sequence[str] = ("baseline", "guided", "|diff| x4"),
) -> bytes:
    """One row per sample: baseline, guided, |guided − baseline| heat map, token-change maps.

    The heat map is the channel-mean absolute difference ×4 (of 255) through `hot_colormap`;
    token maps (when `changed` is given, per scale a bool (n, pn, pn)) are orange where the
    guided run drew another token than the baseline at that position and scale.

    Returns:
        PNG bytes, identical for identical inputs (same Pillow version).
    """
    n, height, width, _ = baseline_NHWC.shape
    factor = max(1, math.ceil(MIN_SIDE / min(height, width)))
    side_h, side_w = height * factor, width * factor
    diff = np.abs(guided_NHWC.astype(np.int16) - baseline_NHWC.astype(np.int16)).mean(-1)
    heat = hot_colormap(diff * 4 / 255)
    tokens = [_token_block([c[i] for c in changed], side_h) for i in range(n)] if changed else []
    token_w = tokens[0].width if tokens else 0
    columns = [side_w, side_w, side_w] + ([token_w] if tokens else [])
    all_titles = [*titles, "changed tokens"][: len(columns)]
    total_w = sum(columns) + GAP * (len(columns) + 1)
    total_h = HEADER + n * (HEADER + side_h + GAP) + GAP
    canvas = Image.new("RGB", (total_w, total_h), BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default_imagefont()
    x_of = [GAP + sum(columns[:j]) + GAP * j for j in range(len(columns))]
    for x, title in zip(x_of, all_titles, strict=True):
        draw.text((x, 1), title, fill=TEXT, font=font)
    for i in range(n):
        top = HEADER + i * (HEADER + side_h + GAP)
        draw.text((GAP, top + 1), captions[i], fill=TEXT, font=font)
        top += HEADER
        for x, tile in zip(x_of, (baseline_NHWC[i], guided_NHWC[i], heat[i]), strict=False):
            canvas.paste(_enlarge(tile, factor), (x, top))
        if tokens:
            canvas.paste(tokens[i], (x_of[3], top))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()

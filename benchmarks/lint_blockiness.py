"""Calibrate the linter's JPEG blockiness thresholds on synthetic images (docs/METRICS.md).

Three synthetic families (smooth cosines with noise, the same nearly noise-free, and 4×-upsampled
random fields with sharp rectangles), each as PNG-exact arrays and after a PIL JPEG round trip
at several qualities, plus a decoder-like family (nearest 2× upsampling steps with a blur, the
structure a VQ decoder leaves). Prints the blockiness of each set; never imported by ssg_eval.

    python benchmarks/lint_blockiness.py            # 200 images of 256 px per family (~1 min)
    python benchmarks/lint_blockiness.py --quick    # 40 images of 64 px
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssg_eval.lint.findings import BLOCKINESS_FAIL, BLOCKINESS_WARN  # noqa: E402
from ssg_eval.lint.scan import block_steps, blockiness  # noqa: E402
from ssg_eval.smoke import synthetic_images  # noqa: E402

QUALITIES = (50, 75, 90, 95, 100)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.array(Image.open(buffer).convert("RGB"))


def rectangles(num: int, size: int, seed: int) -> np.ndarray:
    """4×-upsampled random fields plus a few flat rectangles at random places."""
    rng = np.random.default_rng(seed)
    out = np.empty((num, size, size, 3), dtype=np.uint8)
    for i in range(num):
        field = rng.normal(size=(size // 4, size // 4, 3))
        field = ((field - field.min()) / np.ptp(field) * 255).astype(np.uint8)
        image = np.array(Image.fromarray(field).resize((size, size), Image.BICUBIC), float)
        for _ in range(5):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 25, size // 3, 2)
            image[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, 3)
        image += rng.normal(0, rng.uniform(0, 12), image.shape)
        out[i] = np.clip(image, 0, 255).round().astype(np.uint8)
    return out


def decoder_like(num: int, size: int, seed: int) -> np.ndarray:
    """A 16× smaller random latent, four nearest 2× upsamplings each followed by a 3×3 blur."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(num, size // 16, size // 16, 3))
    kernel = np.array([0.25, 0.5, 0.25])
    for _ in range(4):
        x = x.repeat(2, axis=1).repeat(2, axis=2)
        for axis in (1, 2):
            x = sum(w * np.roll(x, s, axis=axis) for w, s in zip(kernel, (-1, 0, 1), strict=True))
    return np.clip(x + rng.normal(0, 2, x.shape), 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    num, size = (40, 64) if args.quick else (200, 256)
    families = {
        "cosines + noise": synthetic_images(num, size, 0),
        "cosines, little noise": synthetic_images(num, size, 1, noise=1.0),
        "upsampled fields + rectangles": rectangles(num, size, 2),
    }
    print(
        f"blockiness (Σ edge steps / Σ inside steps), {num} images of {size} px per set; "
        f"warn >= {BLOCKINESS_WARN}, fail >= {BLOCKINESS_FAIL}"
    )
    print("| family | PNG | " + " | ".join(f"JPEG q{q}" for q in QUALITIES) + " |")
    print("|---|---|" + "---|" * len(QUALITIES))
    for name, images in families.items():
        cells = [blockiness(block_steps(images))]
        cells += [blockiness(block_steps(np.stack([jpeg(x, q) for x in images])))
                  for q in QUALITIES]  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    decoded = decoder_like(num, size, 3)
    print(
        f"| decoder-like (nearest 2x upsamplings + blur) | {blockiness(block_steps(decoded)):.3f}"
        " | " + " | ".join("" for _ in QUALITIES) + " |"
    )


if __name__ == "__main__":
    main()

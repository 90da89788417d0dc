"""Image-level lint checks: layout, value range, size, count, constant images, copies, JPEG.

Each function takes arrays or numbers (from `scan.scan_images` or an npz header) and returns
one `Finding`; no file I/O, no Inception.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ssg_eval.lint.findings import (
    BLOCKINESS_FAIL,
    BLOCKINESS_WARN,
    CONSTANT_FAIL_SHARE,
    DARK_MAX_VALUE,
    DUPLICATE_FAIL_SHARE,
    EXPECTED_SAMPLES,
    IS_SPLIT_SIZE,
    Finding,
    Status,
)


def check_layout(shape: tuple[int, ...], dtype: np.dtype) -> Finding:
    """`arr_0` must be uint8 (N, H, W, 3): what ADM's evaluator and Inception's resize expect."""
    effect = (
        "ADM's evaluator reads arr_0 as uint8 NHWC RGB; any other layout is misread or "
        "rejected, so no FID or IS from this file is meaningful"
    )
    numbers = {"shape": list(shape), "dtype": str(dtype)}
    if len(shape) == 4 and shape[1] == 3 and shape[3] != 3:
        return Finding(
            "layout",
            Status.FAIL,
            f"arr_0 is {shape}: channels-first (NCHW); transpose to (N, H, W, 3)",
            effect,
            numbers,
        )
    if len(shape) != 4 or shape[3] != 3:
        return Finding(
            "layout",
            Status.FAIL,
            f"arr_0 has shape {shape}; expected (N, H, W, 3) RGB",
            effect,
            numbers,
        )
    if dtype != np.uint8:
        return Finding(
            "layout",
            Status.FAIL,
            f"arr_0 is {dtype}; expected uint8 in 0..255 "
            "(convert with round(x * 255) after clipping to [0, 1])",
            effect,
            numbers,
        )
    return Finding("layout", Status.PASS, f"uint8 {shape}", effect, numbers)


def check_value_range(minimum: np.ndarray, maximum: np.ndarray) -> Finding:
    """A uint8 file whose brightest pixel is <= 1 holds [0, 1] floats cast without scaling."""
    low, high = int(np.min(minimum)), int(np.max(maximum))
    numbers = {"min": low, "max": high}
    effect = "Inception sees near-black images: FID explodes and IS collapses towards 1"
    if high <= DARK_MAX_VALUE:
        return Finding(
            "value_range",
            Status.FAIL,
            f"pixel values span {low}..{high}: [0, 1] "
            "floats were cast to uint8 without multiplying by 255",
            effect,
            numbers,
        )
    return Finding("value_range", Status.PASS, f"pixel values span {low}..{high}", effect, numbers)


def check_image_size(shape: tuple[int, ...], reference_shape: tuple[int, ...] | None) -> Finding:
    """Samples and reference must share H × W (both are resized to 299 from their own size)."""
    height, width = int(shape[1]), int(shape[2])
    numbers = {
        "height": height,
        "width": width,
        "reference": list(reference_shape[1:3]) if reference_shape else None,
    }
    effect = (
        "Inception resizes every image to 299 px, but from a different resolution the "
        "images keep different detail, so FID against this reference is not comparable"
    )
    if reference_shape is None:
        status = Status.PASS if height == width else Status.WARN
        return Finding(
            "image_size",
            status,
            f"{height}x{width} (no reference given to compare)"
            + ("" if height == width else "; not square"),
            effect,
            numbers,
        )
    ref_h, ref_w = int(reference_shape[1]), int(reference_shape[2])
    if (height, width) != (ref_h, ref_w):
        return Finding(
            "image_size",
            Status.FAIL,
            f"samples are {height}x{width}, the reference "
            f"{ref_h}x{ref_w}; resample the samples or use the reference of their "
            "resolution",
            effect,
            numbers,
        )
    return Finding(
        "image_size", Status.PASS, f"{height}x{width}, as the reference", effect, numbers
    )


def check_sample_count(
    num: int, expected: int = EXPECTED_SAMPLES, split_size: int = IS_SPLIT_SIZE
) -> Finding:
    """ADM's protocol scores 50,000 samples; another N changes FID's bias and the IS splits."""
    splits = -(-num // split_size)
    numbers = {"num_samples": num, "expected": expected, "is_splits": splits}
    effect = (
        "FID is biased upwards by roughly a constant / N, so an FID at another N is not "
        "comparable with 50k tables (fd_inf extrapolates); IS averages "
        f"{splits} split(s) of up to {split_size}"
    )
    if num < 2:
        return Finding(
            "sample_count",
            Status.FAIL,
            f"{num} sample(s): no covariance can be estimated",
            effect,
            numbers,
        )
    if num == expected:
        return Finding("sample_count", Status.PASS, f"{num} samples", effect, numbers)
    tail = (
        f"; a single IS split of {num} (< {split_size})"
        if num < split_size
        else ""
        if num % split_size == 0
        else f"; the last IS split holds {num % split_size}"
    )
    return Finding(
        "sample_count",
        Status.WARN,
        f"{num} samples, the protocol uses {expected}{tail}",
        effect,
        numbers,
    )


def check_constant_images(minimum: np.ndarray, maximum: np.ndarray) -> Finding:
    """Images whose every pixel is equal (black ones included): decode failures or NaN -> 0."""
    constant = minimum == maximum
    black = constant & (maximum == 0)
    count, share = int(constant.sum()), float(constant.mean()) if len(constant) else 0.0
    first = np.flatnonzero(constant)[:5].tolist()
    numbers = {"constant": count, "all_black": int(black.sum()), "share": share, "first": first}
    effect = (
        "every constant image is the same Inception point: it drags the mean and adds a "
        "spike to the covariance, raising FID and lowering recall"
    )
    if count == 0:
        return Finding("constant_images", Status.PASS, "no constant images", effect, numbers)
    status = Status.FAIL if share >= CONSTANT_FAIL_SHARE else Status.WARN
    return Finding(
        "constant_images",
        status,
        f"{count} constant image(s) ({share:.2%}; {int(black.sum())} all black), first at {first}",
        effect,
        numbers,
    )


def check_duplicates(digests: list[bytes], labels: np.ndarray | None) -> Finding:
    """Byte-identical images (SHA-1): reused seeds or noise, e.g. one seed per class."""
    counts = Counter(digests)
    copies = sum(c - 1 for c in counts.values() if c > 1)
    groups = sum(1 for c in counts.values() if c > 1)
    share = copies / max(1, len(digests))
    numbers = {
        "copies": copies,
        "groups": groups,
        "share": share,
        "largest_group": max(counts.values(), default=0),
    }
    effect = (
        "copies shrink the effective sample count and the feature spread: FID rises "
        "(its 1/N bias grows) and recall falls"
    )
    if copies == 0:
        return Finding("duplicates", Status.PASS, "no exact duplicates", effect, numbers)
    if labels is not None:  # copies of the same class: one seed reused within a class
        first: dict[bytes, int] = {}
        within = 0
        for digest, label in zip(digests, np.asarray(labels).tolist(), strict=True):
            if digest in first:
                within += first[digest] == label
            else:
                first[digest] = label
        numbers["copies_within_class"] = within
    status = Status.FAIL if share >= DUPLICATE_FAIL_SHARE else Status.WARN
    return Finding(
        "duplicates",
        status,
        f"{copies} image(s) ({share:.2%}) repeat an earlier "
        f"one, in {groups} group(s), the largest of {numbers['largest_group']}",
        effect,
        numbers,
    )


def check_blockiness(steps: np.ndarray) -> Finding:
    """JPEG 8×8 grid: `scan.blockiness` of the measured subset against the stated thresholds."""
    from ssg_eval.lint.scan import blockiness

    effect = (
        "JPEG artefacts change Inception features: FID moves by whole points against a "
        "PNG-sourced reference"
    )
    ratio = blockiness(steps)
    images = int(np.isfinite(np.asarray(steps)).all(axis=1).sum()) if len(steps) else 0
    if not np.isfinite(ratio):
        return Finding(
            "jpeg_blockiness",
            Status.PASS,
            "not measured (images under 16 px)",
            effect,
            {"images": 0},
        )
    numbers = {
        "blockiness": ratio,
        "images": images,
        "warn_at": BLOCKINESS_WARN,
        "fail_at": BLOCKINESS_FAIL,
    }
    status = (
        Status.FAIL
        if ratio >= BLOCKINESS_FAIL
        else Status.WARN
        if ratio >= BLOCKINESS_WARN
        else Status.PASS
    )
    verdict = {
        Status.PASS: "no 8x8 grid",
        Status.WARN: "a weak 8x8 grid (JPEG quality ~90?)",
        Status.FAIL: "a JPEG 8x8 grid (quality <= ~75)",
    }[status]
    return Finding(
        "jpeg_blockiness",
        status,
        f"{verdict}: blockiness {ratio:.3f} over {images} "
        f"images (warn >= {BLOCKINESS_WARN}, fail >= {BLOCKINESS_FAIL})",
        effect,
        numbers,
    )


def check_channel_order(sample_means: np.ndarray, reference_means: np.ndarray | None) -> Finding:
    """RGB vs BGR: are the samples' channel means closer to the reference's reversed?"""
    effect = (
        "BGR images shift every Inception feature: FID rises by a large, model-independent amount"
    )
    if reference_means is None or len(sample_means) != 3:
        return Finding("channel_order", Status.PASS, "not compared (no reference)", effect, {})
    direct = float(np.abs(sample_means - reference_means).max())
    swapped = float(np.abs(sample_means[::-1] - reference_means).max())
    numbers = {
        "sample_means": [float(v) for v in sample_means],
        "reference_means": [float(v) for v in reference_means],
        "max_gap": direct,
        "max_gap_swapped": swapped,
    }
    if direct > 5 and swapped < 0.5 * direct:
        return Finding(
            "channel_order",
            Status.WARN,
            f"channel means {np.round(sample_means, 1)} "
            f"match the reference's {np.round(reference_means, 1)} better reversed: "
            "BGR?",
            effect,
            numbers,
        )
    return Finding(
        "channel_order",
        Status.PASS,
        "channel means agree with the reference's order",
        effect,
        numbers,
    )

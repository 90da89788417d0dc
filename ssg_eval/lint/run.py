"""`lint_file`: every check on one samples npz (+ optional reference and features) -> a report.

The I/O edge of the linter: it reads npz headers, streams `arr_0` chunk by chunk (a memory map
when stored, a decompressing stream otherwise, never the whole array), and writes `--json`
atomically; the judging itself is in `checks` and `labels`.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.lint import checks
from ssg_eval.lint import labels as label_checks
from ssg_eval.lint.findings import (
    EXPECTED_SAMPLES,
    IS_SPLIT_SIZE,
    Finding,
    LintInputError,
    Status,
    worst,
)
from ssg_eval.lint.scan import ImageScan, iter_chunks, scan_images, subset_indices
from ssg_eval.runs.npz import load_npz, npz_headers, open_npz_array

CHUNK = 256  # images per read: 50 MB at 256 px


@dataclass
class LintReport:
    """All findings on one file, in check order."""

    path: Path
    findings: list[Finding]
    seconds: float

    @property
    def status(self) -> Status:
        """The most severe finding."""
        return worst(self.findings)

    def failures(self) -> list[Finding]:
        """Fail-level findings only."""
        return [f for f in self.findings if f.status is Status.FAIL]

    def to_json(self) -> dict[str, Any]:
        """`--json` payload."""
        return {
            "file": str(self.path),
            "status": str(self.status),
            "seconds": self.seconds,
            "findings": [f.to_json() for f in self.findings],
        }


def iter_member_chunks(path: Path, key: str, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Consecutive row chunks of `key`: sliced from a memory map when the member is stored,
    else read from zipfile's decompressing stream (one chunk in memory either way)."""
    with zipfile.ZipFile(path) as archive:
        compressed = archive.getinfo(f"{key}.npy").compress_type != zipfile.ZIP_STORED
    if not compressed:
        yield from iter_chunks(open_npz_array(path, key), chunk)
        return
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(member)
        if fortran:
            raise LintInputError(f"{path}[{key}] is Fortran-ordered; rewrite it with np.savez")
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        for start in range(0, shape[0], chunk):
            rows = min(chunk, shape[0] - start)
            data = member.read(rows * row_bytes)
            if len(data) != rows * row_bytes:
                raise LintInputError(f"{path}[{key}] is truncated at row {start}")
            yield np.frombuffer(data, dtype=dtype).reshape(rows, *shape[1:])


def _labels(samples: Path, headers: dict, num: int, features: dict | None):
    for key in ("labels", "arr_1"):
        if key in headers and (key == "labels" or len(headers[key][0]) == 1):
            return load_npz(samples, [key])[key], f"{samples.name}:{key}"
    if features is not None and "labels" in features:
        return features["labels"], "features:labels"
    return None, None


def _reference(reference: Path | None) -> tuple[tuple | None, np.ndarray | None]:
    """Reference `arr_0` shape and channel means over up to 1000 evenly spread images."""
    if reference is None:
        return None, None
    shape, _ = npz_headers(reference)["arr_0"]
    wanted, sums, seen, index = set(subset_indices(shape[0], 1000).tolist()), 0.0, 0, 0
    for part in iter_member_chunks(reference, "arr_0"):
        rows = [i - index for i in range(index, index + len(part)) if i in wanted]
        if rows:
            sums = sums + part[rows].reshape(-1, shape[-1]).sum(0, dtype=np.float64)
            seen += len(rows)
        index += len(part)
    return shape, sums / max(1, seen * shape[1] * shape[2])


def _features(source: Path | dict | None, num: int) -> dict[str, np.ndarray] | None:
    if source is None:
        return None
    path = source if not isinstance(source, dict) else "features"
    data = dict(source) if isinstance(source, dict) else load_npz(source)
    pool = data.get("pool", data.get("arr_0"))
    if pool is None or pool.ndim != 2 or len(pool) != num:
        raise LintInputError(
            f"--features {path}: expected `pool` (or `arr_0`) of shape ({num}, D), "
            f"got {None if pool is None else pool.shape}"
        )
    return {"pool": pool, **{k: v for k, v in data.items() if k in ("labels", "logits")}}


def lint_file(
    samples: str | Path,
    reference: str | Path | None = None,
    features: str | Path | dict[str, np.ndarray] | None = None,
    *,
    expected_samples: int = EXPECTED_SAMPLES,
    num_classes: int | None = None,
    split_size: int = IS_SPLIT_SIZE,
    progress: bool = False,
) -> LintReport:
    """Run every check on an ADM-format samples npz.

    Args:
        samples: npz with `arr_0` (uint8 NHWC) and optionally `labels` (or `arr_1`).
        reference: reference npz (image size and channel order are compared with it).
        features: npz (or a dict already in memory) with Inception `pool` features of the
            samples (near-duplicates; its `labels` / `logits` stand in for missing labels).
        expected_samples: the protocol's N. num_classes: classes expected (default: max + 1).
        split_size: the IS split size (ADM: 5000).
        progress: tqdm bar over the images.

    Returns:
        A `LintReport`; a layout failure ends the checks early (nothing else can be read).

    Raises:
        FileNotFoundError / NpzError: a file is missing or not a readable npz.
        LintInputError: no `arr_0`, features of another N, a truncated or Fortran-order member.
    """
    started = time.perf_counter()
    samples = Path(samples)
    reference = None if reference is None else Path(reference)
    headers = npz_headers(samples)
    if "arr_0" not in headers:
        raise LintInputError(
            f"{samples} has no key 'arr_0' (keys: {sorted(headers)}); not ADM format"
        )
    shape, dtype = headers["arr_0"]
    layout = checks.check_layout(shape, dtype)
    if layout.status is Status.FAIL:
        return LintReport(samples, [layout], time.perf_counter() - started)
    num = int(shape[0])
    feats = _features(
        features if features is None or isinstance(features, dict) else Path(features), num
    )
    scan = scan_images(iter_member_chunks(samples, "arr_0"), num, progress=progress)
    labels, source = _labels(samples, headers, num, feats)
    report = lint_scanned(
        samples, shape, dtype, scan, labels, source, feats, reference,
        expected_samples=expected_samples, num_classes=num_classes, split_size=split_size,
    )  # fmt: skip
    report.seconds = time.perf_counter() - started
    return report


def lint_scanned(
    samples: Path,
    shape: tuple,
    dtype: Any,
    scan: ImageScan,
    labels: np.ndarray | None,
    labels_source: str | None,
    features: dict[str, np.ndarray] | None,
    reference: Path | None,
    *,
    expected_samples: int = EXPECTED_SAMPLES,
    num_classes: int | None = None,
    split_size: int = IS_SPLIT_SIZE,
) -> LintReport:
    """Every check from what one pass over the images left (`ImageScan`), without reading them.

    `lint_file` scans the file itself; the harness's own runs hand in the scan their sample stage
    made while exporting `samples.npz`, so the metrics stage never reads the images again.

    Args:
        samples: the samples file the findings are about (named in the report only).
        shape, dtype: `arr_0`'s shape (N, H, W, C) and dtype.
        scan: the images' `ImageScan` (`scan_images`, or a stored one).
        labels, labels_source: one class per image and where they came from, or None.
        features: `pool` (and optionally `logits`) of the samples, or None.
        reference: reference npz for the image size and channel order, or None.
        expected_samples, num_classes, split_size: as in `lint_file`.

    Returns:
        The `LintReport` (its wall time covers the judging only).
    """
    started = time.perf_counter()
    num = int(shape[0])
    if len(scan.minimum) != num:
        raise LintInputError(f"{samples}: the image scan covers {len(scan.minimum)} of {num}")
    found = [checks.check_layout(shape, dtype)]
    ref_shape, ref_means = _reference(reference)
    label_finding = label_checks.check_labels(labels, num, labels_source)
    usable = labels if label_finding.status is Status.PASS else None
    found += [
        checks.check_sample_count(num, expected_samples, split_size),
        checks.check_value_range(scan.minimum, scan.maximum),
        checks.check_image_size(shape, ref_shape),
        checks.check_channel_order(scan.channel_means, ref_means),
        checks.check_constant_images(scan.minimum, scan.maximum),
        checks.check_duplicates(scan.digests, usable),
        checks.check_blockiness(scan.block_steps),
        label_finding,
    ]
    if usable is not None:
        found += [
            label_checks.check_class_balance(usable, num_classes),
            label_checks.check_split_coverage(usable, split_size),
        ]
    elif features is not None and "logits" in features:
        found.append(label_checks.check_prediction_order(features["logits"], split_size))
    pool = None if features is None else features["pool"]
    found.append(label_checks.check_near_duplicates(pool, usable))
    return LintReport(samples, found, time.perf_counter() - started)

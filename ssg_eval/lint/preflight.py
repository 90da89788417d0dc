"""The metrics stage's hook: lint a run's `samples.npz` before any Inception work, reading no image.

Warn-level findings are logged; fail-level ones raise one `SampleLintError` line naming them
(the JPEG check only warns here: the harness never writes JPEG). This module must not compute
metrics; the checks are `lint_file`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.lint.findings import SampleLintError, Status
from ssg_eval.lint.run import LintReport, lint_file, lint_scanned
from ssg_eval.lint.scan import ImageScan, scan_from_arrays
from ssg_eval.runs.layout import SAMPLES_SCAN
from ssg_eval.runs.npz import NpzError, load_npz
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)
SAMPLES_NPZ = "samples.npz"
# The harness writes its samples as uint8 arrays straight from the decoder, never as JPEG, so an
# 8x8 grid in its own runs comes from the decoder's upsampling: reported, never a stop.
ADVISORY = {"jpeg_blockiness": "this harness never writes JPEG: a grid here comes from the decoder"}


def lint_run(
    run_dir: str | Path,
    reference: Any,
    pool: np.ndarray | None,
    manifest: dict[str, Any] | None = None,
    labels: np.ndarray | None = None,
) -> LintReport | None:
    """Lint `<run_dir>/samples.npz` against the reference; skip quietly when it was not exported.

    The image checks come from the scan the sample stage made while it exported the file
    (`samples_scan.npz`, matched to the manifest's `images_sha256`), so no image is read here;
    a run exported without one (an older run) is scanned from its `samples.npz` instead.

    Args:
        run_dir: the run directory.
        reference: `load_reference` result (its file gives the size and channel means).
        pool: the run's pool features (near-duplicates), or None.
        manifest: the run's manifest (`samples.images_sha256`, `image_shape`), or None.
        labels: the run's labels in index order (the features'), or None.

    Returns:
        The report, or None without `samples.npz` (`sampler.save_samples_npz=false`).

    Raises:
        SampleLintError: a fail-level finding (the message names each and the `ssg-lint` command).
    """
    path = Path(run_dir) / SAMPLES_NPZ
    if not path.is_file():
        log.info("no %s in %s: the sample linter was skipped", SAMPLES_NPZ, run_dir)
        return None
    features = None if pool is None else {"pool": pool}
    scan = _stored_scan(Path(run_dir), manifest)
    if scan is not None and labels is not None:
        shape = (len(scan.minimum), *manifest["image_shape"])
        report = lint_scanned(path, shape, np.dtype(np.uint8), scan, labels, "features:labels",
                              features, Path(reference.path))  # fmt: skip
    else:
        log.info("no image scan recorded for %s: reading it once to lint it", path)
        report = lint_file(path, reference=reference.path, features=features)
    _judge(report, path, reference)
    return report


def _stored_scan(run_dir: Path, manifest: dict[str, Any] | None) -> ImageScan | None:
    # The scan written beside samples.npz by the export, if it is of these very images.
    wanted = ((manifest or {}).get("samples") or {}).get("images_sha256")
    path = run_dir / SAMPLES_SCAN
    if wanted is None or not path.is_file() or not (manifest or {}).get("image_shape"):
        return None
    try:
        arrays = load_npz(path)
    except (NpzError, FileNotFoundError):
        return None  # damaged or gone: the file itself is scanned instead
    if str(arrays.pop("images_sha256")) != wanted:
        return None
    return scan_from_arrays(arrays)


def _judge(report: LintReport, path: Path, reference: Any) -> None:
    # Warnings go to the log; a fail-level finding (other than the advisory ones) stops the stage.
    for finding in report.findings:
        if finding.check in ADVISORY and finding.status is not Status.PASS:
            log.warning(
                "ssg-lint %s: %s (%s)", finding.check, finding.message, ADVISORY[finding.check]
            )
        elif finding.status is Status.WARN:
            log.warning("ssg-lint %s: %s (%s)", finding.check, finding.message, finding.effect)
    failures = [f for f in report.failures() if f.check not in ADVISORY]
    if failures:
        listed = "; ".join(f"{f.check}: {f.message}" for f in failures)
        raise SampleLintError(
            f"{path} fails the sample linter ({listed}); details: ssg-lint {path} "
            f"--reference {reference.path}"
        )
    log.info("ssg-lint %s: %s in %.1f s", path, report.status, report.seconds)

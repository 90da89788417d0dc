"""The metrics stage's hook: lint a run's `samples.npz` before any Inception work.

Warn-level findings are logged; fail-level ones raise one `SampleLintError` line naming them
(the JPEG check only warns here: the harness never writes JPEG). This module must not compute
metrics; the checks are `lint_file`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.lint.findings import SampleLintError, Status
from ssg_eval.lint.run import LintReport, lint_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)
SAMPLES_NPZ = "samples.npz"
# The harness writes its samples as uint8 arrays straight from the decoder, never as JPEG, so an
# 8x8 grid in its own runs comes from the decoder's upsampling: reported, never a stop.
ADVISORY = {"jpeg_blockiness": "this harness never writes JPEG: a grid here comes from the decoder"}


def lint_run(run_dir: str | Path, reference: Any, pool: np.ndarray | None) -> LintReport | None:
    """Lint `<run_dir>/samples.npz` against the reference; skip quietly when it was not exported.

    Args:
        run_dir: the run directory.
        reference: `load_reference` result (its file gives the size and channel means).
        pool: the run's pool features (near-duplicates), or None.

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
    report = lint_file(path, reference=reference.path, features=features)
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
    return report

"""One lint finding (check, status, numbers, what it does to FID/IS) and the stated thresholds.

Every threshold of the linter is a named constant here with the reason for its value; this
module must not read files or compute statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ssg_eval.errors import InputFileError


class Status(StrEnum):
    """Severity of a finding; `fail` stops the metrics stage and makes `ssg-lint` exit 1."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """The result of one check.

    Attributes:
        check: short id (`sample_count`, `duplicates`, ...).
        status: pass / warn / fail.
        message: what was found, with its numbers.
        effect: one sentence on what this does to FID or IS.
        numbers: the measured values (JSON-serialisable).
    """

    check: str
    status: Status
    message: str
    effect: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for `--json`."""
        return {**asdict(self), "status": str(self.status)}


class SampleLintError(InputFileError):
    """A samples file with fail-level findings; the message lists them on one line."""


class LintInputError(InputFileError):
    """An input the linter cannot read as asked (no `arr_0`, features of another N, ...)."""


def worst(findings: Iterable[Finding]) -> Status:
    """The most severe status among `findings` (pass when empty)."""
    order = [Status.PASS, Status.WARN, Status.FAIL]
    return max((f.status for f in findings), key=order.index, default=Status.PASS)


# ADM protocol: 50,000 samples, IS over consecutive 5,000-sample splits.
EXPECTED_SAMPLES = 50_000
IS_SPLIT_SIZE = 5000
# Exact duplicates: distinct seeds practically never give byte-identical images, so any copy is a
# seeding fault (warn); from 1 % of the file on, the set is no longer N independent samples (fail).
DUPLICATE_FAIL_SHARE = 0.01
# Constant images (every pixel equal: decode failures, NaN -> 0): any is a warning, 1 % a failure.
CONSTANT_FAIL_SHARE = 0.01
# IS split coverage: random labels leave each 5,000-split of 1,000 classes ~99.3 % covered
# (1 - e^-5); class-sorted files cover ~10 %; below half the classes the IS is not ADM's.
SPLIT_COVERAGE_FAIL = 0.5
# JPEG blockiness (`scan.blockiness`: Σ luma steps across block edges / Σ steps inside blocks,
# over up to BLOCKINESS_IMAGES images). On 3 synthetic families of 200 images at 256 px
# (benchmarks/lint_blockiness.py): PNG 0.999-1.005, JPEG quality 75 1.145-1.624, quality 90
# 1.027-1.202, quality >= 95 at most 1.025 (no measurable grid). Warn above the clean spread
# with margin, fail below the mildest quality-75 set.
BLOCKINESS_WARN = 1.05
BLOCKINESS_FAIL = 1.10
BLOCKINESS_IMAGES = 1000
# Near-duplicates: cosine similarity of mean-centred pool3 features (centring removes the
# direction every pool3 vector shares; unrelated images then score about 0, copies 1).
NEAR_DUPLICATE_COSINE = 0.95
# Value range: a uint8 file whose brightest pixel is <= 1 holds [0, 1] floats cast to uint8.
DARK_MAX_VALUE = 1

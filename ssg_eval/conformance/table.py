"""The conformance table: each tool's value per metric beside ssg_eval's, the delta and its cause.

Pure: tool results (dicts of numbers, or a reason a tool could not run) in, a DataFrame and its
Markdown out; the causes are stated here once, keyed by tool variant and metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

METRICS = ("fid", "is", "kid", "precision", "recall")
BASELINE = "ssg_eval"
# Agreement: relative delta within float rounding of the two implementations (or an absolute
# one for values near 0: KID, and P/R fractions whose unit is 1/N).
REL_TOLERANCE = 1e-4
ABS_TOLERANCE = 1e-6
COLUMNS = ["metric", "tool", "value", "ssg_eval", "delta", "rel_delta", "agrees", "cause"]

_RESIZE_AA = (
    "torch bilinear resize to 299 (half-pixel centres, antialiased when shrinking: "
    "torchmetrics' default) instead of TF1's legacy bilinear (no half-pixel offset, no "
    "antialiasing)"
)
_CLEAN = (
    "clean mode: PIL bicubic resize to 299 in float (antialiased when shrinking) instead of "
    "TF1's legacy bilinear inside the network"
)
CAUSES: dict[tuple[str, str], str] = {
    ("ssg_eval stored stats", "fid"): "the reference's stored training-set statistics (ADM's "
    "rule) instead of statistics of the reference images' own features",
    ("ssg_eval pr float32", "precision"): "float32 distances instead of ADM's float16 ones "
    "(fp16 near-ties with the radius count as inside)",
    ("ssg_eval pr float32", "recall"): "float32 distances instead of ADM's float16 ones",
    ("torch-fidelity", "fid"): "same features; tr √(Σ₁Σ₂) from np.linalg.eigvals (complex) vs "
    "symmetric eigh: float rounding, larger when N < 2048 (roots of numerically-zero eigenvalues)",
    ("torch-fidelity", "is"): "same logits and splits; softmax in float64 vs ADM's float32",
    ("torch-fidelity", "kid"): "same subsets (RandomState(2020), generated first); kernels and "
    "sums in float32 vs float64",
    ("torch-fidelity", "precision"): "torch.cdist float32 distances vs ADM's float16 squared "
    "distances (fp16 near-ties count as inside)",
    ("torch-fidelity", "recall"): "torch.cdist float32 distances vs ADM's float16 squared "
    "distances",
    ("torch-fidelity defaults", "is"): "IS split shuffling (samples_shuffle=True, seed 2020) "
    "and 10 equal splits instead of consecutive 5,000-sample splits",
    ("torchmetrics", "fid"): f"{_RESIZE_AA}; one-pass covariance Σxxᵀ − nμμᵀ and the result "
    "cast to float32",
    ("torchmetrics", "kid"): f"{_RESIZE_AA}; subsets from torch.randperm (global RNG)",
    ("torchmetrics", "is"): f"{_RESIZE_AA}; shuffled by torch.randperm, 10 splits",
    ("torchmetrics antialias=False", "fid"): "same resize as ADM; one-pass float64 "
    "covariance, eigvals, and the result cast to float32",
    ("clean-fid clean", "fid"): f"{_CLEAN}; scipy sqrtm in float64",
    ("clean-fid clean", "kid"): f"{_CLEAN}; subsets from np.random (seeded)",
    ("clean-fid legacy_tensorflow", "fid"): "same network input; scipy sqrtm vs eigh only",
    ("clean-fid legacy_tensorflow", "kid"): "same features; subsets from np.random (seeded), "
    "not torch-fidelity's RandomState(2020) draws",
}


@dataclass
class ToolResult:
    """One tool variant's numbers, or why it has none.

    Attributes:
        tool: variant name (`torch-fidelity`, `torchmetrics antialias=False`, ...).
        values: metric -> value for the metrics it computed.
        reason: why it did not run (empty when it did).
        settings: how it was called, one line.
    """

    tool: str
    values: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    settings: str = ""


def agrees(value: float, reference: float) -> bool:
    """Within `REL_TOLERANCE` relative or `ABS_TOLERANCE` absolute."""
    return abs(value - reference) <= max(REL_TOLERANCE * abs(reference), ABS_TOLERANCE)


def _matching_variant(results: list[ToolResult], metric: str, value: float) -> str:
    """`; equals <ssg_eval variant>` when an ssg_eval variant reproduces a differing value."""
    for other in results:
        if other.tool != BASELINE and other.tool.startswith(BASELINE) and not other.reason:
            if metric in other.values and agrees(value, float(other.values[metric])):
                return f"; equals `{other.tool}` ({float(other.values[metric]):.6g})"
    return ""


def conformance_table(results: list[ToolResult]) -> pd.DataFrame:
    """Long table: one row per (metric, tool) with its delta to the `ssg_eval` row.

    Args:
        results: the `ssg_eval` result first or anywhere, then every other variant.

    Returns:
        Columns `COLUMNS`; a tool that did not run gives one last row (metric `all`, NaN values)
        with its reason as the cause.

    Raises:
        ValueError: no `ssg_eval` result.
    """
    base = next((r for r in results if r.tool == BASELINE), None)
    if base is None:
        raise ValueError("the conformance table needs the ssg_eval result as its baseline")
    rows = []
    for metric in METRICS:
        ours = base.values.get(metric, math.nan)
        for result in results:
            if result.reason or metric not in result.values:
                continue
            value = float(result.values[metric])
            delta = value - ours
            rel = delta / abs(ours) if ours else math.nan
            same = agrees(value, ours)
            key = (result.tool, metric)
            cause = "" if result.tool == BASELINE else CAUSES.get(key, "")
            if same and result.tool != BASELINE:
                cause = f"agrees within rounding ({cause})" if cause else "agrees"
            elif not same and not result.tool.startswith(BASELINE):
                cause += _matching_variant(results, metric, value)
            rows.append([metric, result.tool, value, ours, delta, rel, same, cause])
    for result in results:  # one row per tool that could not run, after the numbers
        if result.reason:
            rows.append(["all", result.tool, *[math.nan] * 4, None, f"not run: {result.reason}"])
    return pd.DataFrame(rows, columns=COLUMNS)


def conformance_markdown(table: pd.DataFrame, results: list[ToolResult], title: str) -> str:
    """The table as Markdown (values to 6 significant digits), then each tool's settings."""
    shown = table.copy()
    for column in ("value", "ssg_eval", "delta"):
        shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else f"{v:.6g}")
    shown["rel_delta"] = shown["rel_delta"].map(lambda v: "–" if pd.isna(v) else f"{v:+.2e}")
    shown["agrees"] = shown["agrees"].map({True: "yes", False: "no"}).fillna("–")
    lines = [f"# {title}", "", shown.to_markdown(index=False), "", "Settings:", ""]
    lines += [f"- **{r.tool}**: {r.settings or r.reason}" for r in results]
    return "\n".join(lines) + "\n"

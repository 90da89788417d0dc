"""Conformance table logic: deltas against ssg_eval, agreement, causes, tools that did not run."""

from __future__ import annotations

import math

import pytest

from ssg_eval.conformance.table import (
    CAUSES,
    ToolResult,
    conformance_markdown,
    conformance_table,
)


def results():
    return [
        ToolResult("ssg_eval", {"fid": 10.0, "is": 200.0, "kid": 0.0}),
        ToolResult("torch-fidelity", {"fid": 10.000001, "is": 200.0, "kid": 4e-7}),
        ToolResult("torchmetrics", {"fid": 10.5}),
        ToolResult("clean-fid clean", reason="not installed"),
    ]


def test_deltas_agreement_and_causes():
    table = conformance_table(results()).set_index(["metric", "tool"])
    fid = table.loc[("fid", "torchmetrics")]
    assert fid["delta"] == pytest.approx(0.5) and fid["rel_delta"] == pytest.approx(0.05)
    assert not fid["agrees"] and fid["cause"] == CAUSES[("torchmetrics", "fid")]
    close = table.loc[("fid", "torch-fidelity")]
    assert close["agrees"] and close["cause"].startswith("agrees within rounding")
    kid = table.loc[("kid", "torch-fidelity")]  # ssg_eval's KID is 0: absolute tolerance
    assert kid["agrees"] and math.isnan(kid["rel_delta"])
    assert ("is", "torchmetrics") not in table.index  # a metric a tool did not compute
    skipped = table.loc[("all", "clean-fid clean")]
    assert math.isnan(skipped["value"]) and skipped["cause"] == "not run: not installed"


def test_a_differing_value_reproduced_by_an_ssg_eval_variant_is_named():
    rows = [
        ToolResult("ssg_eval", {"recall": 0.5625}),
        ToolResult("ssg_eval pr float32", {"recall": 0.5}),
        ToolResult("torch-fidelity", {"recall": 0.5}),
    ]
    table = conformance_table(rows).set_index(["metric", "tool"])
    assert table.loc[("recall", "torch-fidelity"), "cause"].endswith(
        "; equals `ssg_eval pr float32` (0.5)"
    )


def test_markdown_lists_values_and_settings():
    text = conformance_markdown(conformance_table(results()), results(), "T")
    assert text.startswith("# T") and "+5.00e-02" in text and "not installed" in text


def test_baseline_is_required():
    with pytest.raises(ValueError, match="ssg_eval"):
        conformance_table([ToolResult("torchmetrics", {"fid": 1.0})])

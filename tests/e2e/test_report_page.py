"""The report page in a real browser (headless Chromium), on a small synthetic page.

The full smoke page is checked the same way in tests/e2e/test_smoke.py.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from ssg_eval.report.page import Figure, band_page_table, render_page, table1_page_table
from tests.browser_helpers import assert_numbers_match_csv, open_page, require_browser


def _table1() -> pd.DataFrame:
    rows = []
    for guidance, fid in (("cfg", 3.3012345678901), ("cfg_ssg", 3.05)):
        rows.append({"model": "m", "model_label": "M <d16>", "guidance": guidance, "N": 20,
                     "seeds": "0,1", "fid": fid, "fid_std": 0.125, "paper_fid": 3.3,
                     "sfid": np.nan, "sfid_std": np.nan, "paper_sfid": None, "is": 250.04,
                     "is_std": 1.0, "paper_is": 274.4, "precision": 0.8, "precision_std": 0.01,
                     "paper_precision": 0.84, "recall": 0.5, "recall_std": 0.02,
                     "paper_recall": 0.51, "fid_bootstrap_std": np.nan})  # fmt: skip
    table = pd.DataFrame(rows)
    table.loc[1, "delta_fid"] = -0.2512345
    table.loc[1, "delta_fid_ci_low"], table.loc[1, "delta_fid_ci_high"] = -0.4, -0.1
    return table


def _bands() -> pd.DataFrame:
    return pd.DataFrame({"line": ["g vs b"] * 2, "metric": ["fwd", "psd_ratio"],
                         "band": ["0", "high"],
                         "band_range": ["[0/16, 1/16) Nyquist", "(0.5, 1] Nyquist radius"],
                         "baseline": [1.5, 0.9], "candidate": [1.25, 0.95],
                         "delta": [-0.25, 0.05], "ci_low": [-0.3, 1.2e-5],
                         "ci_high": [-0.2, 0.1], "resolved": [True, True]})  # fmt: skip


def test_synthetic_page_renders_in_chromium(tmp_path):
    require_browser()
    site = tmp_path / "site"
    (site / "figures").mkdir(parents=True)
    _table1().to_csv(site / "t1.csv", index=False)
    _bands().to_csv(site / "bands.csv", index=False)
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(buffer, format="PNG")
    (site / "figures" / "f.png").write_bytes(buffer.getvalue())
    tables = [
        table1_page_table(pd.read_csv(site / "t1.csv"), "t1.csv", "caption <one>"),
        band_page_table(pd.read_csv(site / "bands.csv"), "bands.csv", "caption two"),
    ]
    html = render_page("Title & more", "note", tables,
                       [("Figures", [Figure("figures/f.png", "a grey box", "run x (config y)")])],
                       "provenance")  # fmt: skip
    (site / "index.html").write_text(html, encoding="utf-8")
    shot = tmp_path / "page.png"
    seen = open_page(site / "index.html", tmp_path / "profile", shot)
    assert seen["errors"] == [] and seen["failed"] == [] and seen["broken"] == []
    assert seen["images"] == 1 and seen["title"] == "Title & more"
    assert assert_numbers_match_csv(seen["numbers"], site) >= 20
    assert shot.stat().st_size > 1000 and "<script" not in html and "http" not in html

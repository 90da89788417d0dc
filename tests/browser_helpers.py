"""Shared test helper: open a report page in headless Chromium and read what a person would see.

Drives Debian's /usr/bin/chromium through playwright's Python API (never a downloaded browser);
callers skip with the reason when either is missing.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_NUMBERS_JS = """() => Array.from(document.querySelectorAll('span[data-col]')).map(s => ({
    csv: s.closest('table').dataset.csv, row: Number(s.dataset.row), col: s.dataset.col,
    value: s.dataset.value, text: s.textContent}))"""
_BROKEN_JS = """() => Array.from(document.images)
    .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))"""


def require_browser() -> None:
    """Skip the calling test, with the reason, when Chromium or playwright is unavailable."""
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip("no /usr/bin/chromium (make test installs Debian's chromium when run as root)")
    pytest.importorskip("playwright.sync_api", reason="pip playwright missing (dev extra)")


def open_page(html: Path, profile: Path, screenshot: Path) -> dict:
    """Load `html` from a file:// URL; return console errors, failed requests, broken images,
    every number span and the page's image count; write a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    errors, failed = [], []
    with sync_playwright() as play:
        browser = play.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM if CHROMIUM.is_file() else
                                              shutil.which("chromium")),
            headless=True, args=FLAGS, viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            result = {"errors": errors, "failed": failed,
                      "broken": page.evaluate(_BROKEN_JS), "numbers": page.evaluate(_NUMBERS_JS),
                      "images": page.evaluate("() => document.images.length"),
                      "title": page.title()}  # fmt: skip
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return result


def assert_numbers_match_csv(numbers: list[dict], csv_dir: Path) -> int:
    """Every rendered number's data-value equals its CSV cell exactly; returns how many."""
    tables: dict[str, pd.DataFrame] = {}
    for item in numbers:
        table = tables.setdefault(item["csv"], pd.read_csv(csv_dir / item["csv"]))
        want = table[item["col"]].iloc[item["row"]]
        got = float(item["value"])
        if pd.isna(want):
            assert math.isnan(got) and item["text"] == "–", item
        else:
            assert got == float(want), (item, want)
            assert abs(float(item["text"]) - float(want)) <= _half_unit(item["text"]), (item, want)
    return len(numbers)


def _half_unit(text: str) -> float:
    """Half a unit of the last shown digit (4 significant digits for exponent notation)."""
    if "e" in text:
        return 5e-4 * abs(float(text))
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals * (1 + 1e-9)

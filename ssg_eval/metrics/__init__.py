"""ADM-evaluator metrics (FID, sFID, IS, precision, recall) as pure functions plus reference I/O.

The core modules take arrays and return Python floats; only `reference.py`, `compute.py` and
`cli.py` touch files, and nothing here samples images or renders tables.
"""

from __future__ import annotations

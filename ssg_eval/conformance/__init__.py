"""Conformance: one samples/reference pair through ssg_eval and other toolkits' own code.

`tools`/`tools_other` run the toolkits, `table` states deltas and causes, `cli` writes the
table; nothing here changes how ssg_eval computes a metric.
"""

from __future__ import annotations

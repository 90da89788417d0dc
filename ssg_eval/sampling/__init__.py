"""Sampling stage: the sample plan, the multi-scale loop, shard files and the per-rank runner.

Importing this package stays light (submodules load on first use: `sampling.plan`,
`sampling.loop`, `sampling.shards`, `sampling.run`); it must not build models or touch files.
"""

from __future__ import annotations

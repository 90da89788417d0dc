"""Sampling stage: the sample plan, the multi-scale loop, shard files and the per-rank runner.

Importing this package stays light (submodules load on first use: `sampling.plan`, `sampling.draw`,
`sampling.loop` (tokens), `sampling.decode` (tokens → f̂ → pixels), `sampling.generate`,
`sampling.shards`, `sampling.run`); it must not build models or touch files.
"""

from __future__ import annotations

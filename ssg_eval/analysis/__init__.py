"""Post-hoc analyses of finished runs: seed statistics (`seeds`) and spectral figures (`spectral`).

This package owns numbers and figures derived from existing run artifacts; importing it must stay
light (no torch, no matplotlib backend selection) and it must not sample or score images itself,
except `cli`, which re-generates a few latents through the production sampler.
"""

from __future__ import annotations

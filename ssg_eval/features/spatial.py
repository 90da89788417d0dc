"""The sFID spatial tap: `Mixed_6d.branch1x1` output, first 7 channels, flattened in NHWC order.

ADM's `mixed_6/conv:0` maps to torch-fidelity's `Mixed_6d.branch1x1` (not `Mixed_6a`, which
also yields 2023 values); this module owns only the hook and the layout, not the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

SPATIAL_LAYER = "Mixed_6d.branch1x1"  # TF `mixed_6/conv` (BN + ReLU output, N x 192 x 17 x 17)
SPATIAL_CHANNELS = 7  # ADM keeps spatial[..., :7]
SPATIAL_SIZE = 17
SPATIAL_DIM = SPATIAL_SIZE * SPATIAL_SIZE * SPATIAL_CHANNELS  # 2023


def activation_to_spatial(act_BCHW: torch.Tensor) -> torch.Tensor:
    """Flatten the tapped activation the way ADM does: `[:, :7]`, NHWC order, then rows.

    Args:
        act_BCHW: (B, 192, 17, 17) float output of `Mixed_6d.branch1x1`.

    Returns:
        (B, 2023) float32, laid out as (h, w, c) per row, matching the stored `mu_s`/`sigma_s`.
    """
    act_BhwC = act_BCHW[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1)
    return act_BhwC.reshape(act_BCHW.shape[0], -1).to(torch.float32)


class SpatialTap:
    """A forward hook on `Mixed_6d.branch1x1` that keeps the last batch's flattened tap.

    Args:
        network: torch-fidelity's `FeatureExtractorInceptionV3` (or any module that has a
            `Mixed_6d.branch1x1` submodule).
    """

    def __init__(self, network: nn.Module) -> None:
        self.layer = network.get_submodule(SPATIAL_LAYER)
        self._value: torch.Tensor | None = None
        self._handle = self.layer.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self._value = activation_to_spatial(output)

    @contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """Collect the tap of exactly one forward pass into the yielded list."""
        self._value = None
        box: list[torch.Tensor] = []
        try:
            yield box
            if self._value is None:
                raise RuntimeError(f"the {SPATIAL_LAYER} hook did not fire during the forward pass")
            box.append(self._value)
        finally:
            self._value = None

    def remove(self) -> None:
        """Detach the hook."""
        self._handle.remove()

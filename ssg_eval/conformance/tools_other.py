"""torchmetrics and clean-fid on the conformance inputs, with the shared local Inception weights.

Both are optional (`pip install -e '.[conformance]'`); a missing one, or one that cannot run
offline, returns its reason. clean-fid reads images from a folder, written here temporarily.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ssg_eval.conformance.table import ToolResult
from ssg_eval.conformance.tools import Inputs, batches_bchw

INSTALL = "pip install -e '.[conformance]'"


def run_torchmetrics(inputs: Inputs) -> list[ToolResult]:
    """FID/KID/IS with torchmetrics' defaults (antialiased resize), and FID with antialias off."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as err:
        reasons = f"torchmetrics is not installed ({err}); {INSTALL}"
        return [ToolResult("torchmetrics", reason=reasons)]
    weights = str(inputs.weights)
    warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")

    def extractor(layer: str, antialias: bool) -> nn.Module:
        return NoTrainInceptionV3("inception-v3-compat", [layer], weights, antialias=antialias)

    results = []
    for antialias in (True, False):
        metrics = {
            "fid": FrechetInceptionDistance(
                feature=2048, antialias=antialias, feature_extractor_weights_path=weights
            )
        }
        if antialias:  # KID and IS through their own extractor module (the default resize)
            metrics["kid"] = KernelInceptionDistance(
                feature=extractor("2048", True), subset_size=inputs.kid_subset
            )
            metrics["is"] = InceptionScore(feature=extractor("logits_unbiased", True))
        with torch.inference_mode():
            for real, images in ((False, inputs.samples), (True, inputs.reference)):
                for batch in batches_bchw(images, inputs.batch_size):
                    for name, metric in metrics.items():
                        if name != "is":
                            metric.update(batch, real=real)
                        elif not real:
                            metric.update(batch)
            torch.manual_seed(0)  # KID subsets and the IS shuffle use the global torch RNG
            values = {name: metric.compute() for name, metric in metrics.items()}
        values = {k: float(v[0] if isinstance(v, tuple) else v) for k, v in values.items()}
        name = "torchmetrics" if antialias else "torchmetrics antialias=False"
        results.append(
            ToolResult(
                name,
                values,
                settings=f"antialias={antialias}, local weights, "
                f"KID subset_size={inputs.kid_subset}, IS splits=10, seed 0",
            )
        )
    return results


class TorchFidelityNet(nn.Module):
    """torch-fidelity's Inception from the local weights, as a clean-fid feature extractor.

    Input: float (B, 3, H, W) in [0, 255] from clean-fid's loader. `resize_inside` (clean-fid's
    legacy_tensorflow mode) feeds the exact uint8 values to the network's own TF1 resize; else
    (clean mode, already 299 × 299 floats) the layers run after (x − 128) / 128 without a resize.
    """

    def __init__(self, weights: Path, resize_inside: bool):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
        )
        self.resize_inside = resize_inside

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        if self.resize_inside:
            return self.net(x_BCHW.round().to(torch.uint8))[0]
        from ssg_eval.features.inception import TRUNK_LAYERS

        x = (x_BCHW.float() - 128) / 128
        for name in TRUNK_LAYERS:
            x = getattr(self.net, name)(x)
        return torch.flatten(x, 1)


def _folder(images: np.ndarray, root: Path) -> str:
    root.mkdir(parents=True)
    for index in range(len(images)):
        np.save(root / f"{index:06d}.npy", np.asarray(images[index]))
    return str(root)


def run_clean_fid(inputs: Inputs) -> list[ToolResult]:
    """clean-fid's folder loader, resize modes, FID and KID around torch-fidelity's network."""
    try:
        from cleanfid import fid as cleanfid
    except ImportError as err:
        return [
            ToolResult("clean-fid clean", reason=f"clean-fid is not installed ({err}); {INSTALL}")
        ]
    own = ToolResult(
        "clean-fid (own network)",
        reason="its Inception is a TorchScript file "
        "(inception-2015-12-05.pt) fetched on first use; it cannot be built from "
        "torch-fidelity's .pth, so the rows above run clean-fid's loader, resize and "
        "arithmetic around torch-fidelity's network (custom_feat_extractor)",
    )
    results = []
    device = torch.device(inputs.device)
    with tempfile.TemporaryDirectory(prefix="ssg_conformance_cf_") as tmp:
        samples = _folder(inputs.samples, Path(tmp) / "samples")
        reference = _folder(inputs.reference, Path(tmp) / "reference")
        for mode in ("clean", "legacy_tensorflow"):
            net = TorchFidelityNet(inputs.weights, mode == "legacy_tensorflow").to(device).eval()
            feats = [
                cleanfid.get_folder_features(
                    folder,
                    net,
                    num_workers=0,
                    device=device,
                    batch_size=inputs.batch_size,
                    mode=mode,
                    verbose=False,
                )
                for folder in (samples, reference)
            ]
            np.random.seed(0)  # kernel_distance draws its subsets from the global numpy RNG
            values = {
                "fid": float(cleanfid.fid_from_feats(*feats)),
                "kid": float(cleanfid.kernel_distance(*feats)),
            }
            results.append(
                ToolResult(
                    f"clean-fid {mode}",
                    values,
                    settings=f"mode={mode}, get_folder_features + fid_from_feats + kernel_distance",
                )
            )
    return [*results, own]

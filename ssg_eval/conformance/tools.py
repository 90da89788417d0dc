"""Run one samples/reference pair through ssg_eval and through other toolkits' own code.

Every tool gets the same uint8 images and the same local Inception weights file (torch-fidelity's
layout); a tool that cannot run offline returns its reason instead of numbers. Nothing here
writes files except the temporary image folders clean-fid reads.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssg_eval.conformance.table import ToolResult

ADM_SPLIT = 5000


@dataclass
class Inputs:
    """The shared inputs: images (memory-mapped), weights, device, batch and subset sizes."""

    samples: np.ndarray  # (N, H, W, 3) uint8
    reference: np.ndarray  # (M, H, W, 3) uint8
    reference_path: Path
    weights: Path
    device: str = "cpu"
    batch_size: int = 64

    @property
    def kid_subset(self) -> int:
        """torch-fidelity's 1000, or fewer when a set is smaller."""
        return min(1000, len(self.samples), len(self.reference))

    @property
    def is_splits(self) -> int:
        """Equal splits that match ADM's 5,000-sample chunks (exact when N is a multiple)."""
        return max(1, round(len(self.samples) / ADM_SPLIT))


def batches_bchw(images: np.ndarray, batch: int) -> Iterator[torch.Tensor]:
    """uint8 (B, 3, H, W) tensors of consecutive images."""
    for start in range(0, len(images), batch):
        yield torch.from_numpy(np.array(images[start : start + batch])).permute(0, 3, 1, 2)


class ImageDataset(torch.utils.data.Dataset):
    """uint8 NHWC array -> torch-fidelity's uint8 3×H×W tensors."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1).contiguous()


def run_ssg_eval(inputs: Inputs) -> list[ToolResult]:
    """ssg_eval's ADM protocol, plus the two variants that isolate a cause."""
    from ssg_eval.features.extract import extract_features
    from ssg_eval.features.inception import build_inception
    from ssg_eval.metrics.compute import compute_metrics
    from ssg_eval.metrics.kid import kid
    from ssg_eval.metrics.reference import load_reference

    model = build_inception(str(inputs.weights), inputs.device)

    def features(images: np.ndarray) -> dict[str, np.ndarray]:
        chunks = (images[s : s + 1024] for s in range(0, len(images), 1024))
        return extract_features(
            chunks,
            model,
            batch_size=inputs.batch_size,
            device=inputs.device,
            progress=False,
            num_images=len(images),
        )

    sample, real = features(inputs.samples), features(inputs.reference)
    stored = load_reference(
        inputs.reference_path, name=inputs.reference_path.name, verify_sha256=False
    )
    own = dataclasses.replace(stored, mu=None, sigma=None, mu_s=None, sigma_s=None)
    common = dict(split_size=ADM_SPLIT, k=3, block_size=10_000, fid_method="eigh")
    values = compute_metrics(
        sample,
        own,
        real,
        distance_dtype="float16",
        metrics=["fid", "is", "precision", "recall"],
        **common,
    )
    values["kid"] = kid(sample["pool"], real["pool"], subset_size=inputs.kid_subset)[0]
    setting = (
        f"ADM protocol (fast Inception, batch {inputs.batch_size}); KID subsets of "
        f"{inputs.kid_subset}; FID from the reference images' features"
    )
    results = [ToolResult("ssg_eval", values, settings=setting)]
    pr32 = compute_metrics(
        sample, own, real, distance_dtype="float32", metrics=["precision", "recall"], **common
    )
    results.append(ToolResult("ssg_eval pr float32", pr32, settings="distance_dtype=float32"))
    if stored.has_stats:
        fid = compute_metrics(
            sample, stored, real, distance_dtype="float16", metrics=["fid"], **common
        )
        results.append(ToolResult("ssg_eval stored stats", fid, settings="ADM's stored-mu rule"))
    return results


def run_torch_fidelity(inputs: Inputs) -> list[ToolResult]:
    """`torch_fidelity.calculate_metrics` with ADM-matching settings, then with its IS defaults."""
    import torch_fidelity

    with tempfile.TemporaryDirectory(prefix="ssg_conformance_tf_") as cache:
        common = dict(
            input1=ImageDataset(inputs.samples),
            input2=ImageDataset(inputs.reference),
            input1_cache_name="samples",
            input2_cache_name="reference",
            cache_root=cache,
            cache=True,
            cuda=inputs.device.startswith("cuda"),
            batch_size=inputs.batch_size,
            feature_extractor="inception-v3-compat",
            verbose=False,
            feature_extractor_weights_path=str(inputs.weights),
        )
        adm = torch_fidelity.calculate_metrics(
            **common,
            isc=True,
            fid=True,
            kid=True,
            prc=True,
            samples_shuffle=False,
            isc_splits=inputs.is_splits,
            kid_subset_size=inputs.kid_subset,
            feature_layer_prc="2048",
            save_cpu_ram=True,
        )
        defaults = torch_fidelity.calculate_metrics(**common, isc=True)
    keys = {
        "fid": "frechet_inception_distance",
        "is": "inception_score_mean",
        "kid": "kernel_inception_distance_mean",
        "precision": "precision",
        "recall": "recall",
    }
    return [
        ToolResult(
            "torch-fidelity",
            {k: float(adm[v]) for k, v in keys.items()},
            settings=f"calculate_metrics(samples_shuffle=False, isc_splits="
            f"{inputs.is_splits}, kid_subset_size={inputs.kid_subset}, "
            "feature_layer_prc='2048', inception-v3-compat, local weights)",
        ),
        ToolResult(
            "torch-fidelity defaults",
            {"is": float(defaults["inception_score_mean"])},
            settings="calculate_metrics(isc=True) with its defaults (shuffle, 10 splits)",
        ),
    ]

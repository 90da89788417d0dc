"""Build torch-fidelity's `inception-v3-compat` feature extractor from a local weights file.

It resolves and checks the weights (never downloads), records their sha256 and adds the sFID
tap; it must not re-implement the network or its preprocessing (TF1 resize, (x - 128) / 128).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from ssg_eval.features.spatial import SpatialTap
from ssg_eval.runs.io import atomic_write_bytes, sha256_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

EXTRACTOR_NAME = "inception-v3-compat"
WEIGHTS_FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch.hub naming: file-<sha256 prefix>.pth
WEIGHTS_ENV = "SSG_EVAL_INCEPTION"
WEIGHTS_KEY = "metrics.inception_weights"
TORCH_FIDELITY_LAYERS = ["2048", "logits_unbiased"]  # pool3 and IS logits (fc without bias)


def torch_fidelity_cache_path() -> Path:
    """Where torch-fidelity caches its download: `$TORCH_HOME/hub/checkpoints/<file>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE_NAME


def resolve_inception_weights(weights_path: str | os.PathLike | None) -> Path:
    """Find the Inception weights: configured path, else `$SSG_EVAL_INCEPTION`, else the cache.

    Args:
        weights_path: `metrics.inception_weights`; None means "use the env var or the cache".

    Returns:
        The existing weights file.

    Raises:
        FileNotFoundError: one message naming every place that was checked and how to fix it.
    """
    checked: list[str] = []
    if weights_path is None and os.environ.get(WEIGHTS_ENV):
        weights_path = os.environ[WEIGHTS_ENV]
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        checked.append(f"{WEIGHTS_KEY}={str(weights_path)!r} (no such file)")
    else:
        cache = torch_fidelity_cache_path()
        if cache.is_file():
            return cache
        checked.append(f"{WEIGHTS_KEY}=null and ${WEIGHTS_ENV} unset")
        checked.append(f"torch-fidelity cache {cache} (no such file)")
    raise FileNotFoundError(
        f"Inception weights {WEIGHTS_FILE_NAME} not found; checked: {'; '.join(checked)}. "
        f"Nothing is downloaded at run time: copy the file (torch-fidelity v0.2.0 release asset "
        f"{WEIGHTS_FILE_NAME}) to a local path and set {WEIGHTS_KEY}=<path> or "
        f"{WEIGHTS_ENV}=<path>, or place it at {torch_fidelity_cache_path()}"
    )


def inception_weights_sha256(weights_path: str | os.PathLike | None) -> str:
    """Hex sha256 of the resolved weights file (memoised on path, size and mtime).

    Raises:
        FileNotFoundError: as `resolve_inception_weights`.
    """
    return sha256_file(resolve_inception_weights(weights_path))


class _Skeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's class with weight loading disabled, used only to read its key layout."""

    def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: D102
        return None


def inception_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key -> (shape, dtype) of torch-fidelity's Inception state dict, built on the meta device.

    The real class always loads weights in `__init__`; a private subclass skips that load and
    the meta device allocates nothing, so no global torch state is touched.
    """
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        skeleton = _Skeleton(EXTRACTOR_NAME, ["2048"], feature_extractor_weights_path=empty)
    return {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}


def make_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a random-weight state dict in torch-fidelity's exact key layout (tests, smoke runs).

    He-normal convolutions, BatchNorm with positive running variances near 1 and a small fc
    layer keep every activation finite and the logits moderate (IS well defined). The file loads
    strictly via `FeatureExtractorInceptionV3(..., feature_extractor_weights_path=path)`.

    Args:
        path: destination `.pth` (written atomically).
        seed: generator seed; the same seed gives byte-identical tensors.

    Returns:
        The hex sha256 of the written file.
    """
    gen = torch.Generator().manual_seed(int(seed))
    state: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in inception_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=dtype)
        elif key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            state[key] = 0.8 + 0.4 * torch.rand(shape, generator=gen)
        elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith("bn.running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)  # in [0.5, 1.5): positive
        elif key == "fc.weight":
            state[key] = torch.randn(shape, generator=gen) * (4.0 / shape[1]) ** 0.5
        elif key == "fc.bias":
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        else:
            raise RuntimeError(f"unexpected key {key} in torch-fidelity's Inception layout")
    buffer = (
        io.BytesIO()
    )  # not the file name: torch.save embeds it, the bytes must not depend on it
    torch.save(state, buffer)
    return sha256_file(atomic_write_bytes(path, buffer.getvalue()))


def check_inception_state_dict(path: Path) -> None:
    """Raise ValueError unless `path` is a loadable state dict with torch-fidelity's keys/shapes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"Inception weights {path} are not a loadable torch state dict "
            f"({type(err).__name__}: {err}); a truncated download fails this way. Replace the file "
            f"with a complete copy of {WEIGHTS_FILE_NAME} ({WEIGHTS_KEY} / ${WEIGHTS_ENV})"
        ) from err
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"Inception weights {path} do not hold a state dict of tensors")
    layout = inception_layout()
    missing = [k for k in layout if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in layout]
    if missing or unexpected:
        raise ValueError(
            f"Inception weights {path} do not match torch-fidelity's {EXTRACTOR_NAME} layout: "
            f"first missing keys {missing[:5]}, first unexpected keys {unexpected[:5]}"
        )
    for key, (shape, _) in layout.items():
        if key in state and tuple(state[key].shape) != shape:
            raise ValueError(
                f"Inception weights {path}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {shape}"
            )


class InceptionFeatures(nn.Module):
    """torch-fidelity Inception plus the sFID tap; one forward pass gives all three features.

    Attributes:
        network: the wrapped `FeatureExtractorInceptionV3` (layers `2048`, `logits_unbiased`).
        weights_path: resolved weights file.
        weights_sha256: hex sha256 of that file.
    """

    def __init__(self, network: FeatureExtractorInceptionV3, weights_path: Path, sha256: str):
        super().__init__()
        self.network = network
        self.weights_path = weights_path
        self.weights_sha256 = sha256
        self._tap = SpatialTap(network)

    def forward(self, images_BCHW: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of one batch.

        Args:
            images_BCHW: (B, 3, H, W) uint8 on the model's device; any H, W (resized to 299).

        Returns:
            `pool` (B, 2048), `logits` (B, 1008, unbiased), `spatial` (B, 2023), all float32.
        """
        with self._tap.capture() as spatial:
            pool, logits = self.network(images_BCHW)
        return {"pool": pool, "logits": logits, "spatial": spatial[0]}


def build_inception(
    weights_path: str | os.PathLike | None, device: torch.device | str
) -> nn.Module:
    """Load torch-fidelity's `inception-v3-compat` from local weights, in eval mode on `device`.

    Args:
        weights_path: `metrics.inception_weights`; None falls back to `$SSG_EVAL_INCEPTION`, then
            to torch-fidelity's cache file. Never downloads.
        device: where the network runs.

    Returns:
        An `InceptionFeatures` module (float32 internals, gradients off).

    Raises:
        FileNotFoundError: no weights file (one message: where to put it).
        ValueError: the file is not a loadable state dict in torch-fidelity's layout.
    """
    path = resolve_inception_weights(weights_path)
    check_inception_state_dict(path)
    sha = inception_weights_sha256(path)
    if sha.startswith(OFFICIAL_SHA256_PREFIX):
        log.info("Inception weights %s (sha256 %s, official torch-fidelity file)", path, sha)
    else:
        log.warning(
            "Inception weights %s (sha256 %s) are not the torch-fidelity release file %s: "
            "numbers are not comparable with ADM (fine for smoke/test runs)",
            path, sha, WEIGHTS_FILE_NAME,
        )  # fmt: skip
    network = FeatureExtractorInceptionV3(
        EXTRACTOR_NAME,
        list(TORCH_FIDELITY_LAYERS),
        feature_extractor_weights_path=str(path),
        feature_extractor_internal_dtype="float32",
    )
    model = InceptionFeatures(network, path, sha)
    return model.to(torch.device(device)).eval()

"""A run's identity: the config fields that change its pixels, with checkpoints by content.

The identity is a flat `{dotted key: value}` dict: the active processors and their parameters,
the sampler fields that change pixels, the runtime precision switches, the model architecture,
and every checkpoint (`*_ckpt`, anywhere in the config) as its sha256, never its path. Its hash
(`ssg_eval.runs.identity.identity_hash`) names the run's content. This module reads checkpoint
bytes (to hash them) and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssg_eval.guidance import active_guidance
from ssg_eval.runs.identity import UNAVAILABLE, resolved_config
from ssg_eval.utils.hashing import sha256_file

__all__ = ["IDENTITY_NODES", "NON_IDENTITY_KEYS", "identity_of"]

# Top-level config nodes that can change a run's pixels; every other node (paths, metrics,
# report, launch, run_name, experiment_name, dry_run, overwrite, ...) is not identity.
IDENTITY_NODES = ("model", "guidance", "sampler", "runtime")
# Keys inside those nodes that never change the pixels.
NON_IDENTITY_KEYS = (
    "model.name",  # a label; the architecture and weights are the identity
    "model.label",
    "model.params_quoted",
    "guidance.name",
    "guidance.autoguidance.guide.name",  # a label; the guide's checkpoint and shape are identity
    "sampler.batch_size",  # per-sample generators and chunk-aligned decoding
    "sampler.save_samples_npz",  # an export of the same shards
    "runtime.num_threads",
    "runtime.dist_backend",
    "runtime.measure_latency",
    "runtime.latency_batch_size",
    "runtime.latency_repeats",
    "runtime.overlap_decode",  # when the same kernels run, not what they compute
)


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = node


def _checkpoint(key: str, path: Any, require: bool) -> str | None:
    if path is None:
        return None  # deterministic name-derived weights (tiny/test models)
    file = Path(str(path)).expanduser()
    if not file.is_file():
        if not require:
            return UNAVAILABLE
        raise FileNotFoundError(
            f"{key}: checkpoint {file} does not exist; put the file there or override "
            f"{key}=<path> (a run is identified by the checkpoint's sha256, not its path)"
        )
    return "sha256:" + sha256_file(file)


def identity_of(cfg: Any, *, require_checkpoints: bool = True) -> dict[str, Any]:
    """The run identity of a composed config as a flat `{dotted key: value}` dict.

    Rules: nodes outside `IDENTITY_NODES` and keys in `NON_IDENTITY_KEYS` are left out;
    `sampler.num_samples` is left out with `sampler.rng=per_sample` (sample i does not depend
    on N, so a run grows in place); only the processors in `guidance.order` count; every
    `*_ckpt` value becomes `sha256:<hex>` (None stays None); `model.init_seed` is left out when
    every model checkpoint is given (it only seeds random weights).

    Args:
        cfg: the composed config (DictConfig, dataclass or resolved dict).
        require_checkpoints: raise on a missing checkpoint (sampling); otherwise its value is
            `UNAVAILABLE` and `identity_diff` skips it (features/metrics elsewhere).

    Raises:
        FileNotFoundError: a configured checkpoint is missing (names the key and the fix).
    """
    resolved = resolved_config(cfg)
    nodes = {name: resolved.get(name) for name in IDENTITY_NODES if name in resolved}
    if isinstance(nodes.get("guidance"), dict) and "order" in nodes["guidance"]:
        # only the processors in `guidance.order` belong to the identity, in that order
        active = active_guidance(nodes["guidance"])
        nodes["guidance"] = {"order": list(active), **active}
    flat: dict[str, Any] = {}
    _flatten(nodes, "", flat)
    for key in NON_IDENTITY_KEYS:
        flat.pop(key, None)
    # A checkpoint changes the pixels wherever it is configured (e.g. a guide model's node).
    everything: dict[str, Any] = {}
    _flatten({k: v for k, v in resolved.items() if k not in IDENTITY_NODES}, "", everything)
    flat.update({k: v for k, v in everything.items() if k.endswith("_ckpt")})
    if flat.get("sampler.rng") == "per_sample":
        flat.pop("sampler.num_samples", None)
    for key in [k for k in flat if k.endswith("_ckpt")]:
        flat[key] = _checkpoint(key, flat[key], require_checkpoints)
    model_ckpts = [v for k, v in flat.items() if k.startswith("model.") and k.endswith("_ckpt")]
    if model_ckpts and all(v is not None for v in model_ckpts):
        flat.pop("model.init_seed", None)
    return dict(sorted(flat.items()))

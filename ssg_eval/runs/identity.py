"""A run's identity as data: its canonical hash, the wording of a difference, the resolved config.

The identity itself (which config keys change a run's pixels) is decided by the sampler
(`ssg_eval.sampling.identity`); this module only hashes, compares and words identities, and it
reads no files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import OmegaConf

__all__ = ["UNAVAILABLE", "identity_diff", "identity_hash", "resolved_config"]

# A checkpoint that the current command cannot read (features/metrics on another machine).
UNAVAILABLE = "unavailable"


def resolved_config(cfg: Any) -> dict[str, Any]:
    """The config as a plain, fully resolved dict (what the manifest stores)."""
    if isinstance(cfg, dict):
        return cfg
    node = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def identity_hash(identity: dict[str, Any]) -> str:
    """First 16 hex of the sha256 of the identity's canonical JSON."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    if isinstance(value, str) and value.startswith("sha256:"):
        text = value[:19]  # sha256: + 12 hex
    return text


def identity_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Lines `key: the run has X, this command asks Y` for every differing key.

    Keys whose wanted value is `UNAVAILABLE` (a checkpoint this command cannot read) are skipped.
    """
    lines = []
    for key in sorted(set(stored) | set(wanted)):
        have, want = stored.get(key, "<absent>"), wanted.get(key, "<absent>")
        if want == UNAVAILABLE or have == want:
            continue
        lines.append(f"{key}: the run has {_short(have)}, this command asks {_short(want)}")
    return lines

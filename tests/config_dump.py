"""Compose every experiment, model, guidance and group option of a conf/ folder and dump them.

Run as a script with the `ssg_eval` of the tree under test first on `sys.path` (it imports only
`ssg_eval.config` and `ssg_eval.tune.schema`, which register the schemas), so the same code dumps
an old commit's tree (extracted with `git archive`) and the working tree; the test compares the
two dumps. `python tests/config_dump.py CONF_DIR OUT.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# A model for the cells whose defaults name none (the root's `model: ???`).
MODEL = "var_d16"
GROUPS = ("guidance", "sampler", "runtime", "metrics", "paths")


def _names(conf: Path, group: str) -> list[str]:
    root = conf / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def cells(conf: Path) -> dict[str, tuple[str, list[str]]]:
    """`{label: (config name, overrides)}` of every cell to compose."""
    out: dict[str, tuple[str, list[str]]] = {}
    for name in _names(conf, "experiment"):
        out[f"experiment={name}"] = ("config", [f"experiment={name}"])
    for name in _names(conf, "model"):
        out[f"model={name}"] = ("config", [f"model={name}"])
    for group in GROUPS:
        for name in _names(conf, group):
            if not name.startswith("base_"):
                out[f"{group}={name}"] = ("config", [f"model={MODEL}", f"{group}={name}"])
    out["report"] = ("report", [])
    out["report experiment=beta_sweep"] = ("report", ["experiment=beta_sweep"])
    for name in _names(conf, "tune"):
        out[f"tune={name}"] = ("tune", [f"target={MODEL}", f"tune={name}"])
    return out


def dump(conf: Path) -> dict[str, object]:
    """`{label: composed config as a plain, unresolved dict}` (or the composition error)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import ssg_eval.config  # noqa: F401  (registers base_* schemas)
    import ssg_eval.tune.schema  # noqa: F401  (registers base_tune)

    result: dict[str, object] = {}
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base="1.3"):
        for label, (config_name, overrides) in cells(conf).items():
            try:
                cfg = compose(config_name=config_name, overrides=overrides)
            except Exception as err:  # noqa: BLE001  (recorded: both trees must fail alike)
                result[label] = f"<error {type(err).__name__}>"
                continue
            result[label] = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    return result


if __name__ == "__main__":
    conf_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.write_text(json.dumps(dump(conf_dir), sort_keys=True, indent=1, default=str))

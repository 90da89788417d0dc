"""`make table1 GUIDANCE=tuned`: SSG cells switch to the tuned guidance file, baselines do not."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ssg_eval.stages.tuned import tuned_cell_overrides
from tests.conftest import CONF_DIR

SSG = ["experiment=table1", "model=var_d16", "guidance=cfg_ssg"]


def test_ssg_cells_use_the_tuned_file_and_baselines_stay(tmp_path):
    (tmp_path / "guidance").mkdir()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # a tuned file as make tune writes it: the winner's resolved guidance node
        winner = compose(config_name="config", overrides=[
            "experiment=table1", "model=var_d16", "guidance=cfg_ssg", "guidance.ssg.beta=1.25",
            "guidance.ssg.placement=per_branch"])  # fmt: skip
        node = OmegaConf.to_container(winner.guidance, resolve=True)
        text = OmegaConf.to_yaml({"defaults": ["base_guidance", "_self_"], **node})
        (tmp_path / "guidance" / "tuned_var_d16.yaml").write_text("# provenance\n" + text)
        base = compose(config_name="config", overrides=["experiment=table1", "model=var_d16"])
        ssg = compose(config_name="config", overrides=[*SSG])
        assert tuned_cell_overrides(base, tmp_path) == []
        extra = tuned_cell_overrides(ssg, tmp_path)
        tuned = compose(config_name="config", overrides=[*SSG, *extra])
    assert tuned.guidance.ssg.beta == 1.25 and tuned.guidance.ssg.placement == "per_branch"
    assert tuned.run_name == "var_d16_cfg_ssg_s0_tuned"
    with pytest.raises(FileNotFoundError, match="tuned_var_d16.yaml is missing"):
        tuned_cell_overrides(ssg, tmp_path / "elsewhere")

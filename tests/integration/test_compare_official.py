"""`scripts/compare_official.py` against a stand-in of the official repository.

The stand-in's `build_vae_var` returns training-mode modules (like the official builder) whose
sampler changes its samples in training mode, as the official DropPath does; the script must put
the official side in eval mode, and read the architecture from any checkpoint pair.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ssg_eval.models.load import build_model
from tests.unit.test_models import load_model_config

REPO = Path(__file__).resolve().parents[2]

_FAKE_INIT = "from models.var import build_vae_var  # noqa: F401\n"
_FAKE_VAR = """
import sys
sys.path.insert(0, {repo!r})
import torch
from ssg_eval.guidance.cfg import CfgRamp
from ssg_eval.models.var import VAR
from ssg_eval.models.vqvae import VQVAE
from ssg_eval.sampling.decode import decode_images, latents_from_tokens
from ssg_eval.sampling.loop import sample_scales


def sample_with_top_k_top_p_(tokens_Bl, **kwargs):  # the hook the script records through
    return tokens_Bl.unsqueeze(-1)


class OfficialLikeVAR(VAR):
    def autoregressive_infer_cfg(self, B, label_B, g_seed, cfg, top_k, top_p, more_smooth):
        # DropPath stand-in: in training mode the blocks are perturbed (here: a stronger CFG)
        scale = cfg * (3.0 if self.training else 1.0)
        labels = torch.tensor(label_B) if not isinstance(label_B, torch.Tensor) else label_B
        ramp = CfgRamp(scale=scale, schedule="linear_ramp", num_scales=len(self.patch_nums))
        sample = sample_scales(self, self.vae_ref, labels, torch.Generator().manual_seed(g_seed),
                               [ramp], top_k=top_k, top_p=top_p, more_smooth=more_smooth)
        for tokens_Bl in sample.tokens:
            sys.modules[__name__].sample_with_top_k_top_p_(tokens_Bl)
        return decode_images(self.vae_ref, latents_from_tokens(self.vae_ref, sample.tokens,
                                                          sample.embeddings))


def build_vae_var(device, patch_nums, V, Cvae, ch, share_quant_resi, num_classes, depth,
                  shared_aln, attn_l2_norm, flash_if_available, fused_if_available):
    vae = VQVAE(vocab_size=V, cvae=Cvae, ch=ch, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2,
                patch_nums=list(patch_nums), quant_resi=0.5, share_quant_resi=share_quant_resi)
    var = OfficialLikeVAR(depth=depth, patch_nums=list(patch_nums), vocab_size=V, cvae=Cvae,
                          num_classes=num_classes, shared_aln=shared_aln,
                          attn_l2_norm=attn_l2_norm, mlp_ratio=4.0, norm_eps=1e-6)
    var.__dict__["vae_ref"] = vae  # a plain attribute: not part of the state dict
    return vae, var
"""


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_official", REPO / "scripts" /
                                                  "compare_official.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def official(tmp_path):
    root = tmp_path / "official"
    (root / "models").mkdir(parents=True)
    (root / "models" / "__init__.py").write_text(_FAKE_INIT)
    (root / "models" / "var.py").write_text(_FAKE_VAR.format(repo=str(REPO)))
    return root


def test_tiny_oracle_matches_with_the_official_side_in_eval_mode(script, official, capsys):
    code = script.main(["--official", str(official), "--tiny-oracle", "--labels", "0", "3",
                        "--threads", "1", "--top-k", "900"])  # fmt: skip
    report = capsys.readouterr().out
    assert code == 0, report
    assert '"images_bitwise_equal": true' in report


@pytest.fixture
def checkpoints(tmp_path):
    var, vae, _ = build_model(load_model_config("tiny_oracle"))
    torch.save(var.state_dict(), tmp_path / "var.pth")
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    return tmp_path / "var.pth", tmp_path / "vae.pth"


def test_architecture_is_read_from_any_checkpoint_pair(script, checkpoints):
    arch = script.architecture_from_checkpoints(*checkpoints)
    assert arch == dict(depth=2, patch_nums=[1, 2, 3, 4], num_classes=10, shared_aln=False,
                        vocab_size=4096, cvae=32, vae_ch=32)  # fmt: skip


@pytest.mark.slow  # a second pair of sampling processes; the eval-mode test stays in make test
def test_checkpoint_pair_and_more_smooth_match(script, official, checkpoints, capsys):
    var_path, vae_path = checkpoints
    code = script.main(["--official", str(official), "--var-ckpt", str(var_path),
                        "--vae-ckpt", str(vae_path), "--labels", "1", "2", "--more-smooth",
                        "--threads", "1", "--seed", "5"])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert sys.modules.get("models") is None  # the official code never ran in this process

"""Compare ssg_eval's sampler with the official VAR `autoregressive_infer_cfg`, token by token.

The official code (a clone of FoundationVision/VAR) runs in a separate process on the CPU with CUDA
hidden, flash-attn/xformers blocked and `huggingface_hub` stubbed if missing, its models in eval
mode (DropPath off); ssg_eval runs in this process with the same checkpoints, labels, seed and
settings (single generator, CFG ramp, optionally more_smooth). The architecture is read from the
checkpoints' keys and shapes (any depth, scale schedule, class count, VAE width) unless given by
flags. Per-scale tokens must match exactly; images are compared by max |diff| (docs/EQUIVALENCE.md).

    python scripts/compare_official.py --official ~/src/VAR \\
        --var-ckpt checkpoints/var_d16.pth --vae-ckpt checkpoints/vae_ch160v4096z32.pth \\
        --labels 207 360 387 974 --seed 0 --cfg 1.5 --top-k 900 --top-p 0.96
    python scripts/compare_official.py --official ~/src/VAR --tiny-oracle   # no weights needed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

# Runs inside the official repository; argv[1] = JSON settings, argv[2] = output file.
OFFICIAL_SCRIPT = r"""
import hashlib, json, math, sys, types
args = json.loads(sys.argv[1])
sys.path.insert(0, args["official"])
for name in ("flash_attn", "flash_attn.ops", "flash_attn.ops.layer_norm",
             "flash_attn.ops.fused_dense", "xformers", "xformers.ops"):
    sys.modules[name] = None  # import fails -> the fp32 SDPA reference path
try:
    import huggingface_hub  # noqa: F401
except ImportError:
    hub = types.ModuleType("huggingface_hub")
    hub.PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
    sys.modules["huggingface_hub"] = hub
import torch
torch.set_num_threads(args["threads"])
from models import build_vae_var
import models.var as official_var

vae, var = build_vae_var(
    device="cpu", patch_nums=tuple(args["patch_nums"]), V=args["vocab_size"], Cvae=args["cvae"],
    ch=args["vae_ch"], share_quant_resi=4, num_classes=args["num_classes"], depth=args["depth"],
    shared_aln=args["shared_aln"], attn_l2_norm=True, flash_if_available=False,
    fused_if_available=False,
)
if args["tiny_oracle"]:  # the CPU oracle of docs/VAR.md: weights from parameter names
    with torch.no_grad():
        for module in (var, vae):
            for name, p in module.named_parameters():
                seed = int(hashlib.sha256(f"1234:{name}".encode()).hexdigest()[:8], 16)
                v = torch.randn(p.shape, generator=torch.Generator().manual_seed(seed))
                v.mul_(0.5 if name == "quantize.embedding.weight" else 0.02)
                if p.ndim == 1 and "norm" in name and name.endswith(".weight"):
                    v.add_(1)
                if name.endswith("scale_mul_1H11"):
                    v.add_(math.log(4))
                p.copy_(v)
else:
    vae.load_state_dict(torch.load(args["vae_ckpt"], map_location="cpu"), strict=True)
    var.load_state_dict(torch.load(args["var_ckpt"], map_location="cpu"), strict=True)
vae.eval()  # the builder returns training-mode modules: DropPath would perturb every block
var.eval()

tokens = []
draw = official_var.sample_with_top_k_top_p_
def recording_draw(logits_BlV, **kwargs):
    idx = draw(logits_BlV, **kwargs)
    tokens.append(idx[:, :, 0].clone())
    return idx
official_var.sample_with_top_k_top_p_ = recording_draw

labels = args["labels"]
label_arg = None if labels is None else labels if isinstance(labels, int) else torch.tensor(labels)
images = var.autoregressive_infer_cfg(
    B=args["batch"], label_B=label_arg, g_seed=args["seed"], cfg=args["cfg"],
    top_k=args["top_k"], top_p=args["top_p"], more_smooth=args["more_smooth"],
)
torch.save({"tokens": tokens, "images": images}, sys.argv[2])
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="clone of FoundationVision/VAR")
    parser.add_argument("--official-python", default=sys.executable, help="its interpreter")
    parser.add_argument("--tiny-oracle", action="store_true", help="the CPU oracle (docs/VAR.md)")
    parser.add_argument("--depth", type=int, help="default: read from --var-ckpt")
    parser.add_argument("--patch-nums", type=int, nargs="+", help="default: from --var-ckpt")
    parser.add_argument("--num-classes", type=int, help="default: from --var-ckpt")
    parser.add_argument("--shared-aln", choices=["true", "false"], help="default: from --var-ckpt")
    parser.add_argument("--vae-ch", type=int, help="default: from --vae-ckpt")
    parser.add_argument("--more-smooth", action="store_true", help="VAR's Gumbel-softmax path")
    parser.add_argument("--var-ckpt")
    parser.add_argument("--vae-ckpt")
    parser.add_argument(
        "--labels",
        type=int,
        nargs="*",
        default=None,
        help="class labels; omitted = official random draw; one -1 = unconditional",
    )
    parser.add_argument("--batch", type=int, default=4, help="batch size when --labels is omitted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cfg", type=float, default=1.5)
    parser.add_argument("--top-k", type=int, default=900)
    parser.add_argument("--top-p", type=float, default=0.96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-atol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if not args.tiny_oracle and not (args.var_ckpt and args.vae_ckpt):
        parser.error("--var-ckpt and --vae-ckpt are required unless --tiny-oracle is given")
    return args


def architecture_from_checkpoints(var_ckpt: str, vae_ckpt: str) -> dict:
    """depth, patch_nums, num_classes, shared_aln, vocab_size, cvae, vae_ch from the state dicts.

    depth = number of `blocks.<i>` prefixes; patch_nums from the `lvl_1L` buffer (scale k holds
    pn_k² positions); num_classes = rows of `class_emb.weight` − 1; shared AdaLN when
    `shared_ada_lin.*` exists; vocab and codebook width from `quantize.embedding.weight`; the VAE
    width from `encoder.conv_in.weight`.
    """
    var_sd = torch.load(var_ckpt, map_location="cpu", weights_only=True)
    vae_sd = torch.load(vae_ckpt, map_location="cpu", weights_only=True)
    blocks = {int(k.split(".")[1]) for k in var_sd if k.startswith("blocks.")}
    levels = var_sd["lvl_1L"].view(-1)
    counts = [int((levels == k).sum()) for k in range(int(levels.max()) + 1)]
    vocab, cvae = vae_sd["quantize.embedding.weight"].shape
    return dict(
        depth=max(blocks) + 1,
        patch_nums=[math.isqrt(c) for c in counts],
        num_classes=int(var_sd["class_emb.weight"].shape[0]) - 1,
        shared_aln=any(k.startswith("shared_ada_lin.") for k in var_sd),
        vocab_size=int(vocab),
        cvae=int(cvae),
        vae_ch=int(vae_sd["encoder.conv_in.weight"].shape[0]),
    )


def settings(args: argparse.Namespace) -> dict:
    """The model and sampling settings shared by both sides (flags override the checkpoints)."""
    if args.tiny_oracle:
        model = dict(depth=2, patch_nums=[1, 2, 3, 4], num_classes=10, vae_ch=32, shared_aln=False,
                     vocab_size=4096, cvae=32)  # fmt: skip
    else:
        model = architecture_from_checkpoints(args.var_ckpt, args.vae_ckpt)
    shared = None if args.shared_aln is None else args.shared_aln == "true"
    flags = dict(depth=args.depth, patch_nums=args.patch_nums, num_classes=args.num_classes,
                 vae_ch=args.vae_ch, shared_aln=shared)  # fmt: skip
    model.update({k: v for k, v in flags.items() if v is not None})
    labels = args.labels or None
    if labels is not None and len(labels) == 1 and labels[0] < 0:
        labels = -1  # the official int form: every sample unconditional
    batch = args.batch if labels is None or labels == -1 else len(labels)
    return dict(
        model,
        official=str(Path(args.official).resolve()),
        tiny_oracle=args.tiny_oracle,
        var_ckpt=args.var_ckpt,
        vae_ckpt=args.vae_ckpt,
        labels=labels,
        batch=batch,
        seed=args.seed,
        cfg=args.cfg,
        top_k=args.top_k,
        top_p=args.top_p,
        more_smooth=args.more_smooth,
        threads=args.threads,
    )


def run_official(args: argparse.Namespace, cfg: dict, out: Path) -> dict:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # the official generator lands on the CPU
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [args.official_python, "-c", OFFICIAL_SCRIPT, json.dumps(cfg), str(out)],
        cwd=cfg["official"],
        env=env,
        check=True,
    )
    return torch.load(out, map_location="cpu", weights_only=True)


def run_ours(cfg: dict) -> dict:
    from ssg_eval.config import ModelConfig
    from ssg_eval.guidance.cfg import CfgRamp
    from ssg_eval.models.load import build_model
    from ssg_eval.sampling.decode import decode_images, latents_from_tokens
    from ssg_eval.sampling.draw import official_labels
    from ssg_eval.sampling.loop import sample_scales

    model_cfg = ModelConfig(
        name="compare",
        depth=cfg["depth"],
        patch_nums=cfg["patch_nums"],
        vocab_size=cfg["vocab_size"],
        cvae=cfg["cvae"],
        num_classes=cfg["num_classes"],
        shared_aln=cfg["shared_aln"],
        vae_ch=cfg["vae_ch"],
        var_ckpt=cfg["var_ckpt"],
        vae_ckpt=cfg["vae_ckpt"],
        init_seed=1234,
    )
    var, vae, _ = build_model(model_cfg, "cpu")
    generator = torch.Generator(device="cpu").manual_seed(cfg["seed"])
    if cfg["labels"] is None:
        labels_B = official_labels(cfg["batch"], cfg["num_classes"], generator)
    elif cfg["labels"] == -1:
        labels_B = torch.full((cfg["batch"],), cfg["num_classes"])
    else:
        labels_B = torch.tensor(cfg["labels"])
    ramp = CfgRamp(scale=cfg["cfg"], schedule="linear_ramp", num_scales=len(cfg["patch_nums"]))
    sample = sample_scales(var, vae, labels_B, generator, [ramp], top_k=cfg["top_k"],
                           top_p=cfg["top_p"], more_smooth=cfg["more_smooth"])  # fmt: skip
    images = decode_images(vae, latents_from_tokens(vae, sample.tokens, sample.embeddings))
    return {"tokens": sample.tokens, "images": images, "labels": labels_B.tolist()}


def compare(official: dict, ours: dict, image_atol: float) -> dict:
    per_scale = [
        int((a != b).sum()) if a.shape == b.shape else -1
        for a, b in zip(official["tokens"], ours["tokens"], strict=True)
    ]
    max_diff = float((official["images"] - ours["images"]).abs().max())
    ok = all(n == 0 for n in per_scale) and max_diff <= image_atol
    return {
        "ok": ok,
        "labels": ours["labels"],
        "token_mismatches_per_scale": per_scale,
        "first_bad_scale": next((si for si, n in enumerate(per_scale) if n != 0), None),
        "images_bitwise_equal": bool(torch.equal(official["images"], ours["images"])),
        "images_max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = settings(args)
    with tempfile.TemporaryDirectory() as tmp:
        official = run_official(args, cfg, Path(tmp) / "official.pt")
    report = compare(official, run_ours(cfg), args.image_atol)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

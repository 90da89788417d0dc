"""Inception feature extraction: ours (`extract_features`, fast path) vs torch-fidelity's own path.

Both sides use the same random-weight `inception-v3-compat`, the same uint8 256x256 images and the
same batch. torch-fidelity's path is its own functions: `create_feature_extractor` +
`get_featuresdict_from_dataset` (its DataLoader loop, `save_cpu_ram=True` = no worker processes),
with a forward hook on `Mixed_6d.branch1x1` so it yields the sFID tap as well. Passes alternate
(ours, theirs, theirs, ours, ...) after one warm-up batch each; medians are reported with the
agreement of every output (max |ours - theirs| / max |theirs|) and the peak RSS of a child process
streaming N images from an npz at two sizes (flat in N: peak minus the feature arrays). Appends
one JSON line to results/bench/features.jsonl. Never imported by `ssg_eval`.

    python benchmarks/bench_features.py --quick          # CI plumbing, ~30 s on 2 cores
    python benchmarks/bench_features.py                  # 64 images x 5 alternating repeats
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
QUICK = {"images": 2, "repeats": 1, "batch": 2, "rss_sizes": [2, 4]}
FULL = {"images": 64, "repeats": 5, "batch": None, "rss_sizes": [64, 256]}
OUTPUTS = ("pool", "logits", "spatial")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_images(num: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num, 256, 256, 3), dtype=np.uint8)


class TheirPath:
    """torch-fidelity's extractor and dataset loop, plus a hook that keeps the sFID tap."""

    def __init__(self, weights: Path) -> None:
        from torch_fidelity.utils import create_feature_extractor

        self.net = create_feature_extractor(
            "inception-v3-compat", ["2048", "logits_unbiased"], cuda=False,
            feature_extractor_weights_path=str(weights), verbose=False,
        )  # fmt: skip
        self.taps: list = []
        layer = self.net.get_submodule("Mixed_6d.branch1x1")
        layer.register_forward_hook(lambda module, inputs, out: self.taps.append(out[:, :7]))

    def __call__(self, images: np.ndarray, batch: int) -> dict[str, np.ndarray]:
        import torch
        from torch_fidelity.utils import get_featuresdict_from_dataset

        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return len(images)

            def __getitem__(self, i):
                return torch.from_numpy(images[i]).permute(2, 0, 1)  # uint8 CHW

        self.taps = []
        out = get_featuresdict_from_dataset(Images(), self.net, batch, False, True, False)
        spatial = torch.cat(self.taps).permute(0, 2, 3, 1).reshape(len(images), -1)
        return {"pool": out["2048"].numpy(), "logits": out["logits_unbiased"].numpy(),
                "spatial": spatial.numpy()}  # fmt: skip


def agreement(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Max |ours - theirs| / max |theirs| per output."""
    return {
        key: float(np.abs(ours[key] - theirs[key]).max() / np.abs(theirs[key]).max())
        for key in OUTPUTS
    }


def child_rss(npz_path: str, weights: str, num_images: int, batch: int) -> dict[str, Any]:
    """Runs in a fresh process: stream the npz through the fast path; peak RSS vs features."""
    import torch

    from ssg_eval.features.extract import extract_features, iter_npz_images
    from ssg_eval.features.inception import build_inception

    model = build_inception(weights, "cpu")
    probe = make_images(1)
    extract_features([probe], model, batch_size=1, device="cpu", progress=False)
    before = _maxrss_mb()
    feats = extract_features(iter_npz_images(npz_path, batch), model, batch_size=batch,
                             device="cpu", progress=False, num_images=num_images)  # fmt: skip
    feature_mb = sum(v.nbytes for v in feats.values()) / 2**20
    peak = _maxrss_mb()
    return {"images": num_images, "peak_rss_mb": peak, "rss_after_warmup_mb": before,
            "features_mb": feature_mb, "peak_minus_features_mb": peak - feature_mb,
            "threads": torch.get_num_threads()}  # fmt: skip


def bench_rss(weights: Path, sizes: list[int], batch: int, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for num in sizes:
        path = tmp / f"images_{num}.npz"
        np.savez(path, arr_0=make_images(num, seed=num))
        cmd = [sys.executable, __file__, "--child-rss", str(path), "--weights", str(weights),
               "--num", str(num), "--batch", str(batch)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        path.unlink()
    return rows


def bench_extraction(sizes: dict[str, Any]) -> dict[str, Any]:
    """Alternating timed passes of both paths; medians, ratio, agreement, RSS at two sizes."""
    import torch

    from ssg_eval.features.extract import device_batch_size, extract_features
    from ssg_eval.features.inception import build_inception, make_random_inception_weights

    batch = sizes["batch"] or device_batch_size("cpu")
    images = make_images(sizes["images"])
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random_inception.pth"
        make_random_inception_weights(weights)
        start = time.perf_counter()
        ours_model = build_inception(str(weights), "cpu")
        build = {"ours_s": time.perf_counter() - start}
        start = time.perf_counter()
        theirs_path = TheirPath(weights)
        build["theirs_s"] = time.perf_counter() - start

        def ours(data):
            return extract_features([data], ours_model, batch_size=batch, device="cpu",
                                    progress=False, num_images=len(data))  # fmt: skip

        def theirs(data):
            return theirs_path(data, batch)

        ours(images[:batch]), theirs(images[:batch])  # warm-up (oneDNN primitives, allocator)
        times: dict[str, list[float]] = {"ours": [], "theirs": []}
        outputs: dict[str, dict[str, np.ndarray]] = {}
        for repeat in range(sizes["repeats"]):
            order = ("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours")
            for name in order:
                run = ours if name == "ours" else theirs
                start = time.perf_counter()
                outputs[name] = run(images)
                times[name].append(time.perf_counter() - start)
        rss = bench_rss(weights, sizes["rss_sizes"], batch, Path(tmp))
    ours_s, theirs_s = float(np.median(times["ours"])), float(np.median(times["theirs"]))
    return {
        "bench": "extraction",
        "images": len(images), "size": 256, "batch_size": batch, "repeats": sizes["repeats"],
        "ours_img_s": len(images) / ours_s, "torch_fidelity_img_s": len(images) / theirs_s,
        "speedup": theirs_s / ours_s,
        "per_repeat_speedup": [t / o for o, t in zip(times["ours"], times["theirs"], strict=True)],
        "times_s": times, "build_s": build,
        "max_rel_diff": agreement(outputs["ours"], outputs["theirs"]),
        "rss": rss, "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
    }  # fmt: skip


def report(r: dict[str, Any]) -> str:
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in r["max_rel_diff"].items())
    rss = "; ".join(
        f"N={x['images']}: peak {x['peak_rss_mb']:.0f} MB, minus features "
        f"{x['peak_minus_features_mb']:.0f} MB" for x in r["rss"]
    )  # fmt: skip
    load = "/".join(f"{x:.1f}" for x in r["load_average"])
    return (
        f"inception extraction {r['images']} images 256px, batch {r['batch_size']}, "
        f"median of {r['repeats']} alternating passes: ours {r['ours_img_s']:.2f} img/s | "
        f"torch-fidelity {r['torch_fidelity_img_s']:.2f} img/s | x{r['speedup']:.2f}\n"
        f"  max rel diff (max|ours-theirs|/max|theirs|): {diffs}\n"
        f"  child RSS, ours streaming an npz: {rss}\n"
        f"  threads {r['threads']}, load average {load}"
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """CLI entry: one side-by-side run, printed and appended as a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI sizes (plumbing only)")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="default: the device's choice")
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=None)
    results = Path(os.environ.get("SSG_EVAL_RESULTS", REPO / "results"))
    parser.add_argument("--out", default=str(results / "bench" / "features.jsonl"))
    parser.add_argument("--child-rss", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--num", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_rss:
        print(json.dumps(child_rss(args.child_rss, args.weights, args.num, args.batch)))
        return []
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("images", "repeats", "batch", "rss_sizes"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    record = bench_extraction(sizes)
    print(report(record), flush=True)
    from ssg_eval.utils.provenance import device_description, git_state, library_versions

    record.update(quick=args.quick, device="cpu", device_info=device_description(),
                  versions=library_versions(), **git_state())  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    return [record]


if __name__ == "__main__":
    main()

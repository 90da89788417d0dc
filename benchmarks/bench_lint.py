"""Wall time of `ssg-lint` on a synthetic ADM-format file, and of the feature metrics at 50k.

Part 1 writes an uncompressed samples npz (default 50,000 × 256 × 256 × 3 uint8, 9.8 GB; 512
distinct smooth images, each copy stamped with its index so none repeats; balanced labels)
streaming it chunk by chunk, drops it from the page cache (posix_fadvise) so the first pass reads
from disk, then times `lint_file` cold and warm; the file is deleted afterwards. Part 2 times KID,
density/coverage, FD∞ and the per-class table on synthetic pool features (50,000 × 2048 samples,
10,000 × 2048 reference, 1,000 classes). Appends JSON lines to results/bench/lint.jsonl; never
imported by ssg_eval.

    python benchmarks/bench_lint.py                        # both parts at full size
    python benchmarks/bench_lint.py --part lint --num 10000 # a smaller file (disk or time short)
    python benchmarks/bench_lint.py --quick                 # 2,000 × 64 px and 2,000 features
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_metrics import make_features  # noqa: E402
from ssg_eval.smoke import synthetic_images  # noqa: E402


def write_samples(path: Path, num: int, size: int, classes: int) -> None:
    """Stream an uncompressed ADM npz: arr_0 (num, size, size, 3) uint8 and labels."""
    base = synthetic_images(512, size, seed=0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("arr_0.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": (num, size, size, 3)}
            np.lib.format.write_array_header_1_0(member, header)
            for start in range(0, num, 512):
                chunk = base[: min(512, num - start)].copy()
                index = np.arange(start, start + len(chunk), dtype=np.uint32)
                chunk[:, 0, :4, 0] = index.view(np.uint8).reshape(-1, 4)  # unique per image
                member.write(chunk.tobytes())
        with archive.open("labels.npy", "w") as member:
            np.lib.format.write_array(member, np.arange(num, dtype=np.int64) % classes)


def drop_cache(path: Path) -> bool:
    """Evict the file's pages (own file, no privileges needed); False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return True


def bench_lint(num: int, size: int, workdir: str | None) -> dict:
    from ssg_eval.lint.run import lint_file

    with tempfile.TemporaryDirectory(dir=workdir, prefix="bench_lint_") as tmp:
        path = Path(tmp) / "samples.npz"
        started = time.perf_counter()
        write_samples(path, num, size, classes=1000 if num >= 1000 else 10)
        write_s = time.perf_counter() - started
        cold = drop_cache(path)
        report = lint_file(path, expected_samples=num)
        first = report.seconds
        second = lint_file(path, expected_samples=num).seconds
        return {
            "part": "lint",
            "num": num,
            "size": size,
            "gbytes": path.stat().st_size / 1e9,
            "write_s": write_s,
            "lint_s_first": first,
            "first_from_disk": cold,
            "lint_s_second": second,
            "status": str(report.status),
            "findings": {f.check: str(f.status) for f in report.findings},
        }


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def bench_feature_metrics(num: int, num_ref: int, dim: int, classes: int) -> dict:
    from ssg_eval.metrics.density_coverage import density_coverage
    from ssg_eval.metrics.fd_inf import fd_infinity
    from ssg_eval.metrics.kid import kid
    from ssg_eval.metrics.per_class import per_class_table
    from ssg_eval.metrics.precision_recall import precision_membership
    from ssg_eval.metrics.stats import feature_statistics

    fake, real = make_features(num, dim, 0, 0.05), make_features(num_ref, dim, 1, 0.0)
    labels = np.arange(num) % classes
    mu, sigma = feature_statistics(real)
    times = {}
    _, times["kid_s"] = timed(kid, fake, real, subset_size=min(1000, num_ref))
    _, times["density_coverage_s"] = timed(density_coverage, real, fake)
    _, times["fd_inf_s"] = timed(fd_infinity, fake, mu, sigma)
    member, times["per_class_membership_s"] = timed(precision_membership, real, fake)
    _, times["per_class_table_s"] = timed(per_class_table, labels, member)
    return {
        "part": "feature_metrics",
        "num": num,
        "num_ref": num_ref,
        "dim": dim,
        "classes": classes,
        **times,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["lint", "features", "both"], default="both")
    parser.add_argument("--num", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workdir", default=None, help="where the temporary npz goes")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    num, size = (2000, 64) if args.quick else (args.num, args.size)
    records = []
    if args.part in ("lint", "both"):
        records.append(bench_lint(num, size, args.workdir))
    if args.part in ("features", "both"):
        records.append(bench_feature_metrics(num, min(10_000, num), 2048, min(1000, num // 2)))
    out = REPO / "results" / "bench" / "lint.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as handle:
        for record in records:
            record.update(threads=os.environ.get("OMP_NUM_THREADS"), time=time.time())
            handle.write(json.dumps(record) + "\n")
            print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

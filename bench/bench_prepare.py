"""Benchmark of ``imagenets prepare``: copy throughput against ``cp -r``, and linking the 919 train split.

    python bench/bench_prepare.py [--meta-dir DIR] [--files-per-class 800] [--workers 2] [--rounds 3]

Builds a fake ImageNet train tree (50 classes x N tiny JPEGs, >= 40,000 files) in a temporary folder
on this disk, warms the page cache, then alternately times ``cp -r`` and the prepare train step with
``--copy`` into fresh destinations (taking turns to go first; best and median of the rounds, each
run after a sync), and times linking a fake 919 train split
(919 classes, the 5 merged ones as folders of per-file links, 1,300 images per merged wnid).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fake ImageNet lives with the tests

from fake_imagenet import build_fake_imagenet  # noqa: E402
from imagenets.datapreparation.prepare import add_arguments, run  # noqa: E402
from imagenets.metadata import load_metadata  # noqa: E402
from imagenets.subsets import get_subset  # noqa: E402

MERGED_IMAGES = 1300


def prepare(meta_dir: str, imagenet: Path, dest: Path, mode: str, copy: bool, workers: int) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--imagenet-dir", str(imagenet), "--save-dir", str(dest), "--mode", mode,
            "--workers", str(workers), "--meta-dir", meta_dir, "--quiet"] + (["--copy"] if copy else [])
    if run(parser.parse_args(argv), steps=["train"]) != 0:
        raise SystemExit("prepare failed")


def timed(func: Callable[[], None]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def bench_copy(meta, meta_dir: str, work: Path, per_class: int, workers: int, rounds: int) -> None:
    imagenet = work / "imagenet50"
    start = time.perf_counter()
    fake = build_fake_imagenet(imagenet, meta, subsets=(50,), splits=("train",),
                               train_per_class=per_class, outside_classes=False)
    files = fake.num_files
    size = sum(f.stat().st_size for f in (imagenet / "train").glob("*/*")) / files
    print(f"fake tree: {files} files of ~{size:.0f} B in 50 class folders "
          f"(built in {time.perf_counter() - start:.1f} s)")
    subprocess.run(["cp", "-r", str(imagenet / "train"), str(work / "warm")], check=True)
    shutil.rmtree(work / "warm")
    cp_times: List[float] = []
    our_times: List[float] = []
    for i in range(rounds):
        cp_dest, our_dest = work / f"cp{i}", work / f"ours{i}"
        copiers = [(cp_times, lambda: subprocess.run(["cp", "-r", str(imagenet / "train"), str(cp_dest)],
                                                     check=True)),
                   (our_times, lambda: prepare(meta_dir, imagenet, our_dest, "50", True, workers))]
        for times, copier in copiers[::1 if i % 2 == 0 else -1]:  # each goes first every other round
            os.sync()  # flush earlier writes: their writeback would slow whoever runs next
            times.append(timed(copier))
        assert count_files(our_dest) == files, "the copy step missed files"
        shutil.rmtree(cp_dest)
        shutil.rmtree(our_dest)
    for label, times in (("cp -r", cp_times), (f"prepare train --copy --workers {workers}", our_times)):
        print(f"{label:<32}: best {files / min(times):6.0f} files/s, median "
              f"{files / statistics.median(times):6.0f} files/s (s: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"throughput ratio ours / cp -r: best {min(cp_times) / min(our_times):.2f}, median "
          f"{statistics.median(cp_times) / statistics.median(our_times):.2f} (target >= 0.8; "
          "planning included in ours)")


def bench_link(meta, meta_dir: str, work: Path) -> None:
    subset = get_subset(919)
    counts = {w: MERGED_IMAGES for pair in subset.merged.items() for w in pair}
    imagenet = work / "imagenet919"
    fake = build_fake_imagenet(imagenet, meta, subsets=(919,), splits=("train",), train_per_class=2,
                               train_counts=counts, outside_classes=False)
    dest = work / "link919"
    first = timed(lambda: prepare(meta_dir, imagenet, dest, "919", False, 2))
    again = timed(lambda: prepare(meta_dir, imagenet, dest, "919", False, 2))
    links = sum(1 for _ in (dest / "ImageNetS919" / "train").iterdir())
    print(f"link 919 train ({links} class entries, 5 merged folders of {2 * MERGED_IMAGES} file "
          f"links; {fake.num_files} source files): {first:.2f} s, rerun (nothing to do) {again:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meta-dir", default=os.environ.get("IMAGENETS_META_DIR")
                        or str(REPO.parent / "shared" / "imagenets-meta"),
                        help="official lists (default: $IMAGENETS_META_DIR, else ../shared/imagenets-meta)")
    parser.add_argument("--files-per-class", type=int, default=800, help="50 classes x this many files")
    parser.add_argument("--workers", type=int, default=2, help="copy threads of the prepare step")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each copier")
    parser.add_argument("--work-dir", default=str(REPO / "bench" / "_data"),
                        help="where the temporary trees go (same disk as the repository by default)")
    args = parser.parse_args()
    meta = load_metadata(meta_dir=args.meta_dir, quiet=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-", dir=args.work_dir))
    try:
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, work dir {work}")
        bench_copy(meta, args.meta_dir, work, args.files_per_class, args.workers, args.rounds)
        bench_link(meta, args.meta_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

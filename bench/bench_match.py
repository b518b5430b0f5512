"""Benchmark of the 919-class match and of memory: the issue's goals, measured in one run.

    python bench/bench_match.py [--pairs 12419] [--workers 2] [--data DIR]

On ImageNet-S919-like synthetic pairs (sides 24-160 px, cached under ``bench/_data/``) it times the
whole ``imagenets match``, then, from the accumulated counts, the 919x919 co-occurrence matrix plus the
assignment alone (goal < 1 s). In fresh child processes (so that peak RSS is their own) it evaluates
the whole 919 set (goal: peak < 1.5 GB, flat in the number of images: a quarter of the set for
comparison) and one 3072x2048 pair alone (no blow-up on ImageNet's largest images).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_evaluate import (DATA, MemorySampler, proportional_mb, synthetic_case, timed,  # noqa: E402
                            warm_page_cache)
from imagenets.evaluation.engine.cooccurrence import Cooccurrence, best_match  # noqa: E402
from imagenets.evaluation.engine.evaluation import evaluate_predictions  # noqa: E402
from imagenets.evaluation.engine.matching import _CountChunk, compute_match  # noqa: E402
from imagenets.evaluation.engine.inputs import make_pairs, prepare_pairs  # noqa: E402
from imagenets.evaluation.engine.parallel import map_reduce  # noqa: E402
from imagenets.codec import write_mask  # noqa: E402
from imagenets.metadata import load_metadata  # noqa: E402
from imagenets.subsets import get_subset  # noqa: E402

K = 919
BIG = (2048, 3072)  # height, width: ImageNet's largest images


# ---- child processes: one measurement each, peak RSS of their own -------------------------------

def child_evaluate(meta_dir: str, gt: str, pred: str, workers: int) -> Dict[str, float]:
    """Evaluate in this (fresh) process; time, memory after imports and peak of it plus its workers (MB)."""
    base = proportional_mb(os.getpid())
    with MemorySampler() as memory:
        seconds, _cpu, result = timed(lambda: evaluate_predictions(Path(pred), Path(gt), get_subset(K),
                                                             load_metadata(meta_dir), workers=workers, quiet=True))
    return {"seconds": seconds, "images": result["images"], "base_mb": base, "peak_mb": memory.peak_mb}


def in_child(meta_dir: Path, gt: Path, pred: Path, workers: int) -> Dict[str, float]:
    argv = [sys.executable, __file__, "--child", json.dumps([str(meta_dir), str(gt), str(pred), workers])]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- cases derived from the cached set ------------------------------------------------------------

def quarter_meta(case: Dict[str, Path]) -> Path:
    """A meta dir whose validation list is the first quarter of the cached one (same masks)."""
    root = case["root"] / "meta-quarter"
    subset = get_subset(K)
    if not (root / subset.validation_names_file).is_file():
        lines = (case["meta"] / subset.validation_names_file).read_text().splitlines()
        for rel in (subset.categories_file, f"classnames/ImageNetS_classnames_im{K}.txt"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(case["meta"] / rel, root / rel)
        (root / subset.validation_names_file).parent.mkdir(parents=True, exist_ok=True)
        (root / subset.validation_names_file).write_text("\n".join(lines[:len(lines) // 4]))
    return root


def big_case(data: Path) -> Dict[str, Path]:
    """One 3072x2048 pair: a synthetic pair drawn at 512 px, scaled up (nearest) to the full size."""
    root = data / "eval919-big-3072x2048"
    paths = {"meta": root / "meta", "gt": root / "gt", "pred": root / "pred"}
    if (root / "complete").is_file():
        return paths
    from imagenets.demo.synthetic import synthetic_pair, write_synthetic_meta

    write_synthetic_meta(paths["meta"], K, validation=1, test=0, train_semi=0, seed=7)
    meta = load_metadata(paths["meta"])
    _image, mask = meta.validation_names(K)[0]
    class_id = meta.class_ids(K)[mask.split("/")[0]]
    for kind, ids in zip(("gt", "pred"), synthetic_pair(7, 0, class_id, K, sides=(512, 512), quality=0.7)):
        big = Image.fromarray(ids.astype(np.int32), "I").resize((BIG[1], BIG[0]), Image.NEAREST)
        write_mask(paths[kind] / mask, np.asarray(big))
    (root / "complete").write_text("ok")
    return paths


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=12419, help="number of synthetic 919 validation pairs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--data", type=Path, default=DATA, help="cache folder for the generated masks")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_evaluate(*json.loads(args.child))))
        return 0

    case = synthetic_case(args.data, K, args.pairs, (24, 160), max(args.workers, 1))
    big = big_case(args.data)
    meta = load_metadata(case["meta"])
    names = [m for _i, m in meta.validation_names(K)]
    warm_page_cache([p for pair in make_pairs(names, case["gt"], case["pred"]) for p in (pair.gt, pair.pred)])

    match_s, _cpu, match = timed(lambda: compute_match(case["pred"], case["gt"], get_subset(K), load_metadata(case["meta"]),
                                                 workers=args.workers, quiet=True))
    # The same counting, kept apart so that the matrix and the assignment can be timed alone.
    total = Cooccurrence(K)
    pairs = prepare_pairs(names, case["gt"], case["pred"], quiet=True)
    map_reduce(pairs, _CountChunk(K, "image"), total.merge, workers=args.workers, quiet=True)
    matrix_s, _cpu, matrix = timed(total.matrix)
    solve_s, _cpu, (_assignment, objective) = timed(lambda: best_match(matrix))
    assert objective == match["objective"]

    full = in_child(case["meta"], case["gt"], case["pred"], args.workers)
    quarter = in_child(quarter_meta(case), case["gt"], case["pred"], args.workers)
    alone = in_child(big["meta"], big["gt"], big["pred"], 0)

    print(f"bench_match: {args.pairs} ImageNet-S919-like pairs (sides 24-160 px), {args.workers} workers")
    print(f"{'match, whole':<30} {match_s:7.2f} s  {args.pairs / match_s:8.1f} pairs/s  (objective {objective})")
    print(f"{'co-occurrence + assignment':<30} {matrix_s + solve_s:7.3f} s  (matrix {matrix_s:.3f} s, "
          f"assignment {solve_s:.3f} s; goal < 1 s: {'met' if matrix_s + solve_s < 1 else 'NOT met'})")
    for label, run in ((f"evaluate 919 set ({full['images']})", full),
                       (f"evaluate 919 quarter ({quarter['images']})", quarter),
                       (f"evaluate one {BIG[1]}x{BIG[0]} pair", alone)):
        print(f"{label:<30} {run['seconds']:7.2f} s  peak {run['peak_mb']:.0f} MB PSS, main + workers "
              f"(interpreter after imports {run['base_mb']:.0f} MB)")
    print(f"{'goal':<30} peak < 1500 MB for the 919 set: {'met' if full['peak_mb'] < 1500 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

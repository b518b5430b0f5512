"""Compare the benchmark's image-level matching with the pixel-level one on ``../shared/golden/match50``.

Run: ``python bench/bench_match_methods.py [--case DIR] [--meta-dir DIR] [--workers 2]``.
For each method: the match, its objective, the time taken, then every summary metric evaluated with it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict

from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.matching import compute_match
from imagenets.evaluation.engine.matchfile import save_match
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.metadata import load_metadata
from imagenets.subsets import get_subset

SHARED = Path(__file__).resolve().parents[2] / "shared"


def run_method(method: str, case: Path, meta, workers: int, scratch: Path) -> Dict[str, object]:
    """Match with ``method``, then evaluate through that match."""
    subset = get_subset(50)
    start = time.perf_counter()
    match = compute_match(case / "pred", case / "gt", subset, meta, method=method, workers=workers, quiet=True)
    match_s = time.perf_counter() - start
    match_file = save_match(scratch / f"{method}.json", match["assignment"])
    result = evaluate_predictions(case / "pred", case / "gt", subset, meta, match_file=match_file,
                                  workers=workers, quiet=True)
    return {"objective": match["objective"], "match_s": match_s, "result": result,
            "assignment": match["assignment"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=SHARED / "golden" / "match50",
                        help="folder with gt/ and pred/ (cluster ids) of ImageNet-S50 validation")
    parser.add_argument("--meta-dir", type=Path, default=SHARED / "imagenets-meta",
                        help="the official lists")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    meta = load_metadata(args.meta_dir, quiet=True)
    with tempfile.TemporaryDirectory() as scratch:
        runs = {m: run_method(m, args.case, meta, args.workers, Path(scratch)) for m in ("image", "pixel")}
    image, pixel = runs["image"], runs["pixel"]
    differ = int((image["assignment"] != pixel["assignment"]).sum())
    print(f"{args.case}: {image['result']['images']} images; the two matches differ on {differ} of 50 clusters")
    print(f"{'':<10}  {'image':>8}  {'pixel':>8}  {'pixel-image':>11}")
    print(f"{'match s':<10}  {image['match_s']:>8.2f}  {pixel['match_s']:>8.2f}")
    for key in SUMMARY_KEYS:
        a, b = image["result"][key], pixel["result"][key]
        print(f"{key:<10}  {a:>8.2f}  {b:>8.2f}  {b - a:>+11.2f}")


if __name__ == "__main__":
    main()

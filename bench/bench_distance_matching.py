"""Benchmark of distance matching's step 2 (the k-NN vote) on CPU with a 919-class embedding bank.

A typical ViT-S/16 validation image (256x341 after resizing) gives a 16x21 feature map, i.e.
64x84 = 5376 pixels after the 4x upsampling. The floor is the plain per-pixel vote
(``knn_vote`` on the upsampled features: one similarity row per pixel); ``vote_map`` (what the
command runs) must give identical labels, faster. Two kinds of feature maps: i.i.d. random cells
(no spatial correlation: the worst case for vote_map's bounds) and smooth ones (neighbouring
cells alike, as a real backbone's are). Times are wall and CPU (user + system of this process):
on a shared machine the wall ratio moves with other load, the CPU ratio much less.

OMP_WAIT_POLICY is PASSIVE unless set: when other processes hold the cores, OpenMP's default
spinning makes each of vote_map's many mid-sized operations wait for a descheduled thread
(on a busy 2-core machine vote_map then runs 3x slower with 2 threads than with 1; the
per-pixel vote, a few large matrix products, hardly notices).

    python bench/bench_distance_matching.py [--embeddings 18380] [--channels 384] [--images 6]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable, List

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from imagenets.evaluation.distance_matching.bank import upsample  # noqa: E402
from imagenets.evaluation.distance_matching.vote import VoteBank, knn_vote, vote_map  # noqa: E402

FEATURE_SIZE = (16, 21)
GOAL = 5.0


def _timed(run: Callable[[], List[torch.Tensor]], repeats: int):
    """(best wall seconds, best CPU seconds over ``repeats`` runs, the labels of the last)."""
    wall = cpu = float("inf")
    labels: List[torch.Tensor] = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        labels = run()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, labels


def _maps(kind: str, count: int, channels: int, generator: torch.Generator) -> List[torch.Tensor]:
    height, width = FEATURE_SIZE
    if kind == "iid":
        return [torch.randn(channels, height, width, generator=generator) for _ in range(count)]
    # smooth: a coarse random field (one value per ~4x4 cells) upsampled, plus a little noise
    coarse = [torch.randn(1, channels, 5, 6, generator=generator) for _ in range(count)]
    return [F.interpolate(c, size=FEATURE_SIZE, mode="bilinear", align_corners=False)[0]
            + 0.3 * torch.randn(channels, height, width, generator=generator) for c in coarse]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--embeddings", type=int, default=2 * 9190,
                        help="bank size: ImageNet-S919 train-semi gives ~2 per image (class + background)")
    parser.add_argument("--classes", type=int, default=919, help="labels 0..K in the bank")
    parser.add_argument("--channels", type=int, default=384, help="feature channels C")
    parser.add_argument("--images", type=int, default=6, help="16x21 feature maps per kind")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the fastest counts")
    parser.add_argument("-k", type=int, default=10, help="voting neighbours")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, args.classes + 1, (args.embeddings,), generator=generator)
    bank = VoteBank(torch.randn(args.embeddings, args.channels, generator=generator), labels,
                    torch.device("cpu"))
    pixels = FEATURE_SIZE[0] * FEATURE_SIZE[1] * 16
    print(f"bank {args.embeddings} x {args.channels} ({args.classes} classes + background), "
          f"{args.images} images of {pixels} pixels per kind, k={args.k}, "
          f"{torch.get_num_threads()} threads (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), "
          f"torch {torch.__version__}")
    walls, cpus = [], []
    with torch.inference_mode():
        for kind in ("iid", "smooth"):
            maps = _maps(kind, args.images, args.channels, generator)
            vote_map(maps[0], bank, args.k, 0.07)  # warm-up (and the plan cache)
            flat = [upsample(f).reshape(args.channels, -1).t().contiguous() for f in maps]
            floor, floor_cpu, expected = _timed(lambda: [knn_vote(f, bank, args.k, 0.07) for f in flat],
                                                args.repeats)
            ours, ours_cpu, got = _timed(lambda: [vote_map(f, bank, args.k, 0.07) for f in maps],
                                         args.repeats)
            wrong = sum(int((g.reshape(-1) != e).sum()) for g, e in zip(got, expected))
            walls.append(floor / ours)
            cpus.append(floor_cpu / ours_cpu)
            print(f"{kind:6s}  per-pixel knn_vote (floor) {floor / args.images:5.2f} s/image "
                  f"({floor_cpu / args.images:5.2f} CPU)   vote_map {ours / args.images:5.2f} s/image "
                  f"({ours_cpu / args.images:5.2f} CPU)   ratio {floor / ours:5.2f}x wall, "
                  f"{floor_cpu / ours_cpu:5.2f}x CPU   labels "
                  f"{'identical' if wrong == 0 else f'DIFFER at {wrong} pixels'}", flush=True)
    for what, ratios in (("wall", walls), ("CPU", cpus)):
        verdict = "meets" if min(ratios) >= GOAL else "misses"
        print(f"{what}: vote_map is {min(ratios):.2f}x the per-pixel vote at worst: {verdict} the "
              f"{GOAL:.0f}x goal")


if __name__ == "__main__":
    main()

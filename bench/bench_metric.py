"""``SegmentationMetrics`` in a training loop against torchmetrics' ``MulticlassJaccardIndex``, in one run.

Run: ``python bench/bench_metric.py [--batches 3] [--repeat 3] [--threads 2]`` (torchmetrics must import:
``pip install torchmetrics==1.9.0 --no-deps lightning-utilities``; it is not a dependency).

Every case feeds the same batches of 8 CPU tensors to both, as a validation loop would: padded batches
(images of 300-499 px in a 626x499 frame, the target padded with the ignore id 1000, as ``collate_padded``
does) and unpadded 256x256 batches, for K = 50 and 919, of blocky maps (the demo's objects, borders moved)
and noisy ones (the same plus model-like per-pixel noise). Timed: torchmetrics' per-class IoU
(``MulticlassJaccardIndex(average=None, ignore_index=1000)``: mIoU only) as users call it (it checks its
input: ``validate_args=True``) and at its fastest (``validate_args=False``), ours with ``boundaries=False``
(mIoU, size buckets, Acc, FMeasure) and ours in full (also the boundary metrics); update plus compute,
best of ``--repeat``, in wall seconds and in CPU seconds of this process (torch's bincount runs on
``--threads`` threads, ours on one; CPU time is steadier on a shared machine). Each line checks that the
per-class IoUs agree (to 1e-5) and gives our times as ratios of torchmetrics' fastest.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Callable, List, Tuple

import numpy as np
import torch

from imagenets import SegmentationMetrics
from imagenets.demo.synthetic import synthetic_pair
from imagenets.subsets import IGNORE

BATCH = 8
FRAME = (626, 499)   # padded batches: H x W of the frame


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_batches(k: int, noisy: bool, padded: bool, batches: int, seed: int = 0) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """(preds, target) int64 batches of BATCH maps."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(batches):
        frame = FRAME if padded else (256, 256)
        preds = np.zeros((BATCH,) + frame, dtype=np.int64)
        target = np.full((BATCH,) + frame, IGNORE, dtype=np.int64)
        for i in range(BATCH):
            index = b * BATCH + i
            sides = (300, 499) if padded else (256, 256)
            gt, pred = synthetic_pair(seed, index, 1 + index % k, k, sides=sides, quality=0.7)
            h, w = gt.shape
            if noisy:  # a model's speckle: a tenth of the pixels get another id, mostly a nearby class
                flip = rng.random((h, w)) < 0.1
                pred = np.where(flip, (pred + rng.integers(1, 4, (h, w))) % (k + 1), pred)
            target[i, :h, :w] = gt
            # Padding is the model's output on zeros: a flat guess (class 0 here); torchmetrics drops it with target 1000.
            preds[i, :h, :w] = pred
        out.append((torch.from_numpy(preds), torch.from_numpy(target)))
    return out


def best_of(func: Callable[[], object], repeat: int) -> Tuple[float, float, object]:
    """The best wall and the best CPU seconds of ``repeat`` runs, and the result."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        result = func()
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, cpu_seconds() - start_cpu)
    return wall, cpu, result


def pair(wall: float, cpu: float) -> str:
    return f"{wall:.3f}/{cpu:.3f}"


def ratio(wall: float, cpu: float) -> str:
    return f"{wall:.2f}/{cpu:.2f}x"


def ours(batches, k: int, boundaries: bool) -> Callable[[], np.ndarray]:
    def run() -> np.ndarray:
        metrics = SegmentationMetrics(k, boundaries=boundaries)
        for preds, target in batches:
            metrics.update(preds=preds, target=target)
        return np.array(metrics.compute()["IoUs"]) / 100
    return run


def theirs(batches, k: int, validate: bool = False) -> Callable[[], np.ndarray]:
    from torchmetrics.classification import MulticlassJaccardIndex

    def run() -> np.ndarray:
        metric = MulticlassJaccardIndex(num_classes=k + 1, average=None, ignore_index=IGNORE, validate_args=validate)
        for preds, target in batches:
            metric.update(preds, target)
        return metric.compute().numpy()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3, help="batches of 8 per case")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (the best counts)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (torchmetrics' bincount uses them)")
    args = parser.parse_args()
    import torchmetrics

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchmetrics {torchmetrics.__version__}, {args.threads} torch threads, "
          f"{args.batches} batches of {BATCH} per case, best of {args.repeat}; seconds as wall / CPU")
    header = (f"{'case':<24} {'tm (checks)':>13} {'tm fastest':>13} {'ours mIoU-only':>14} {'ours full':>13}"
              f"   {'mIoU-only/tm':>12} {'full/tm':>11}  IoUs agree")
    print(header)
    print("-" * len(header))
    ratios = {"mIoU-only wall": [], "mIoU-only CPU": [], "full wall": [], "full CPU": []}
    for padded in (True, False):
        for k in (50, 919):
            for noisy in (True, False):
                batches = make_batches(k, noisy, padded, args.batches)
                theirs(batches[:1], k)(), ours(batches[:1], k, True)()  # warm-up (imports, allocator)
                w_check, c_check, _ = best_of(theirs(batches, k, validate=True), args.repeat)
                w_tm, c_tm, iou_theirs = best_of(theirs(batches, k), args.repeat)
                w_light, c_light, iou_light = best_of(ours(batches, k, False), args.repeat)
                w_full, c_full, iou_full = best_of(ours(batches, k, True), args.repeat)
                agree = np.allclose(iou_full, iou_theirs, atol=1e-5, rtol=0) and np.array_equal(iou_full, iou_light)
                frame = "626x499 pad" if padded else "256x256"
                case = f"K={k} {'noisy' if noisy else 'blocky'} {frame}"
                for key, value in (("mIoU-only wall", w_light / w_tm), ("mIoU-only CPU", c_light / c_tm),
                                   ("full wall", w_full / w_tm), ("full CPU", c_full / c_tm)):
                    ratios[key].append(value)
                print(f"{case:<24} {pair(w_check, c_check):>13} {pair(w_tm, c_tm):>13} {pair(w_light, c_light):>14} "
                      f"{pair(w_full, c_full):>13}   {ratio(w_light / w_tm, c_light / c_tm):>12} "
                      f"{ratio(w_full / w_tm, c_full / c_tm):>11}  {'yes' if agree else 'NO'}")
    print("ours / torchmetrics' fastest, time (below 1: ours is faster): "
          + ", ".join(f"{key} {min(v):.2f}x-{max(v):.2f}x" for key, v in ratios.items()))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s wall)")

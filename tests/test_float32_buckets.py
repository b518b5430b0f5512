"""Object-size buckets as the original computes them: ``ceil(100 * n / N)`` in float32 (spec, "Object size").

Equal to the exact ceiling on ImageNet-sized images; on large ones float32 rounding moves a class across
5%, 25% or 50%. The edges are tested from counts (cheap), and once end to end on a 3277x3277 pair.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from imagenets.codec import write_mask
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.kernel import JointTable
from imagenets.evaluation.engine.metrics import SegmentationMetrics, size_bucket
from imagenets.subsets import get_subset

BUCKETS = ("S", "MS", "ML", "L")


def f32(x: float) -> float:
    """Round a double to float32 (round half to even), without numpy: an independent reference."""
    return struct.unpack("f", struct.pack("f", x))[0]


def spec_bucket(n: int, total: int) -> int:
    # Double arithmetic on float32 values, then one rounding: exactly float32's * and / (53 >= 2 * 24 + 2).
    s = math.ceil(f32(f32(f32(n) * 100.0) / f32(total)))
    return sum(s > edge for edge in (5, 25, 50))


def exact_bucket(n: int, total: int) -> int:
    s = -(-100 * n // total)
    return sum(s > edge for edge in (5, 25, 50))


def test_imagenet_sized_images_get_the_exact_ceiling():
    rng = np.random.default_rng(0)
    totals = rng.integers(1, 1_000_000, 2000)
    pixels = np.array([rng.integers(1, t + 1) for t in totals])
    for n, total in zip(pixels, totals):
        assert size_bucket(np.array([n]), int(total))[0] == exact_bucket(int(n), int(total))


@pytest.mark.parametrize("pixels, total, exact, float32", [
    (5_368_712, 10_737_423, "L", "ML"),   # 50.0000047%: float32 rounds the share to 50.0
    (5_368_712, 10_737_422, "L", "L"),    # one pixel fewer in the image: below the 50% edge
    (671_089, 13_421_779, "MS", "S"),     # 5.0000007%: float32 rounds to 5.0
    (671_089, 13_421_778, "MS", "MS"),
    (2_684_356, 10_737_423, "ML", "MS"),  # the 25% edge starts at the same size
    (671_091, 1_342_182, "ML", "L"),      # exactly half: float32(100 * n) rounds up, the share above 50
    (671_091, 2_684_364, "MS", "ML"),     # exactly 25%, likewise
])
def test_buckets_follow_float32_at_the_edges(pixels, total, exact, float32):
    assert BUCKETS[exact_bucket(pixels, total)] == exact
    assert BUCKETS[spec_bucket(pixels, total)] == float32
    assert BUCKETS[size_bucket(np.array([pixels]), total)[0]] == float32


def test_buckets_equal_the_float32_reference_around_every_edge():
    rng = np.random.default_rng(1)
    totals = rng.integers(1_000_000, 64_000_000, 300)
    for total in totals:
        total = int(total)
        for edge in (5, 25, 50):
            near = edge * total // 100 + np.arange(-2, 3)
            got = size_bucket(near, total)
            assert list(got) == [spec_bucket(int(n), total) for n in near], (total, edge)


SIDE = 3277
IGNORED = SIDE * SIDE - 10_737_423  # 1,306 ignore pixels leave N = 10,737,423: the 50% edge
HALF_AND_A_BIT = 5_368_712          # 50.0000047% of N: L exactly, ML in float32


def test_a_3277_px_square_gives_the_originals_buckets_from_counts():
    counts = np.zeros((3, 3, 2, 2), dtype=np.int64)   # GT rows 0, 1, ignore; prediction columns 0, 1, other
    counts[0, 0, 0, 0] = SIDE * SIDE - IGNORED - HALF_AND_A_BIT
    counts[1, 1, 0, 0] = HALF_AND_A_BIT
    counts[2, 0, 0, 0] = IGNORED
    metrics = SegmentationMetrics(2)
    metrics.update_table(JointTable(np.array([0, 1, 1000]), np.array([0, 1]), counts, 0, 1))
    result = metrics.compute()
    assert result["ML"] == 100.0 and math.isnan(result["L"])


def test_a_3277_px_pair_evaluated_end_to_end_lands_in_ml(tmp_path, meta):
    gt = np.zeros(SIDE * SIDE, dtype=np.int32)
    gt[:IGNORED] = 1000
    gt[IGNORED:IGNORED + HALF_AND_A_BIT] = 1
    gt = gt.reshape(SIDE, SIDE)
    name = "n01443537/big.png"
    for folder in ("gt", "pred"):
        write_mask(tmp_path / folder / name, gt)
    result = evaluate_predictions(tmp_path / "pred", tmp_path / "gt", get_subset(50), meta, workers=0, quiet=True,
                                  names=[name])
    assert result["ML"] == 100.0 and math.isnan(result["L"])
    assert result["mIoU"] == pytest.approx(100.0 * 2 / 51)

"""The image-level match counts which ids each image holds; that shortcut must book exactly what the
joint table books (co-occurrence, image count, out-of-range pixels, largest id)."""

from __future__ import annotations

import numpy as np
import pytest

from imagenets.evaluation.engine.cooccurrence import Cooccurrence
from imagenets.evaluation.engine.kernel import joint_table
from imagenets.subsets import IGNORE

from helpers import blobs


def booked(counts: Cooccurrence):
    return (counts.matrix().tolist(), counts.images, counts.outside_pixels, counts.outside_images, counts.top_id)


@pytest.mark.parametrize("clusters", [12, 20])
def test_ids_present_book_what_the_joint_table_books(clusters):
    rng = np.random.default_rng(0)
    k = 12
    by_table, by_ids = Cooccurrence(k, num_clusters=clusters), Cooccurrence(k, num_clusters=clusters)
    for index in range(120):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        gt = blobs(rng, h, w, np.array([0, 1, 2, 5, 12, IGNORE, 40])).astype(np.int32)  # ignore, an invalid id
        pred = blobs(rng, h, w, np.array([0, 3, 7, 12, 15, 19, 300, 65535])).astype(np.int32)  # ids above N
        if index % 5 == 0:
            gt[:] = IGNORE                                                        # nothing kept
        by_table.update_table(joint_table(gt, pred, clusters, with_boundaries=False))
        by_ids.update_pair(gt, pred)
    assert booked(by_ids) == booked(by_table)
    assert by_ids.outside_pixels > 0 and by_ids.top_id == 65535


def test_pixel_method_keeps_the_joint_table():
    with pytest.raises(ValueError, match="pixel"):
        Cooccurrence(3, method="pixel").update_pair(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int32))

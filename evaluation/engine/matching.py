"""Image-level matching of a prediction folder: parallel co-occurrence counts, then the assignment (the library half of ``match.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .cooccurrence import Cooccurrence, best_match
from .inputs import Pair, prepare_pairs, read_pair
from .kernel import joint_table
from .parallel import counting_device, map_reduce


class _CountChunk:
    """Worker job: co-occurrence counts of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, method: str):
        self.num_classes = num_classes
        self.method = method

    def __call__(self, pairs: Sequence[Pair]) -> Cooccurrence:
        counts = Cooccurrence(self.num_classes, self.method)
        for pair in pairs:
            gt, pred = read_pair(pair)
            counts.update_table(joint_table(gt, pred, self.num_classes, with_boundaries=False))
        return counts


def compute_match(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata, method: str = "image",
                  workers: int = 2, device: str = "auto", quiet: bool = False) -> Dict[str, object]:
    """Count co-occurrences over the validation list and solve the assignment."""
    counting_device(device, quiet)
    k = subset.num_classes
    names = [mask for _image, mask in meta.validation_names(subset)]
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    total = Cooccurrence(k, method)
    map_reduce(pairs, _CountChunk(k, method), total.merge, workers=workers, quiet=quiet, desc="matching")
    matrix = total.matrix()
    assignment, objective = best_match(matrix)
    return {"subset": subset.name, "mode": k, "images": total.images, "method": method,
            "objective": objective, "assignment": assignment, "cooccurrence": matrix}

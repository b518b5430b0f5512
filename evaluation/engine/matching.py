"""Image-level matching of a prediction folder: parallel co-occurrence counts, then the assignment (the library half of ``match.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from imagenets.codec import MAX_ID
from imagenets.errors import UserError, warn
from imagenets.metadata import Metadata
from imagenets.subsets import Subset

from .cooccurrence import Cooccurrence, cluster_report, solve_match
from .inputs import Pair, prepare_pairs, read_pair
from .kernel import joint_table
from .parallel import counting_device, map_reduce
from .tiebreak import DEFAULT_TIE_BREAK


class _CountChunk:
    """Worker job: co-occurrence counts of a chunk of pairs (picklable)."""

    def __init__(self, num_classes: int, method: str, num_clusters: Optional[int] = None):
        self.num_classes = num_classes
        self.method = method
        self.num_clusters = num_classes if num_clusters is None else num_clusters

    def __call__(self, pairs: Sequence[Pair]) -> Cooccurrence:
        counts = Cooccurrence(self.num_classes, self.method, self.num_clusters)
        for pair in pairs:
            gt, pred = read_pair(pair)
            if self.method == "image":  # which ids are present is all it needs
                counts.update_pair(gt, pred)
            else:
                counts.update_table(joint_table(gt, pred, self.num_clusters, with_boundaries=False))
        return counts


def check_clusters(num_clusters: Optional[int], num_classes: int) -> int:
    """N for ``--clusters`` (default K): at least K, at most the largest mask id."""
    if num_clusters is None:
        return num_classes
    if not num_classes <= num_clusters <= MAX_ID:
        raise UserError(f"--clusters {num_clusters}: use the number of cluster ids of the predictions "
                        f"(1..N), at least the {num_classes} classes and at most {MAX_ID}")
    return num_clusters


def warn_unmatched(total: Cooccurrence, objective: int) -> None:
    """Say why a match means little: ids above N (no part in it), or nothing co-occurring at all."""
    n, k = total.num_clusters, total.num_classes
    if total.outside_pixels:
        hint = (f"more clusters than the {k} classes? pass --clusters {total.top_id}" if n == k
                else f"raise --clusters to {total.top_id}")
        warn(f"{total.outside_pixels} pixels in {total.outside_images} of {total.images} images (ignore "
             f"excluded) have prediction ids above {n} (largest: {total.top_id}): they take no part in the "
             f"match; {hint}")
    if total.images and objective == 0:
        warn(f"objective 0: no prediction id in 1..{n} shares an image with a GT class, so the match is "
             "arbitrary; check that --predict-dir holds cluster ids 1..N (0 = background)")


def compute_match(predict_dir: Path, gt_dir: Path, subset: Subset, meta: Metadata, method: str = "image",
                  workers: int = 2, device: str = "auto", quiet: bool = False,
                  num_clusters: Optional[int] = None, names: Optional[List[str]] = None,
                  tie_break: str = DEFAULT_TIE_BREAK) -> Dict[str, object]:
    """Count co-occurrences over the validation list (or the mask paths ``names``) and solve the assignment
    (clusters 1..N, N >= K); ``tie_break`` chooses among equally good ones (default: the original match.py's
    choice). Warns when the optimum is not unique, or the match degenerate; ``ties`` in the result is the
    tie report."""
    counting_device(device, quiet)
    k = subset.num_classes
    n = check_clusters(num_clusters, k)
    if names is None:
        names = [mask for _image, mask in meta.validation_names(subset)]
    pairs = prepare_pairs(names, Path(gt_dir), Path(predict_dir), quiet=quiet)
    total = Cooccurrence(k, method, n)
    map_reduce(pairs, _CountChunk(k, method, n), total.merge, workers=workers, quiet=quiet, desc="matching")
    cooc = total.matrix()
    assignment, objective, ties = solve_match(cooc, total.images if method == "image" else None, tie_break)
    warn_unmatched(total, objective)
    for line in ties.warnings():
        warn(line)
    return {"subset": subset.name, "mode": k, "images": total.images, "method": method, "clusters": n,
            "objective": objective, "assignment": assignment, "report": cluster_report(cooc, assignment),
            "cooccurrence": cooc, "ties": ties.as_json()}

"""Bootstrap over images: intervals of the summary metrics and paired comparisons of two runs.

A resample draws the run's images with replacement; its accumulators are the multiplicity-weighted
sum of the images' own counts. All resamples come from one product: a (resamples x images)
multiplicity matrix times the sparse (images x (scope, stat, class)) counts, so B = 1000 on the
12,419 images of ImageNet-S919 takes seconds.

The intervals are symmetric studentized ones (symmetric bootstrap-t, Hall 1988): each resample's
deviation from the point estimate is divided by that resample's own standard error (the infinitesimal
jackknife: every image's influence on the metric, from the gradient of the IoUs at the resample's
counts), and the interval is the point estimate plus or minus the 95% quantile of those ``|t|`` times the
run's standard error. Why: an IoU rests on the few images of its class (about 14 in ImageNet-S), where
the spread of the resamples understates the spread between samples of images, and mIoU over a resample
is biased low (a class the resample misses counts 0). Percentile, basic and BCa intervals inherit the
narrow spread (and the percentile one doubles the bias: it can exclude the point estimate); t values
carry the same understatement as the real pivot, so it cancels; the symmetric form also absorbs the
bias and skew into its width, where the equal-tailed one still undercovers a little.
``bench/bench_coverage.py`` measures every method's coverage and ``compare``'s test size on a synthetic
population. p-values invert the same interval: p < 0.05 exactly when the 95% interval leaves out 0.
"""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from imagenets.progress import progress

from .metrics import SCOPES, STATS, SUMMARY_KEYS, ImageCounts, summarize

#: Resamples computed together: bounds memory (block x 30 x (K+1) float64) whatever B is. Fixed, so
#: that a seed gives the same intervals on every machine.
BLOCK = 250
LEVEL = 95.0
#: The interval methods (the others for comparison, in bench/bench_coverage.py). METHOD gives every
#: interval and p-value of ``evaluate --bootstrap`` and ``compare``, and is named beside each.
METHODS = ("studentized-symmetric", "studentized", "BCa", "basic", "percentile")
METHOD = "studentized-symmetric"
_NORMAL = NormalDist()
#: The IoU-mean keys: (scope, the three stats I, P, G of the key).
_IOU_KEYS = {("m" if scope == 0 else "") + ("B" if boundary else "") + ("IoU" if scope == 0 else SCOPES[scope]):
             (scope, tuple(STATS.index(("B" if boundary else "") + s) for s in ("I", "P", "G")))
             for boundary in (False, True) for scope in range(len(SCOPES))}


def multiplicities(images: int, resamples: int, seed: int, quiet: bool = True) -> Iterator[np.ndarray]:
    """Blocks of rows ``w[b, i]`` = how often resample b draws image i (each row sums to ``images``).

    Each block is the transposed view of a contiguous (images x block) array: the layout the
    sparse product reads. Unless ``quiet``, a progress bar (with its time estimate) counts the resamples.
    """
    rng = np.random.default_rng(seed)
    for start in progress(range(0, resamples, BLOCK), desc=f"bootstrap ({resamples} resamples)", quiet=quiet,
                          unit="block"):
        size = min(BLOCK, resamples - start)
        draws = rng.integers(0, images, size=(size, images)) if images else np.zeros((size, 0), np.int64)
        flat = (draws * size + np.arange(size)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * images).reshape(images, size).astype(np.float64).T


def _csr(crow: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: Tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch calls its CSR support "beta"
        return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(cols),
                                       torch.from_numpy(values.astype(np.float64)), size=shape)


def _product(sparse: torch.Tensor, dense: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (sparse @ torch.from_numpy(np.ascontiguousarray(dense))).numpy()


class Resampler:
    """The summary metrics of weighted image sets (rows of a multiplicity matrix) from one run's counts,
    and every image's influence on them (for standard errors)."""

    def __init__(self, counts: ImageCounts):
        self.counts = counts
        n, width = counts.images, int(np.prod(counts.shape))
        k1 = counts.num_classes + 1
        # The transposed counts, (scope, stat, class) x images, as CSR: each row gathers the images
        # holding that count, so the totals are one sparse-times-dense pass.
        image = np.repeat(np.arange(n, dtype=np.int64), np.diff(counts.indptr))
        order = np.lexsort((image, counts.keys))
        crow = np.searchsorted(counts.keys[order], np.arange(width + 1)).astype(np.int64)
        self._sparse = _csr(crow, image[order], counts.values[order], (width, n))
        # Per IoU key, the images' counts of its three stats as images x (3 (K+1)) CSR (rows are images).
        self._by_key: Dict[str, torch.Tensor] = {}
        scope_of, stat_of = counts.keys // (len(STATS) * k1), counts.keys // k1 % len(STATS)
        for key, (scope, stats) in _IOU_KEYS.items():
            mine = (scope_of == scope) & np.isin(stat_of, stats)
            column = np.searchsorted(stats, stat_of[mine]) * k1 + counts.keys[mine] % k1
            crow = np.concatenate([[0], np.cumsum(np.bincount(image[mine], minlength=n))]).astype(np.int64)
            self._by_key[key] = _csr(crow, column.astype(np.int64), counts.values[mine], (n, 3 * k1))

    def totals(self, weights: np.ndarray) -> np.ndarray:
        """(rows, SCOPES, STATS, K+1) accumulators of each row of ``weights`` (float64 sums of integers: exact)."""
        c = self.counts
        if not c.images:
            return np.zeros((weights.shape[0],) + c.shape)
        return _product(self._sparse, weights.T).T.reshape((weights.shape[0],) + c.shape)  # a view, no copy

    def summaries(self, weights: np.ndarray, totals: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        """Summary key -> value per row of ``weights``."""
        c = self.counts
        totals = self.totals(weights) if totals is None else totals
        return summarize(totals, c.images, weights @ c.correct.astype(np.float64), weights @ c.f)

    def influence(self, key: str, weights: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """(images, rows): the derivative of ``key`` of each weighted set (row of ``weights``) with respect to
        each image's weight. A standard error is ``sqrt(sum_i w_i L_i^2)`` (the infinitesimal jackknife)."""
        c = self.counts
        if key in ("Acc", "FMeasure"):  # a mean of per-image values: (v_i - weighted mean) / total weight
            v = (c.correct if key == "Acc" else c.f).astype(np.float64)
            total = weights.sum(axis=1)
            mean = (weights @ v) / np.maximum(total, 1)
            return 100.0 * (v[:, None] - mean[None, :]) / np.maximum(total, 1)[None, :]
        scope, stats = _IOU_KEYS[key]
        i, p, g = (totals[:, scope, s] for s in stats)
        union = g + p - i
        square = np.where(union > 0, union, 1.0) ** 2
        if scope == 0:
            weight = np.full(i.shape, 1.0 / i.shape[1])
        else:  # a bucket: the mean over the classes with GT pixels in it
            present = g > 0
            weight = present / np.maximum(present.sum(axis=1), 1)[:, None]
        grad_i = np.where(union > 0, 100.0 * (g + p) / square, 0.0) * weight
        grad_pg = np.where(union > 0, -100.0 * i / square, 0.0) * weight
        return _product(self._by_key[key], np.concatenate([grad_i, grad_pg, grad_pg], axis=1).T)

    def point(self) -> Dict[str, float]:
        """The summary of the run itself (every image once)."""
        return {k: float(v[0]) for k, v in self.summaries(np.ones((1, self.counts.images))).items()}


def _standard_error(effects: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``weights``: ``sqrt(sum_i w_i L_i^2)`` of influences ``effects`` (images x rows)."""
    return np.sqrt(np.einsum("bi,ib->b", weights, effects * effects))


class Draws:
    """Point values, standard errors and resample values of the summary keys for one run, or for the
    difference of two runs over the same images (``second`` - ``first``, resampled together)."""

    def __init__(self, first: ImageCounts, second: Optional[ImageCounts], resamples: int, seed: int,
                 with_errors: bool, quiet: bool = True):
        runs = [Resampler(first)] + ([Resampler(second)] if second is not None else [])
        ones = np.ones((1, first.images))
        totals = [r.totals(ones) for r in runs]
        self.run_points = [{k: float(v[0]) for k, v in r.summaries(ones, t).items()} for r, t in zip(runs, totals)]
        self.point = {key: self.run_points[-1][key] - (self.run_points[0][key] if second is not None else 0.0)
                      for key in SUMMARY_KEYS}
        self.influence: Dict[str, np.ndarray] = {}   # every image's, for BCa's acceleration
        self.error: Dict[str, float] = {}            # the run's standard error
        for key in SUMMARY_KEYS:
            effects = [r.influence(key, ones, t) for r, t in zip(runs, totals)]
            self.influence[key] = (effects[-1] - effects[0] if second is not None else effects[0])[:, 0]
            self.error[key] = float(np.sqrt((self.influence[key] ** 2).sum()))
        blocks = [self._block(runs, w, with_errors) for w in multiplicities(first.images, resamples, seed, quiet)]
        self.values = {key: np.concatenate([b[0][key] for b in blocks]) if blocks else np.zeros(0)
                       for key in SUMMARY_KEYS}
        self.errors = ({key: np.concatenate([b[1][key] for b in blocks]) if blocks else np.zeros(0)
                        for key in SUMMARY_KEYS} if with_errors else {})

    @staticmethod
    def _block(runs: List[Resampler], weights: np.ndarray, with_errors: bool):
        """Summary values (or differences) of a block of resamples, and their standard errors if asked."""
        totals = [r.totals(weights) for r in runs]
        summaries = [r.summaries(weights, t) for r, t in zip(runs, totals)]
        values = {key: summaries[-1][key] - summaries[0][key] if len(runs) > 1 else summaries[0][key]
                  for key in SUMMARY_KEYS}
        errors = {}
        if with_errors:
            for key in SUMMARY_KEYS:
                effects = [r.influence(key, weights, t) for r, t in zip(runs, totals)]
                errors[key] = _standard_error(effects[-1] - effects[0] if len(runs) > 1 else effects[0], weights)
        return values, errors

    def interval(self, key: str, method: str = METHOD, level: float = LEVEL) -> List[float]:
        return interval(self.values[key], self.point[key], method, level, influence_values=self.influence[key],
                        errors=self.errors.get(key), point_error=self.error.get(key))

    def p_value(self, key: str, method: str = METHOD) -> Optional[float]:
        return p_value(self.values[key], self.point[key], method, influence_values=self.influence[key],
                       errors=self.errors.get(key), point_error=self.error.get(key))


def acceleration(values: np.ndarray) -> float:
    """BCa's ``a = sum L^3 / (6 (sum L^2)^1.5)`` of influence values ``L`` (0 when they are all 0)."""
    centred = values - values.mean() if values.size else values
    spread = float((centred ** 2).sum())
    return float((centred ** 3).sum()) / (6.0 * spread ** 1.5) if spread > 0 else 0.0


def _share_below(values: np.ndarray, x: float) -> float:
    """Share of ``values`` below ``x`` (ties count half), kept off 0 and 1 by one half-resample."""
    below = (values < x).sum() + 0.5 * (values == x).sum()
    return float((below + 0.5) / (values.size + 1))


def _bca_tail(z0: float, a: float, tail: float) -> float:
    """The percentile BCa takes for the nominal tail probability ``tail``."""
    z = z0 + _NORMAL.inv_cdf(tail)
    denominator = 1.0 - a * z
    if denominator <= 0:
        return 1.0 if z > 0 else 0.0
    return _NORMAL.cdf(z0 + z / denominator)


def _t_values(values: np.ndarray, point: float, errors: Optional[np.ndarray],
              point_error: Optional[float]) -> Optional[np.ndarray]:
    """The resamples' ``(value - point) / their standard error``, finite ones; None when the run's own
    standard error is 0 (no first-order spread: the basic interval stands in)."""
    if errors is None or point_error is None or not point_error > 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (values - point) / errors
    return t[np.isfinite(t)]


def interval(values: np.ndarray, point: float, method: str = METHOD, level: float = LEVEL,
             influence_values: Optional[np.ndarray] = None, errors: Optional[np.ndarray] = None,
             point_error: Optional[float] = None) -> List[float]:
    """[lo, hi] ``level``% interval from the resample values (NaN ones ignored: a bucket without objects
    in a resample) around ``point``. Studentized needs the resamples' standard errors ``errors`` and the
    run's ``point_error``; BCa the images' influence values."""
    finite = np.isfinite(values)
    if not finite.any() or not math.isfinite(point):
        return [math.nan, math.nan]
    tails = ((100.0 - level) / 200.0, 1.0 - (100.0 - level) / 200.0)
    if method.startswith("studentized"):
        t = _t_values(values[finite], point, errors[finite] if errors is not None else None, point_error)
        if t is not None and t.size:
            if method == "studentized-symmetric":
                reach = float(np.percentile(np.abs(t), level))
                return [point - point_error * reach, point + point_error * reach]
            hi, lo = np.percentile(t, [100 * q for q in tails])
            return [float(point - point_error * lo), float(point - point_error * hi)]
        method = "basic"
    values = values[finite]
    if method == "percentile":
        return [float(v) for v in np.percentile(values, [100 * q for q in tails])]
    if method == "basic":
        lo, hi = np.percentile(values, [100 * q for q in tails])
        return [float(2 * point - hi), float(2 * point - lo)]
    if method != "BCa":
        raise ValueError(f"unknown interval method {method!r}: one of {', '.join(METHODS)}")
    z0 = _NORMAL.inv_cdf(_share_below(values, point))
    a = acceleration(influence_values) if influence_values is not None else 0.0
    return [float(v) for v in np.percentile(values, [100 * _bca_tail(z0, a, q) for q in tails])]


def p_value(values: np.ndarray, point: float, method: str = METHOD, influence_values: Optional[np.ndarray] = None,
            errors: Optional[np.ndarray] = None, point_error: Optional[float] = None) -> Optional[float]:
    """Two-sided p-value of "the true value is 0" (for a difference: no difference): the largest
    ``1 - level`` at which ``method``'s interval still holds 0, so p < 0.05 exactly when the 95%
    interval excludes 0. None without finite resamples."""
    finite = np.isfinite(values)
    if not finite.any() or not math.isfinite(point):
        return None
    if method.startswith("studentized"):
        t = _t_values(values[finite], point, errors[finite] if errors is not None else None, point_error)
        if t is not None and t.size:
            observed = point / point_error  # 0 leaves the interval once a t quantile passes it
            if method == "studentized-symmetric":
                return min(1.0, float((np.abs(t) >= abs(observed)).sum() + 1) / (t.size + 1))
            below = _share_below(t, observed)
            return min(1.0, 2.0 * min(below, 1.0 - below))
        method = "basic"
    values = values[finite]
    if method == "percentile":
        lower = _share_below(values, 0.0)
    elif method == "basic":
        lower = 1.0 - _share_below(values, 2.0 * point)
    elif method == "BCa":
        z0 = _NORMAL.inv_cdf(_share_below(values, point))
        a = acceleration(influence_values) if influence_values is not None else 0.0
        # Solve z0 + (z0 + z) / (1 - a (z0 + z)) = w for the nominal z whose BCa percentile is 0's.
        w = _NORMAL.inv_cdf(_share_below(values, 0.0)) - z0
        u = w / (1.0 + a * w) if 1.0 + a * w > 0 else math.copysign(math.inf, w)
        lower = _NORMAL.cdf(u - z0)
    else:
        raise ValueError(f"unknown interval method {method!r}: one of {', '.join(METHODS)}")
    return min(1.0, 2.0 * min(lower, 1.0 - lower))


def bootstrap_intervals(counts: ImageCounts, resamples: int, seed: int = 0,
                        method: str = METHOD, quiet: bool = True) -> Dict[str, List[float]]:
    """Summary key -> 95% interval (``method``) over ``resamples`` image resamples."""
    draws = Draws(counts, None, resamples, seed, with_errors=method.startswith("studentized"), quiet=quiet)
    return {key: draws.interval(key, method) for key in SUMMARY_KEYS}


def paired_bootstrap(a: ImageCounts, b: ImageCounts, resamples: int, seed: int = 0,
                     method: str = METHOD, quiet: bool = True) -> Dict[str, Dict[str, object]]:
    """Per summary key: A, B, the difference B - A, its 95% interval and p-value (``method``); the same
    resampled images for both runs (``a`` and ``b`` rows must be the same images, in order)."""
    draws = Draws(a, b, resamples, seed, with_errors=method.startswith("studentized"), quiet=quiet)
    point_a, point_b = draws.run_points
    return {key: {"a": point_a[key], "b": point_b[key], "difference": draws.point[key],
                  "ci95": draws.interval(key, method), "p": draws.p_value(key, method)} for key in SUMMARY_KEYS}

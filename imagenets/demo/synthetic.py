"""Made-up ImageNet-S material for demos, tests and benchmarks: metadata lists and GT/prediction masks.

Everything is offline and deterministic: the lists from ``seed``, every image from ``(seed, index)``.
"""

from __future__ import annotations

import io
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..codec import encode, write_mask
from ..errors import UserError
from ..metadata import train_semi_source
from ..fileio import PathLike, atomic_path, write_text_atomic
from ..progress import progress
from ..subsets import IGNORE, MASK_FOLDERS, OTHER, Subset, get_subset

SubsetLike = Union[Subset, int, str]

#: ImageNet's validation set has 50000 images: synthetic ``ILSVRC2012_val_*`` numbers stay in range.
IMAGENET_VAL_IMAGES = 50000
#: Share of validation/test images whose ImageNet source folder is another (non-subset) class.
REASSIGNED = 0.1
#: Chance that an image holds a second object of another class.
SECOND_OBJECT = 0.35


# ---- metadata ----------------------------------------------------------------------------------

def synthetic_wnids(count: int, rng: np.random.Generator, prefix: str = "n9") -> List[str]:
    """``count`` distinct sorted made-up wnids (``prefix`` + 7 digits, so 9 characters like real ones)."""
    numbers = rng.choice(10 ** 7, size=count, replace=False)
    return sorted(f"{prefix}{n:07d}" for n in numbers)


def _spread(count: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Class index (0-based) of ``count`` images: every class as evenly as possible, grouped by class."""
    classes = np.arange(count) % num_classes
    if count % num_classes:
        # Which classes get the extra images is random, not always the first ones.
        order = rng.permutation(num_classes)
        classes = order[classes]
    return np.sort(classes, kind="stable")


def _write_list(path: Path, lines: Sequence[str]) -> None:
    # The official lists end without a final newline.
    write_text_atomic(path, "\n".join(lines))


def _count(value: Optional[int], default: int, what: str) -> int:
    value = default if value is None else int(value)
    if value < 0:
        raise UserError(f"{what}={value}: use a count of 0 or more")
    return value


def write_synthetic_meta(root: PathLike, num_classes: SubsetLike = 50, validation: Optional[int] = None,
                         test: Optional[int] = None, train_semi: Optional[int] = None,
                         seed: int = 0) -> Path:
    """Write a metadata dir in the official layout for one subset size, with made-up wnids and names.

    List lengths default to the subset's official counts; returns ``root``.
    """
    subset = get_subset(num_classes)
    k = subset.num_classes
    n_val = _count(validation, subset.validation, "validation")
    n_test = _count(test, subset.test, "test")
    n_semi = _count(train_semi, subset.train_semi, "train_semi")
    if n_val + n_test > IMAGENET_VAL_IMAGES:
        raise UserError(f"validation + test = {n_val + n_test} images: ImageNet's val/ has only "
                        f"{IMAGENET_VAL_IMAGES}; ask for fewer")
    rng = np.random.default_rng([seed, k])
    root = Path(root)
    wnids = synthetic_wnids(k, rng)
    # Source folders of re-assigned images: classes that are in ImageNet but not in this subset.
    outside = synthetic_wnids(max(4, k // 10), rng, prefix="n8")
    _write_list(root / subset.categories_file, wnids)
    _write_list(root / f"classnames/ImageNetS_classnames_im{k}.txt",
                [f"{wnid}\tsynthetic class {i}" for i, wnid in enumerate(wnids, 1)])

    # Validation and test images are disjoint parts of ImageNet's val/.
    numbers = rng.choice(np.arange(1, IMAGENET_VAL_IMAGES + 1), size=n_val + n_test, replace=False)
    mappings: Dict[str, List[str]] = {}
    for split, chunk in (("validation", numbers[:n_val]), ("test", numbers[n_val:])):
        classes = _spread(len(chunk), k, rng)
        lines = []
        for number, cls in zip(chunk, classes):
            name = f"ILSVRC2012_val_{number:08d}.JPEG"
            dst = wnids[cls]
            src = outside[rng.integers(len(outside))] if rng.random() < REASSIGNED else dst
            lines.append(f"{src}/{name} {dst}/{name}")
        mappings[split] = lines
        _write_list(root / subset.mapping_file(split), lines)
    _write_list(root / subset.validation_names_file,
                [f"{dst} {dst[:-len('JPEG')]}png" for dst in
                 (line.split()[1] for line in mappings["validation"])])

    semi = []
    for cls in _spread(n_semi, k, rng):
        semi.append(wnids[cls])
    used: Dict[str, set] = {}
    lines = []
    for wnid in semi:
        taken = used.setdefault(wnid, set())
        while True:
            number = int(rng.integers(1, 1301))  # ImageNet train folders hold up to 1300 images
            if number not in taken or len(taken) >= 1300:
                break
        taken.add(number)
        lines.append(f"{wnid}/{wnid}_{number}.JPEG {wnid}/{wnid}_{number}.png")
    _write_list(root / subset.train_semi_names_file, lines)
    return root


# ---- masks -------------------------------------------------------------------------------------

@dataclass
class Blob:
    """A star-shaped object: radius ``r0 * (1 + sum a_k cos(k t + phi_k))`` around (cy, cx)."""

    class_id: int
    cy: float
    cx: float
    r0: float
    amplitudes: np.ndarray
    phases: np.ndarray

    def radius(self, theta: np.ndarray) -> np.ndarray:
        k = np.arange(2, 2 + len(self.amplitudes))[:, None, None]
        wobble = (self.amplitudes[:, None, None] * np.cos(k * theta + self.phases[:, None, None])).sum(0)
        return self.r0 * (1.0 + wobble)

    def signed_distance(self, h: int, w: int, margin: float = 2.0) -> np.ndarray:
        """Pixels inside are negative: distance to the centre minus the radius in that direction.

        Only the blob's bounding box grown by ``margin`` is computed (the rest is +inf): images are
        mostly background, and this is most of the generator's time.
        """
        out = np.full((h, w), np.inf)
        reach = self.r0 * (1.0 + np.abs(self.amplitudes).sum()) + margin
        y0, y1 = max(0, int(self.cy - reach)), min(h, int(np.ceil(self.cy + reach)) + 1)
        x0, x1 = max(0, int(self.cx - reach)), min(w, int(np.ceil(self.cx + reach)) + 1)
        if y0 < y1 and x0 < x1:
            dy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - self.cy
            dx = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - self.cx
            out[y0:y1, x0:x1] = np.hypot(dy, dx) - self.radius(np.arctan2(dy, dx))
        return out

    def angle(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Direction of pixels (row, column arrays) seen from the centre."""
        return np.arctan2(ys + 0.5 - self.cy, xs + 0.5 - self.cx)


def _random_blob(rng: np.random.Generator, class_id: int, h: int, w: int, scale: Tuple[float, float]) -> Blob:
    side = min(h, w)
    r0 = rng.uniform(*scale) * side
    cy = rng.uniform(0.25, 0.75) * h
    cx = rng.uniform(0.25, 0.75) * w
    amplitudes = rng.uniform(0.0, 0.12, size=3)
    phases = rng.uniform(0.0, 2 * np.pi, size=3)
    return Blob(class_id, cy, cx, r0, amplitudes, phases)


def _perturbed(blob: Blob, rng: np.random.Generator, error: float) -> Blob:
    """The same object as a method would see it: shifted boundary, slightly moved, other wobble."""
    jitter = error * blob.r0
    return Blob(blob.class_id,
                blob.cy + rng.normal(0.0, 0.3 * jitter), blob.cx + rng.normal(0.0, 0.3 * jitter),
                blob.r0 * (1.0 + rng.uniform(-0.5, 0.5) * error),
                blob.amplitudes + rng.uniform(-0.1, 0.1, size=blob.amplitudes.shape) * error,
                blob.phases + rng.normal(0.0, error, size=blob.phases.shape))


def _render(blobs: Sequence[Blob], h: int, w: int,
            margin: float = 2.0) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Id map (later blobs on top) and each blob's signed distance (exact within ``margin`` outside)."""
    ids = np.full((h, w), OTHER, dtype=np.int32)
    distances = []
    for blob in blobs:
        distance = blob.signed_distance(h, w, margin)
        ids[distance < 0] = blob.class_id
        distances.append(distance)
    return ids, distances


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of how images are split among workers."""
    return np.random.default_rng([int(seed), int(index), 0x5EED])


def synthetic_pair(seed: int, index: int, class_id: int, num_classes: int,
                   sides: Tuple[int, int] = (24, 500), quality: float = 0.8,
                   out_of_range: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """(gt, pred) int32 id maps of one image whose main object is ``class_id`` (pred in class ids).

    GT: OTHER background, the main object, maybe a second object of another class, and a band of
    IGNORE along part of an object border. Prediction: each object kept with chance ``quality``
    (else another class), its border moved by an amount growing with ``1 - quality``; with chance
    ``out_of_range`` a few pixels get an id above ``num_classes``.
    """
    rng = image_rng(seed, index)
    lo, hi = sorted(int(s) for s in sides)
    if lo < 1:
        raise UserError(f"sides={sides}: image sides must be at least 1 pixel")
    # Photo-like shapes: the long side in [lo, hi], the short one 60-100 % of it (but >= lo).
    long_side = int(rng.integers(lo, hi + 1))
    short_side = max(lo, int(round(long_side * rng.uniform(0.6, 1.0))))
    h, w = (long_side, short_side) if rng.random() < 0.3 else (short_side, long_side)
    blobs = [_random_blob(rng, class_id, h, w, (0.08, 0.5))]
    if num_classes > 1 and rng.random() < SECOND_OBJECT:
        other = int(rng.integers(1, num_classes))
        other += other >= class_id  # any class but the main one
        blobs.append(_random_blob(rng, other, h, w, (0.05, 0.25)))
    band = max(1.0, 0.02 * min(h, w))  # half-width of the unlabelled border band
    gt, distances = _render(blobs, h, w, margin=band + 1.0)
    if rng.random() < 0.7:
        # Annotators leave fuzzy borders unlabelled: an arc of the border of one object.
        pick = int(rng.integers(len(blobs)))
        blob, distance = blobs[pick], distances[pick]
        start, span = rng.uniform(-np.pi, np.pi), rng.uniform(0.5, 2 * np.pi)
        ys, xs = np.nonzero(np.abs(distance) < band)
        in_arc = np.mod(blob.angle(ys, xs) - start, 2 * np.pi) < span
        gt[ys[in_arc], xs[in_arc]] = IGNORE

    error = 1.0 - float(quality)
    guessed = []
    for blob in blobs:
        seen = _perturbed(blob, rng, error)
        if rng.random() >= quality:
            seen.class_id = int(rng.integers(1, num_classes + 1))
        guessed.append(seen)
    pred, _ = _render(guessed, h, w)
    if error > 0 and rng.random() < error:
        # A false positive: a small piece of background called some class.
        pred[_render([_random_blob(rng, int(rng.integers(1, num_classes + 1)), h, w, (0.03, 0.1))],
                     h, w)[0] > 0] = int(rng.integers(1, num_classes + 1))
    if rng.random() < out_of_range:
        size = max(1, min(h, w) // 8)
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        pred[y:y + size, x:x + size] = num_classes + 1 + int(rng.integers(0, 50))
    return gt, pred


def synthetic_photo(gt: np.ndarray, seed: int, index: int) -> np.ndarray:
    """An RGB "photo" of a GT id map: a shaded background and, per class, its own colour and stripes."""
    rng = np.random.default_rng([int(seed), int(index), 0xF070])
    h, w = gt.shape
    top, bottom = rng.uniform(60, 190, size=(2, 3))
    shade = np.linspace(0.0, 1.0, h)[:, None, None]
    photo = np.repeat(top * (1 - shade) + bottom * shade, w, axis=1)
    for class_id in np.unique(gt):
        if class_id in (OTHER, IGNORE):
            continue
        # Colour and texture depend on the class only, so a method could learn them.
        look = np.random.default_rng([int(class_id), 0xC0105])
        colour = look.uniform(30, 230, size=3)
        angle, period = look.uniform(0, np.pi), look.uniform(3, 9)
        ys, xs = np.nonzero(gt == class_id)
        stripes = np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
        photo[ys, xs] = colour * (0.8 + 0.2 * stripes)[:, None]
    fuzzy = gt == IGNORE
    photo[fuzzy] = 0.5 * photo[fuzzy] + 60
    photo += rng.normal(0, 5, size=photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8)


def _write_jpeg(path: str, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, "RGB").save(tmp, format="JPEG", quality=90)


def _png_bytes(ids: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(encode(ids), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Item:
    """One synthetic image and where its pieces go (empty: not written)."""

    index: int
    class_id: int
    gt: str = ""                     # GT mask PNG
    pred: str = ""                   # prediction PNG (cluster ids)
    photos: Tuple[str, ...] = ()     # JPEGs of the image
    entry: str = ""                  # archive entry of the GT mask (its bytes go back to the main process)


@dataclass(frozen=True)
class _Maker:
    """Picklable worker job: renders items and writes their files."""

    seed: int
    num_classes: int
    sides: Tuple[int, int]
    quality: float
    out_of_range: float
    lut: np.ndarray  # class id -> id written in the prediction (0 stays 0)

    def __call__(self, items: Sequence[Item]) -> List[Tuple[str, bytes]]:
        entries = []
        for item in items:
            gt, pred = synthetic_pair(self.seed, item.index, item.class_id, self.num_classes, self.sides,
                                      self.quality, self.out_of_range)
            if item.gt:
                write_mask(item.gt, gt)
            if item.pred:
                in_classes = pred <= self.num_classes
                pred[in_classes] = self.lut[pred[in_classes]]
                write_mask(item.pred, pred)
            if item.photos:
                photo = synthetic_photo(gt, self.seed, item.index)
                for path in item.photos:
                    _write_jpeg(path, photo)
            if item.entry:
                entries.append((item.entry, _png_bytes(gt)))
        return entries


def _make(items: Sequence[Item], maker: _Maker, workers: int, quiet: bool,
          desc: str) -> Iterator[Tuple[str, bytes]]:
    """Render ``items`` (in ``workers`` processes); yields the archive entries in item order."""
    if workers < 0:
        raise UserError(f"workers={workers}: use 0 (no worker processes) or more")
    size = max(1, min(32, len(items) // (8 * max(1, workers))))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with progress(total=len(items), desc=desc, quiet=quiet, unit="img") as bar:
        if workers == 0:
            results: Iterable[List[Tuple[str, bytes]]] = map(maker, chunks)
            for chunk, entries in zip(chunks, results):
                yield from entries
                bar.update(len(chunk))
        else:
            from ..evaluation.engine.parallel import watch_parent  # the demo sits above the engine

            with ProcessPoolExecutor(max_workers=workers, initializer=watch_parent) as pool:
                for chunk, entries in zip(chunks, pool.map(maker, chunks)):
                    yield from entries
                    bar.update(len(chunk))


def _prepare(meta, subset: SubsetLike, seed: int, permute: bool, quality: float,
             out_of_range: float, sides: Tuple[int, int]) -> Tuple[Subset, Dict[str, int], _Maker]:
    """Checked parameters: the subset, its wnid -> class id table and the worker job."""
    subset = get_subset(subset)
    k = subset.num_classes
    if not 0.0 <= quality <= 1.0 or not 0.0 <= out_of_range <= 1.0:
        raise UserError(f"quality={quality}, out_of_range={out_of_range}: both must lie in 0..1")
    rng = np.random.default_rng([int(seed), k, 0xC1])
    permutation = (rng.permutation(k) + 1 if permute else np.arange(1, k + 1)).astype(np.int32)
    lut = np.concatenate([[OTHER], permutation]).astype(np.int32)
    maker = _Maker(int(seed), k, (int(sides[0]), int(sides[1])), float(quality), float(out_of_range), lut)
    return subset, meta.class_ids(subset), maker


def permutation_of(maker: _Maker) -> np.ndarray:
    """permutation[c - 1] = the cluster id class c is written as."""
    return maker.lut[1:].astype(np.int64)


def _class_of(rel: str, class_ids: Dict[str, int], subset: Subset, what: str) -> int:
    wnid = rel.split("/", 1)[0]
    if wnid not in class_ids:
        raise UserError(f"{what} entry {rel} is in folder {wnid}, not a {subset.name} category: the "
                        "metadata is inconsistent; regenerate or re-download it")
    return class_ids[wnid]


def write_synthetic_benchmark(out_dir: PathLike, meta, subset: SubsetLike, *,
                              sides: Tuple[int, int] = (24, 500), seed: int = 0, permute: bool = True,
                              quality: float = 0.8, out_of_range: float = 0.0, workers: int = 0,
                              quiet: bool = False) -> Dict[str, object]:
    """Write ``out_dir/gt`` and ``out_dir/pred`` masks for every line of the subset's validation list.

    Prediction ids are cluster ids: class c is written as ``permutation[c - 1]`` (identity unless
    ``permute``). Returns {"gt_dir", "pred_dir", "permutation", "images"}.
    """
    subset, class_ids, maker = _prepare(meta, subset, seed, permute, quality, out_of_range, sides)
    out_dir = Path(out_dir)
    gt_dir, pred_dir = out_dir / "gt", out_dir / "pred"
    items = [Item(index, _class_of(mask, class_ids, subset, "validation list"),
                  gt=str(gt_dir / mask), pred=str(pred_dir / mask))
             for index, (_image, mask) in enumerate(meta.validation_names(subset))]
    for _ in _make(items, maker, workers, quiet, "synthetic masks"):
        pass
    return {"gt_dir": gt_dir, "pred_dir": pred_dir, "permutation": permutation_of(maker), "images": len(items)}


#: Index ranges of the splits, so every image has its own seed.
_OFFSET = {"validation": 0, "test": 1_000_000, "train-semi": 2_000_000, "train": 3_000_000}
LAYOUTS = ("imagenet", "prepared")


def write_synthetic_dataset(out_dir: PathLike, meta, subset: SubsetLike, *, layout: str = "imagenet",
                            sides: Tuple[int, int] = (24, 200), seed: int = 0, permute: bool = True,
                            quality: float = 0.8, out_of_range: float = 0.0, train_per_class: int = 2,
                            predictions_dir: Optional[PathLike] = None, workers: int = 0,
                            quiet: bool = False) -> Dict[str, object]:
    """A whole synthetic ImageNet-S: photos, GT masks and a method's predictions (cluster ids).

    ``layout="imagenet"``: ``out_dir/imagenet/{train,val}`` (an ImageNet-1k copy, val in class folders)
    and ``out_dir/ImageNetS{K}-synthetic.zip`` (shaped like the official mask archive), the input of
    ``imagenets prepare``. ``layout="prepared"``: ``out_dir/ImageNetS{K}/`` as prepare leaves it.
    Both: ``<predictions_dir, default out_dir/predictions>/{validation,test}/<wnid>/<name>.png``.
    Returns the paths, the permutation and the image counts.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    subset, class_ids, maker = _prepare(meta, subset, seed, permute, quality, out_of_range, sides)
    out = Path(out_dir)
    predictions = Path(predictions_dir) if predictions_dir is not None else out / "predictions"
    if layout == "imagenet":
        base = out / "imagenet"
        archive: Optional[Path] = out / f"{subset.name}-synthetic.zip"
    else:
        base = out / subset.name
        archive = None

    def mask_target(folder: str, mask: str) -> Dict[str, str]:
        if archive is not None:
            return {"entry": f"{subset.name}/{folder}/{mask}"}
        return {"gt": str(base / folder / mask)}

    items: List[Item] = []
    counts: Dict[str, int] = {}
    for split in ("validation", "test"):
        pairs = meta.mapping(subset, split)
        counts[split] = len(pairs)
        for number, (src, dst) in enumerate(pairs):
            photo = base / "val" / src if archive is not None else base / split / dst
            pred = str(predictions / split / (os.path.splitext(dst)[0] + ".png"))
            extra = mask_target(MASK_FOLDERS["validation"], os.path.splitext(dst)[0] + ".png") \
                if split == "validation" else {}
            items.append(Item(_OFFSET[split] + number, _class_of(dst, class_ids, subset, f"{split} mapping"),
                              pred=pred, photos=(str(photo),), **extra))
    semi = meta.train_semi_names(subset)
    counts["train-semi"] = len(semi)
    for number, (image, mask) in enumerate(semi):
        # The image also lies in its ImageNet train folder, named before the "_" of its file name.
        source = "/".join(train_semi_source(image))
        photos = (str(base / "train" / source),) if archive is not None else (
            str(base / "train-semi" / image), str(base / "train" / source))
        items.append(Item(_OFFSET["train-semi"] + number, _class_of(mask, class_ids, subset, "train-semi list"),
                          photos=photos, **mask_target(MASK_FOLDERS["train-semi"], mask)))
    train = 0
    for wnid, class_id in class_ids.items():
        for n in range(train_per_class):
            items.append(Item(_OFFSET["train"] + train, class_id,
                              photos=(str(base / "train" / wnid / f"{wnid}_{10000 + n}.JPEG"),)))
            train += 1
    counts["train"] = train + len(semi)

    made = _make(items, maker, workers, quiet, "synthetic dataset")
    if archive is None:
        for _ in made:
            pass
    else:
        # Stored, not deflated: PNGs gain nothing, as in the official archive.
        with atomic_path(archive) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zipped:
                for name, data in made:
                    info = zipfile.ZipInfo(name, date_time=(2022, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16  # a plain file, read-write for its owner
                    zipped.writestr(info, data)
    return {"root": base, "annotations_zip": archive,
            "pred_dirs": {split: predictions / split for split in ("validation", "test")},
            "permutation": permutation_of(maker), "images": counts}

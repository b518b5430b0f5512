"""Torch datasets over a prepared ImageNet-S tree (``imagenets prepare``'s ``DEST/ImageNetS{K}``).

    from imagenets.datasets import ImageNetS
    from imagenets.transforms import training_transforms
    data = ImageNetS("DEST", 50, "train-semi", transforms=training_transforms())
    image, mask = data[0]   # mask: int64 ids, 0 other, 1..K classes, 1000 ignore

With no metadata at hand (no ``meta``/``meta_dir``, no ``$IMAGENETS_META_DIR``, no complete cache) the
tree alone decides, offline: the class ids are the 1-based positions of the sorted class folders of
``train/`` (the sorted category list, when the train split is complete), the samples what is on disk.
"""

from __future__ import annotations

import numbers
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .codec import MAX_PIXELS, open_image, read_mask, write_mask
from .errors import UserError, first_few, warn
from .idmaps import as_ids, resize_nearest
from .metadata import SOURCE_CACHE, Metadata, cache_complete, load_metadata, resolve_source
from .names import relative_path_problem
from .transforms import image_size
from .subsets import IGNORE, MASK_FOLDERS, SPLITS, Subset, get_subset, subset_folder

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
#: How many missing paths an error names.
SHOW = 3
#: What ``ImageNetS.source`` says when the tree alone decides.
FROM_TREE = "tree"


def subset_root(root: Union[str, "os.PathLike[str]"], subset: Subset) -> Path:
    """``root`` itself if it is the subset's folder, else ``root/ImageNetS{K}`` (``root`` = DEST)."""
    found = subset_folder(root, subset)
    if found is not None:
        return found
    raise UserError(f"{root} holds no {subset.name}/ folder: pass the --save-dir of `imagenets prepare` "
                    f"(or DEST/{subset.name}); build it with `imagenets prepare --mode {subset.mode}`")


def _missing_error(what: str, missing: List[str], total: int, root: Path, split: str, subset: Subset) -> UserError:
    step = "annotations" if what == "masks" else split
    return UserError(f"{len(missing)} of {total} {split} {what} are missing under {root} (first: "
                     f"{first_few(missing, SHOW)}): complete the tree with `imagenets prepare --mode "
                     f"{subset.mode} --steps {step}`, and check it with `imagenets verify`")


def metadata_at_hand(meta_dir: Optional[Union[str, "os.PathLike[str]"]] = None) -> Optional[Metadata]:
    """The metadata without a download: ``meta_dir``, ``$IMAGENETS_META_DIR`` or a complete cache; else None."""
    _root, source = resolve_source(meta_dir)
    if source == SOURCE_CACHE and not cache_complete():
        return None
    return load_metadata(meta_dir, quiet=True)


def class_folders(folder: Path) -> List[str]:
    """Sorted names of the class folders (wnids) of a split folder; none if it is absent."""
    if not folder.is_dir():
        return []
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def tree_images(folder: Path) -> List[str]:
    """``wnid/name`` of every image in the class folders of a split folder, sorted."""
    return [f"{wnid}/{name}" for wnid in class_folders(folder)
            for name in sorted(os.listdir(folder / wnid)) if name.lower().endswith(IMAGE_SUFFIXES)]


def tree_categories(root: Path, subset: Subset) -> Optional[List[str]]:
    """The subset's wnids in class-id order, from the tree: the class folders of ``train/`` if it has all
    K, else of every split folder together; None if fewer than K show up."""
    wnids = class_folders(root / "train")
    if len(wnids) != subset.num_classes:
        folders = ["train", "validation", "test", "train-semi", *MASK_FOLDERS.values()]
        wnids = sorted(set().union(*(class_folders(root / name) for name in folders)))
    return wnids if len(wnids) == subset.num_classes else None


def prediction_name(image: str) -> str:
    """Where the prediction of an image goes: ``wnid/X.JPEG`` -> ``wnid/X.png``."""
    return os.path.splitext(image)[0] + ".png"


class ImageNetS(Dataset):
    """One split of a prepared ImageNet-S subset; every sample is ``(image, target)``.

    The target: for ``validation`` / ``train-semi`` the mask, an HxW int64 tensor of ids; for ``train``
    the class index (class id - 1: the position of the folder's wnid in the sorted category list); for
    ``test`` ``{"name": "<wnid>/<name>.png", "size": (H, W)}``, where its prediction goes (see
    :func:`save_prediction`) and the size it must have. ``transforms(image, mask)`` is a joint transform
    (see :mod:`imagenets.transforms`); ``transform`` / ``target_transform`` then apply to the image /
    the target alone. Lists and class names come from the metadata when it is at hand, else from the tree.
    """

    def __init__(self, root: Union[str, "os.PathLike[str]"], subset: Union[Subset, int, str], split: str,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 transforms: Optional[Callable] = None, meta_dir: Optional[str] = None,
                 meta: Optional[Metadata] = None, check: bool = True):
        if split not in SPLITS:
            raise UserError(f"split {split!r}: use one of {', '.join(SPLITS)}")
        self.subset = get_subset(subset)
        self.split = split
        self.root = subset_root(root, self.subset)
        self.transform, self.target_transform, self.transforms = transform, target_transform, transforms
        self.meta = meta if meta is not None else metadata_at_hand(meta_dir)
        #: Where the lists came from: the metadata's source, or "tree".
        self.source = self.meta.source if self.meta is not None else FROM_TREE
        self._classes = self.meta.categories(self.subset) if self.meta is not None else \
            tree_categories(self.root, self.subset)
        self._class_names = self.meta.class_names(self.subset) if self.meta is not None else self._classes
        folder = self.root / split
        if not folder.is_dir():
            raise UserError(f"{folder} is not there: build the {split} split with `imagenets prepare --mode "
                            f"{self.subset.mode} --steps {split}`")
        #: (image path, mask path or class index or None) per sample.
        self.samples: List[Tuple[str, Any]] = []
        if split == "train":
            self.samples = self._train_samples(folder)
            #: Relative image path (``wnid/X.JPEG``) and prediction name (``wnid/X.png``) per sample.
            self.names = [Path(path).relative_to(folder).as_posix() for path, _ in self.samples]
            self.prediction_names = [prediction_name(name) for name in self.names]
        else:
            listed = self._listed() if self.meta is not None else [
                (image, prediction_name(image)) for image in tree_images(folder)]
            self.names = [image for image, _ in listed]
            self.prediction_names = [mask for _, mask in listed]
            masks = self.root / MASK_FOLDERS[split] if split in MASK_FOLDERS else None
            if masks is not None and not masks.is_dir():
                raise UserError(f"{masks} is not there: fetch the masks with `imagenets prepare --mode "
                                f"{self.subset.mode} --steps annotations`")
            self.samples = [(str(folder / image), None if masks is None else str(masks / mask))
                            for image, mask in listed]
            if self.meta is None:
                self._check_count()
        if check:
            self._check_files()

    def _listed(self) -> List[Tuple[str, str]]:
        """(image, mask / prediction name) of the split's official list."""
        assert self.meta is not None
        if self.split == "test":
            return [(image, prediction_name(image)) for image in self.meta.split_images(self.subset, "test")]
        if self.split == "validation":
            return self.meta.validation_names(self.subset)
        return self.meta.train_semi_names(self.subset)

    def _check_count(self) -> None:
        expected = self.subset.count(self.split)
        if len(self.names) != expected:
            warn(f"{self.root / self.split} holds {len(self.names)} images, the official {self.subset.name} "
                 f"{self.split} split {expected}: with no metadata at hand the tree alone decides; check the "
                 "tree with `imagenets verify`, or pass meta_dir=")

    @property
    def classes(self) -> List[str]:
        """wnids in class-id order: ``classes[i]`` has class id ``i + 1``."""
        if self._classes is None:
            raise UserError(f"the class list of {self.root} is unknown: with no metadata at hand it comes from "
                            f"the class folders of train/, which should be {self.subset.num_classes}; prepare "
                            f"the train split (`imagenets prepare --mode {self.subset.mode} --steps train`) or "
                            "pass meta_dir=")
        return list(self._classes)

    @property
    def class_names(self) -> List[str]:
        """Human-readable names aligned with ``classes`` (the wnids stand in without metadata)."""
        self.classes  # the same error when unknown
        return list(self._class_names)

    def _train_samples(self, folder: Path) -> List[Tuple[str, Any]]:
        samples, absent = [], []
        for index, wnid in enumerate(self.classes):
            class_dir = folder / wnid
            if not class_dir.is_dir():
                absent.append(str(class_dir))
                continue
            names = sorted(n for n in os.listdir(class_dir) if n.lower().endswith(IMAGE_SUFFIXES))
            samples += [(str(class_dir / n), index) for n in names]
        if absent:
            raise _missing_error("class folders", absent, len(self.classes), self.root, "train", self.subset)
        return samples

    def _check_files(self) -> None:
        """Every listed file must exist: a clear error now beats a crash in a DataLoader worker later."""
        if self.split == "train":
            return  # built from what is on disk
        missing = [path for path, _ in self.samples if not os.path.isfile(path)]
        if missing:
            raise _missing_error("images", missing, len(self.samples), self.root, self.split, self.subset)
        if self.split in MASK_FOLDERS:
            missing = [mask for _, mask in self.samples if not os.path.isfile(mask)]
            if missing:
                raise _missing_error("masks", missing, len(self.samples), self.root, self.split, self.subset)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"ImageNetS({str(self.root)!r}, {self.subset.name}, {self.split!r}, {len(self)} samples, "
                f"lists from {self.source})")

    @property
    def num_classes(self) -> int:
        return self.subset.num_classes

    def prediction_name(self, index: int) -> str:
        """Where the prediction of sample ``index`` goes under a prediction folder: ``<wnid>/<name>.png``."""
        return self.prediction_names[index]

    def load_image(self, index: int) -> Image.Image:
        path = self.samples[index][0]
        try:
            with open_image(path) as image:
                return image.convert("RGB")
        except FileNotFoundError:
            raise UserError(f"image {path} not found: rerun `imagenets prepare` to complete the tree") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read image {path} ({exc}): the file is corrupt; remove it and rerun "
                            "`imagenets prepare`") from None

    def load_mask(self, index: int) -> torch.Tensor:
        """HxW int64 ids of sample ``index`` (validation and train-semi only)."""
        image, mask = self.samples[index]
        if self.split not in MASK_FOLDERS:
            raise UserError(f"the {self.split} split has no masks")
        return torch.from_numpy(read_mask(mask).astype("int64"))

    def _target(self, index: int, image: Image.Image) -> Any:
        if self.split == "test":
            return {"name": self.prediction_name(index), "size": (image.height, image.width)}
        if self.split == "train":
            return self.samples[index][1]
        mask = self.load_mask(index)
        if (image.height, image.width) != tuple(mask.shape):
            raise UserError(f"{self.samples[index][1]} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{self.samples[index][0]} is {image.width}x{image.height}: the tree mixes files "
                            "of different versions; rerun `imagenets prepare`")
        return mask

    def __getitem__(self, index: int) -> Tuple[Any, Any]:
        image = self.load_image(index)
        target = self._target(index, image)
        mask = target if isinstance(target, torch.Tensor) else None
        if self.transforms is not None:
            image, transformed = self.transforms(image, as_mask(mask))
            if mask is not None:
                mask = target = plain_tensor(transformed)
        if self.transform is not None:
            image = self.transform(image)
        if mask is not None:
            self._check_aligned(index, image, mask)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _check_aligned(self, index: int, image: Any, mask: Any) -> None:
        """The transformed image and mask must still cover the same pixels: refuse sizes that disagree."""
        sized = isinstance(image, Image.Image) or (isinstance(image, torch.Tensor) and image.dim() >= 2)
        if not sized or not isinstance(mask, torch.Tensor) or mask.dim() < 2:
            return  # something else than an image and a mask (e.g. a user's features): nothing to compare
        size = image_size(image)
        if size != tuple(mask.shape[-2:]):
            raise UserError(f"the transforms made the image of sample {index} {size[1]}x{size[0]} but its mask "
                            f"{mask.shape[-1]}x{mask.shape[-2]} ({self.samples[index][1]}): transform both "
                            "together: joint transforms (imagenets.transforms) or torchvision v2 transforms "
                            "as transforms= (the mask comes as a tv_tensors.Mask); transform= and "
                            "target_transform= see one of them alone")


def as_mask(mask: Optional[torch.Tensor]) -> Any:
    """The mask as torchvision's ``tv_tensors.Mask`` when torchvision is loaded (the user's v2 transforms
    then resize, crop and flip it with the image, by nearest neighbour); else as it is."""
    if mask is None or "torchvision" not in sys.modules:  # no torchvision transforms in use: stay light
        return mask
    try:
        from torchvision import tv_tensors  # torchvision >= 0.16
    except Exception:  # an older or broken torchvision: its transforms cannot take a Mask either
        return mask
    return tv_tensors.Mask(mask)


def plain_tensor(value: Any) -> Any:
    """A ``tv_tensors`` subclass back to a plain tensor (collate, metrics and losses expect one)."""
    if isinstance(value, torch.Tensor) and type(value) is not torch.Tensor:
        return value.as_subclass(torch.Tensor)
    return value


# ---- batches and predictions --------------------------------------------------------------------

def collate_list(batch: Sequence[Tuple[Any, Any]]) -> Tuple[List[Any], List[Any]]:
    """``DataLoader(collate_fn=collate_list)``: a batch as (list of images, list of targets), sizes kept
    as they are, so the metrics are those of the whole images."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def collate_padded(batch: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``DataLoader(collate_fn=collate_padded)``: (image, mask) samples of different sizes stacked, padded
    at the bottom/right to the largest: images with 0, masks with the ignore id 1000 (never scored).

    Every metric of a padded sample equals that of the sample alone but the boundary ones, whose width
    follows the image size; :func:`collate_list` keeps them exact.
    """
    images, masks = zip(*batch)
    if not all(isinstance(x, torch.Tensor) for x in images + masks):
        raise TypeError("collate_padded needs tensor images and masks: put ToTensor() in the transforms "
                        "(e.g. evaluation_transforms()), or use collate_list")
    h = max(int(image.shape[-2]) for image in images)
    w = max(int(image.shape[-1]) for image in images)

    def pad(x: torch.Tensor, value: float) -> torch.Tensor:
        return F.pad(x, (0, w - int(x.shape[-1]), 0, h - int(x.shape[-2])), value=value)

    return torch.stack([pad(x, 0.0) for x in images]), torch.stack([pad(m, IGNORE) for m in masks])


def _mask_size(size: Any) -> Tuple[int, int]:
    """``size`` as (H, W): two integers (ints, numpy or 0-d tensors) >= 1, within MAX_PIXELS."""
    try:
        values = [v.item() if hasattr(v, "item") else v for v in size]
    except (TypeError, ValueError):
        values = None
    if (values is None or len(values) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)):
        raise TypeError(f"size={size!r}: pass (H, W), two integers, e.g. target['size'] of the test split")
    h, w = (int(v) for v in values)
    if h < 1 or w < 1 or h * w > MAX_PIXELS:
        raise ValueError(f"size=({h}, {w}): a mask is at least 1x1 and at most {MAX_PIXELS:,} pixels "
                         "(ImageNet's images are far smaller)")
    return h, w


def _resized(ids: np.ndarray, size: Any) -> np.ndarray:
    """Nearest-neighbour resize of an id map to (H, W) (never blends ids)."""
    h, w = _mask_size(size)
    return ids if (h, w) == ids.shape else resize_nearest(ids, h, w)


def save_prediction(out_dir: Union[str, "os.PathLike[str]"], name: str, ids: Any,
                    size: Optional[Sequence[Any]] = None) -> Path:
    """Write an HxW id map (numpy, or a torch tensor on any device) as the mask PNG ``out_dir/name``
    (id = R + 256*G), atomically; ``size`` (H, W) resizes it first (nearest), e.g. to the original image's
    size a prediction must have. ``name`` is ``<wnid>/<name>.png``, as the test split's target gives it."""
    name = os.fspath(name)
    if not isinstance(name, str) or relative_path_problem(name) or not name.endswith(".png"):
        raise ValueError(f"prediction name {name!r}: use the relative <wnid>/<name>.png of its image")
    ids = as_ids(ids, "the prediction")
    if ids.ndim != 2 or 0 in ids.shape:
        raise ValueError(f"the prediction has shape {tuple(ids.shape)}: pass one HxW id map (at least 1x1)")
    path = Path(out_dir) / name
    write_mask(path, _resized(ids, size) if size is not None else ids)
    return path

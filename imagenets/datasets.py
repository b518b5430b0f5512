"""Torch datasets over a prepared ImageNet-S tree (``imagenets prepare``'s ``DEST/ImageNetS{K}``).

    from imagenets.datasets import ImageNetS
    from imagenets.transforms import training_transforms
    data = ImageNetS("DEST", 50, "train-semi", transforms=training_transforms())
    image, mask = data[0]   # mask: int64 ids, 0 other, 1..K classes, 1000 ignore
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Union

import torch
from PIL import Image
from torch.utils.data import Dataset

from .codec import open_image, read_mask
from .errors import UserError
from .metadata import Metadata, load_metadata
from .subsets import Subset, get_subset

SPLITS = ("train", "train-semi", "validation", "test")
#: Split -> folder of its masks (splits without masks are absent).
MASK_FOLDERS = {"validation": "validation-segmentation", "train-semi": "train-semi-segmentation"}
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
#: How many missing paths an error names.
SHOW = 3


def subset_root(root: Union[str, "os.PathLike[str]"], subset: Subset) -> Path:
    """``root`` itself if it is the subset's folder, else ``root/ImageNetS{K}`` (``root`` = DEST)."""
    root = Path(root).expanduser()
    inner = root / subset.name
    if inner.is_dir():
        return inner
    if root.is_dir() and (root.name == subset.name or any((root / s).is_dir() for s in SPLITS)):
        return root
    raise UserError(f"{root} holds no {subset.name}/ folder: pass the --save-dir of `imagenets prepare` "
                    f"(or DEST/{subset.name}); build it with `imagenets prepare --mode {subset.mode}`")


def _missing_error(what: str, missing: List[str], total: int, root: Path, split: str, subset: Subset) -> UserError:
    step = "annotations" if what == "masks" else split
    return UserError(f"{len(missing)} of {total} {split} {what} are missing under {root} (first: "
                     f"{', '.join(missing[:SHOW])}): complete the tree with `imagenets prepare --mode "
                     f"{subset.mode} --steps {step}`, and check it with `imagenets verify`")


class ImageNetS(Dataset):
    """One split of a prepared ImageNet-S subset.

    ``validation`` / ``train-semi``: (image, mask) with the mask an HxW int64 tensor of ids;
    ``test``: the image; ``train``: (image, class index), the index = class id - 1, i.e. the
    position of the folder's wnid in the sorted category list. ``transforms(image, mask)`` is a
    joint transform (see :mod:`imagenets.transforms`); ``transform`` / ``target_transform`` then
    apply to the image / the mask (or class index) alone.
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
        meta = meta or load_metadata(meta_dir, quiet=True)
        self.classes: List[str] = meta.categories(self.subset)
        self.class_names: List[str] = meta.class_names(self.subset)
        folder = self.root / split
        if not folder.is_dir():
            raise UserError(f"{folder} is not there: build the {split} split with `imagenets prepare --mode "
                            f"{self.subset.mode} --steps {split}`")
        #: (image path, mask path or class index or None) per sample.
        self.samples: List[Tuple[str, Any]] = []
        if split == "train":
            self.samples = self._train_samples(folder)
        elif split == "test":
            self.samples = [(str(folder / rel), None) for rel in meta.split_images(self.subset, "test")]
        else:
            names = meta.validation_names(self.subset) if split == "validation" else \
                meta.train_semi_names(self.subset)
            masks = self.root / MASK_FOLDERS[split]
            if not masks.is_dir():
                raise UserError(f"{masks} is not there: fetch the masks with `imagenets prepare --mode "
                                f"{self.subset.mode} --steps annotations`")
            self.samples = [(str(folder / image), str(masks / mask)) for image, mask in names]
        if check:
            self._check_files()

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
        return f"ImageNetS({str(self.root)!r}, {self.subset.name}, {self.split!r}, {len(self)} samples)"

    @property
    def num_classes(self) -> int:
        return self.subset.num_classes

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

    def __getitem__(self, index: int):
        image = self.load_image(index)
        if self.split in ("test", "train"):
            target = self.samples[index][1]
            if self.transforms is not None:
                image, _ = self.transforms(image, None)
            if self.transform is not None:
                image = self.transform(image)
            if self.split == "test":
                return image
            if self.target_transform is not None:
                target = self.target_transform(target)
            return image, target
        mask = self.load_mask(index)
        if (image.height, image.width) != tuple(mask.shape):
            raise UserError(f"{self.samples[index][1]} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{self.samples[index][0]} is {image.width}x{image.height}: the tree mixes files "
                            "of different versions; rerun `imagenets prepare`")
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            mask = self.target_transform(mask)
        return image, mask

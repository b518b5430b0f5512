"""The ImageNet-S subset table: the single source of truth for K, official counts and merges.

Every script reads subsets from here (like cityscapesScripts' ``labels.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from .errors import UserError

#: Mask ids shared by every subset.
OTHER = 0
IGNORE = 1000

#: Official repository commit whose ``data/`` lists we pin.
META_COMMIT = "b2312ba7396151f883362bdc86d71469aa81066e"
#: Release address of the annotation archives (``{base}/ImageNetS{K}-{hex}.zip``).
RELEASE_URL = "https://github.com/LUSSeg/ImageNet-S/releases/download/ImageNet-S"

#: The splits of a prepared subset, each a folder of DEST/ImageNetS{K}/.
SPLITS = ("train", "train-semi", "validation", "test")
#: Split -> the folder of its masks, beside the split's images (the official archive's names too).
MASK_FOLDERS = {"validation": "validation-segmentation", "train-semi": "train-semi-segmentation"}
#: The splits a submission covers: test for the server, validation for a local check.
SUBMISSION_SPLITS = ("test", "validation")


@dataclass(frozen=True)
class Subset:
    """One ImageNet-S subset (ImageNet-S50, -S300 or -S919)."""

    num_classes: int
    train: int
    validation: int
    test: int
    train_semi: int
    annotation_md5: str
    #: wnid -> wnid it is merged into (only ImageNet-S919 has merges).
    merged: Dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"ImageNetS{self.num_classes}"

    @property
    def mode(self) -> str:
        """The value of ``--mode`` for this subset."""
        return str(self.num_classes)

    @property
    def annotation_archive(self) -> str:
        return f"{self.name}-{self.annotation_md5}.zip"

    def count(self, split: str) -> int:
        """Official number of images of a split."""
        return {"train": self.train, "validation": self.validation, "test": self.test,
                "train-semi": self.train_semi}[split]

    # File names of the official lists, relative to a metadata directory.
    @property
    def categories_file(self) -> str:
        return f"categories/ImageNetS_categories_im{self.num_classes}.txt"

    @property
    def validation_names_file(self) -> str:
        return f"names/ImageNetS_im{self.num_classes}_validation.txt"

    @property
    def train_semi_names_file(self) -> str:
        return f"names/ImageNetSemi_im{self.num_classes}_train.txt"

    def mapping_file(self, split: str) -> str:
        if split not in ("validation", "test"):
            raise ValueError(f"no mapping list for split {split!r}")
        return f"mapping/ImageNetS_im{self.num_classes}_mapping_{split}.txt"

    @property
    def list_files(self) -> Tuple[str, ...]:
        """The five official list files of this subset."""
        return (self.categories_file, self.validation_names_file, self.train_semi_names_file,
                self.mapping_file("validation"), self.mapping_file("test"))


SUBSETS: Dict[int, Subset] = {
    50: Subset(50, train=64431, validation=752, test=1682, train_semi=500,
               annotation_md5="a0fe9d82231f9bc4787ee76e304dfa51"),
    300: Subset(300, train=384862, validation=4097, test=9088, train_semi=3000,
                annotation_md5="dd8e42e156bac415a35c3c239de297bf"),
    919: Subset(919, train=1183322, validation=12419, test=27423, train_semi=9190,
                annotation_md5="5f7f58ae1003d21da9409a8576bf7680",
                merged={"n04356056": "n04355933", "n04493381": "n02808440",
                        "n03642806": "n03832673", "n04008634": "n03773504",
                        "n03887697": "n15075141"}),
}

MODES = tuple(str(k) for k in SUBSETS)


def get_subset(mode: Union[int, str, Subset]) -> Subset:
    """Subset for ``--mode`` (50, "300", "ImageNetS919"...); a UserError names the valid modes."""
    if isinstance(mode, Subset):
        return mode
    text = str(mode).strip()
    if text.lower().startswith("imagenets"):
        text = text[len("imagenets"):]
    try:
        return SUBSETS[int(text)]
    except (ValueError, KeyError):
        raise UserError(f"unknown --mode {mode!r}: use one of {', '.join(MODES)} "
                        "(ImageNet-S50, -S300, -S919)") from None


def subset_folder(path: Union[str, "os.PathLike[str]"], subset: Subset) -> Optional[Path]:
    """The prepared subset folder from DEST or DEST/ImageNetS{K} itself; None when it is neither."""
    root = Path(path).expanduser()
    if (root / subset.name).is_dir():
        return root / subset.name
    if root.is_dir() and (root.name == subset.name or any((root / split).is_dir() for split in SPLITS)):
        return root
    return None

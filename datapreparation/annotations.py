"""The annotation step: fetch the official mask archive, test it, extract its two mask folders safely."""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import List, Optional, Sequence

from imagenets.download import download, file_digest
from imagenets.errors import UserError
from imagenets.progress import progress
from imagenets.subsets import Subset

from .transfer import DestIndex, Plan, add_files, examples, fill_atomic

#: The archive folders extracted (everything else in it is left alone).
MASK_FOLDERS = ("validation-segmentation", "train-semi-segmentation")
SKIP_HINT = "rerun with --skip-checksum to use it anyway"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


@dataclass
class AnnotationJob:
    """The masks a subset lacks and where their archive comes from."""

    subset: Subset
    plan: Plan
    save_dir: str
    archive: str
    url: Optional[str]            # None: a user's --annotations-zip
    md5: Optional[str]            # None: --skip-checksum


def expected_masks(subset: Subset, meta, out: str) -> List[str]:
    """Every mask path the validation and train-semi lists name."""
    paths = [os.path.join(out, MASK_FOLDERS[0], mask) for _, mask in meta.validation_names(subset)]
    paths += [os.path.join(out, MASK_FOLDERS[1], mask) for _, mask in meta.train_semi_names(subset)]
    return paths


def unsafe_reason(info: zipfile.ZipInfo) -> Optional[str]:
    """Why extracting this entry could write outside its folder, or None if it is safe."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UserError(f"annotation archive {path} not found: check --annotations-zip") from None
    except _ZIP_ERRORS as exc:
        raise UserError(f"{path} is not a readable zip archive ({exc}): it is truncated or corrupt; "
                        "delete it and rerun to download it again (or pass a good copy with "
                        "--annotations-zip)") from None


def archive_for(subset: Subset, zips: Sequence[str]) -> str:
    """The ``--annotations-zip`` whose entries lie under ``ImageNetS{K}/``."""
    prefix = subset.name + "/"
    for path in zips:
        with _open_zip(path) as archive:
            if any(name.startswith(prefix) for name in archive.namelist()):
                return path
    raise UserError(f"none of --annotations-zip {', '.join(zips)} holds {prefix} entries: pass the "
                    f"{subset.annotation_archive} archive")


def plan_annotations(subset: Subset, meta, save_dir: str, dest: DestIndex, zips: Sequence[str],
                     release_url: str, skip_checksum: bool) -> AnnotationJob:
    """Which masks are missing; nothing is fetched when all are there."""
    out = os.path.join(save_dir, subset.name)
    plan = Plan(f"{subset.name} annotations")
    root = os.path.join(out, "")
    pairs = [(path[len(root):], path) for path in expected_masks(subset, meta, out)]
    add_files(plan, dest, pairs, link=False)
    archive = os.path.join(save_dir, subset.annotation_archive)
    url: Optional[str] = f"{release_url.rstrip('/')}/{subset.annotation_archive}"
    if plan.copies and zips:
        archive, url = archive_for(subset, zips), None
    md5 = None if skip_checksum else subset.annotation_md5
    return AnnotationJob(subset, plan, os.path.abspath(save_dir), archive, url, md5)


def fetch(job: AnnotationJob, quiet: bool) -> None:
    """Download the archive (resuming a ``.part``) or check the user's one, against the official MD5."""
    if job.url is not None:
        download(job.url, job.archive, md5=job.md5, keep_on_mismatch=True, mismatch_hint=SKIP_HINT,
                 quiet=quiet, desc=os.path.basename(job.archive))
        return
    if job.md5 and file_digest(job.archive, "md5") != job.md5:
        raise UserError(f"--annotations-zip {job.archive}: its MD5 is not {job.md5}, that of the "
                        f"official {job.subset.annotation_archive}; get that archive, or "
                        f"{SKIP_HINT}")


def members_to_extract(job: AnnotationJob, archive: zipfile.ZipFile) -> List[zipfile.ZipInfo]:
    """Check every entry (safe names, CRCs) and return those under the two mask folders."""
    for info in archive.infolist():
        reason = unsafe_reason(info)
        if reason:
            raise UserError(f"{job.archive}: entry {info.filename!r} is {reason}; refusing to extract "
                            "anything from this archive: use the official one")
    try:
        bad = archive.testzip()
    except _ZIP_ERRORS as exc:
        bad = f"? ({exc})"
    if bad:
        raise UserError(f"{job.archive} is corrupt (entry {bad} fails its CRC check): delete it and "
                        "rerun to download it again (or pass a good copy with --annotations-zip)")
    prefixes = tuple(f"{job.subset.name}/{folder}/" for folder in MASK_FOLDERS)
    return [info for info in archive.infolist()
            if not info.is_dir() and info.filename.startswith(prefixes)]


def _extract_to(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> None:
    with archive.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def extract(job: AnnotationJob, quiet: bool) -> int:
    """Extract missing masks, each through a temporary name; return how many were written."""
    written = 0
    made = set()
    with _open_zip(job.archive) as archive:
        members = members_to_extract(job, archive)
        for info in progress(members, desc=job.plan.label, quiet=quiet, unit="mask"):
            path = os.path.join(job.save_dir, *info.filename.split("/"))
            if os.path.lexists(path):
                continue
            folder = os.path.dirname(path)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            fill_atomic(path, lambda tmp, info=info: _extract_to(archive, info, tmp))
            written += 1
    lacking = [path for _, path in job.plan.copies if not os.path.isfile(path)]
    if lacking:
        raise UserError(f"{job.archive} lacks {len(lacking)} of the masks the lists name "
                        f"({examples(lacking, 3)}): is it the {job.subset.annotation_archive} archive?")
    return written


def run_annotations(job: AnnotationJob, quiet: bool) -> int:
    """Fetch (if masks are missing) and extract; return how many masks were written."""
    if not job.plan.copies:
        return 0
    fetch(job, quiet)
    return extract(job, quiet)

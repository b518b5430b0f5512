"""The annotation step: fetch the official mask archive, test it, extract its two mask folders safely.

:func:`check_archive` runs before any step writes (download, MD5, entries, every mask present);
:func:`run_annotations` then only extracts.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from typing import List, Optional, Sequence

from imagenets.download import download, file_digest
from imagenets.errors import UserError, first_few
from imagenets.progress import progress
from imagenets.subsets import MASK_FOLDERS, Subset
from imagenets.zipsafe import Entry, check_crcs, open_zip, vet_entries

from .transfer import DestIndex, Plan, add_files, fill_atomic

#: The archive folders extracted (everything else in it is left alone).
SKIP_HINT = "rerun with --skip-checksum to use it anyway"
_REFETCH = "delete it and rerun to download it again (or pass a good copy with --annotations-zip)"


@dataclass
class AnnotationJob:
    """The masks a subset lacks and where their archive comes from."""

    subset: Subset
    plan: Plan
    save_dir: str
    archive: str
    url: Optional[str]            # None: a user's --annotations-zip
    md5: Optional[str]            # None: --skip-checksum
    members: Optional[List[Entry]] = None   # set by check_archive: the entries to extract


def expected_masks(subset: Subset, meta, out: str) -> List[str]:
    """Every mask path the validation and train-semi lists name."""
    paths = [os.path.join(out, MASK_FOLDERS["validation"], mask) for _, mask in meta.validation_names(subset)]
    paths += [os.path.join(out, MASK_FOLDERS["train-semi"], mask) for _, mask in meta.train_semi_names(subset)]
    return paths


def _open_zip(path: str) -> zipfile.ZipFile:
    return open_zip(path, fix=f"it is truncated or corrupt; {_REFETCH}", missing_fix="check --annotations-zip")


def archive_for(subset: Subset, zips: Sequence[str]) -> str:
    """The ``--annotations-zip`` whose entries lie under ``ImageNetS{K}/``."""
    prefix = subset.name + "/"
    for path in zips:
        with _open_zip(path) as archive:
            if any(name.startswith(prefix) for name in archive.namelist()):
                return path
    raise UserError(f"none of --annotations-zip {', '.join(zips)} holds {prefix} entries: pass the "
                    f"{subset.annotation_archive} archive")


def plan_annotations(subset: Subset, meta, save_dir: str, dest: DestIndex,
                     release_url: str, skip_checksum: bool) -> AnnotationJob:
    """Which masks are missing; nothing is fetched when all are there."""
    out = os.path.join(save_dir, subset.name)
    plan = Plan(f"{subset.name} annotations")
    root = os.path.join(out, "")
    pairs = [(path[len(root):], path) for path in expected_masks(subset, meta, out)]
    add_files(plan, dest, pairs, link=False)
    archive = os.path.join(save_dir, subset.annotation_archive)
    url: Optional[str] = f"{release_url.rstrip('/')}/{subset.annotation_archive}"
    md5 = None if skip_checksum else subset.annotation_md5
    return AnnotationJob(subset, plan, os.path.abspath(save_dir), archive, url, md5)


def use_given_archive(job: AnnotationJob, zips: Sequence[str]) -> None:
    """Once the masks to write are known (missing or damaged ones): take them from the ``--annotations-zip``
    that holds this subset instead of downloading (no archive is opened when none is to be written)."""
    if job.plan.copies and zips:
        job.archive, job.url = archive_for(job.subset, zips), None


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


def members_to_extract(job: AnnotationJob, archive: zipfile.ZipFile) -> List[Entry]:
    """Check every entry (safe names, CRCs) and return those under the two mask folders."""
    entries = vet_entries(archive.infolist(), job.archive, max_size=None, max_entries=None,
                          fix="use the official archive")
    check_crcs(archive, job.archive, fix=_REFETCH)
    prefixes = tuple(f"{job.subset.name}/{folder}/" for folder in MASK_FOLDERS.values())
    return [entry for entry in entries if not entry.is_dir and entry.name.startswith(prefixes)]


def entry_name(job: AnnotationJob, rel: str) -> str:
    """The archive entry of a mask planned at ``rel`` (relative to ``DEST/ImageNetS{K}``)."""
    return f"{job.subset.name}/{rel.replace(os.sep, '/')}"


def check_archive(job: AnnotationJob, quiet: bool, dry_run: bool = False) -> Optional[str]:
    """Before any image is written: fetch the archive, check its MD5 and entries, and that it holds
    every mask still to write. Returns a note when ``dry_run`` leaves a download for the real run."""
    if not job.plan.copies:
        return None
    if dry_run and job.url is not None and not os.path.isfile(job.archive):
        return f"{job.plan.label}: {job.url} would be downloaded into {job.archive}"
    fetch(job, quiet)
    with _open_zip(job.archive) as archive:
        members = members_to_extract(job, archive)
    names = {entry.name for entry in members}
    lacking = [name for name in (entry_name(job, rel) for rel, _ in job.plan.copies) if name not in names]
    if lacking:
        raise UserError(f"{job.archive} lacks {len(lacking)} of the masks the lists name "
                        f"({first_few(lacking, 3, sep='; ', counted=True)}): is it the {job.subset.annotation_archive} archive? "
                        "(nothing was written)")
    job.members = members
    return None


def _extract_to(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> None:
    with archive.open(info) as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def extract(job: AnnotationJob, quiet: bool) -> int:
    """Extract the planned masks (missing or damaged) of a checked archive, each through a temporary name
    (which replaces a damaged one); return how many."""
    written = 0
    made = set()
    planned = {entry_name(job, rel) for rel, _ in job.plan.copies}
    with _open_zip(job.archive) as archive:
        members = [entry for entry in job.members or [] if entry.name in planned]
        for entry in progress(members, desc=job.plan.label, quiet=quiet, unit="mask"):
            path = os.path.join(job.save_dir, *entry.name.split("/"))
            folder = os.path.dirname(path)
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            fill_atomic(path, lambda tmp, entry=entry: _extract_to(archive, entry.info, tmp))
            written += 1
    lacking = [path for _, path in job.plan.copies if not os.path.isfile(path)]
    if lacking:
        raise UserError(f"{job.archive} lacks {len(lacking)} of the masks the lists name "
                        f"({first_few(lacking, 3, sep='; ', counted=True)}): is it the {job.subset.annotation_archive} archive?")
    return written


def run_annotations(job: AnnotationJob, quiet: bool) -> int:
    """Check the archive (if masks are missing and it was not checked yet) and extract; return the count."""
    if not job.plan.copies:
        return 0
    if job.members is None:
        check_archive(job, quiet)
    return extract(job, quiet)

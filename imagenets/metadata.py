"""The official ImageNet-S lists and class names, read from ``--meta-dir``, ``$IMAGENETS_META_DIR`` or a cache.

The cache (``$IMAGENETS_CACHE`` or ``~/.cache/imagenets``, then ``<commit>/``) is filled on first use
from the official repository at a pinned commit, every file checked against its pinned SHA-256, on
download and again on every load. Every list read, from any source, is hashed too: one that is not the
official one is used (a subset on purpose is legitimate) with a warning, and results say so
(``Metadata.official``). Every path a list holds must stay inside the folder it is joined to.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from . import digests
from .download import ChecksumError, DownloadError, download, file_digest
from .errors import UserError, info, warn
from .fileio import check_writable_dir, read_at_most
from .names import relative_path_problem
from .progress import progress
from .subsets import META_COMMIT, SUBSETS, Subset, get_subset

ENV_META_DIR = "IMAGENETS_META_DIR"
ENV_CACHE = "IMAGENETS_CACHE"
ENV_URL = "IMAGENETS_META_URL"
DEFAULT_URL = f"https://raw.githubusercontent.com/LUSSeg/ImageNet-S/{META_COMMIT}/data"

#: Where metadata can come from, as ``Metadata.source`` names it.
SOURCE_OPTION = "--meta-dir"
SOURCE_ENV = ENV_META_DIR
SOURCE_CACHE = "cache"

#: The fix for "no metadata at all": said in every error that lacks a source.
SOURCE_DIR_HINT = ("pass --meta-dir DIR (or set IMAGENETS_META_DIR) to a copy of the official ImageNet-S "
                   "data/ folder")
SOURCE_HINT = f"{SOURCE_DIR_HINT}, or run `imagenets meta download` once while online"

SubsetLike = Union[Subset, int, str]
Pair = Tuple[str, str]

#: The most bytes a list (or data.py) may hold: the largest official list is 2.1 MB.
LIST_MAX_BYTES = 64 << 20
DATA_PY_MAX_BYTES = 1 << 20
#: Metadata folders already warned about as not official, so that a process (the demo) says it once.
_WARNED: Set[str] = set()


# ---- where the metadata lives --------------------------------------------------------------

def base_url() -> str:
    """Address of the official ``data/`` folder (``$IMAGENETS_META_URL`` overrides it, e.g. a mirror)."""
    return (os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")


def cache_dir() -> Path:
    """``<$IMAGENETS_CACHE or ~/.cache/imagenets>/<commit>``: the 15 lists and ``data.py``."""
    root = os.environ.get(ENV_CACHE) or os.path.join("~", ".cache", "imagenets")
    return Path(root).expanduser() / META_COMMIT


def cache_files() -> List[str]:
    """Relative paths the cache holds when complete."""
    return list(digests.LIST_SHA256) + [digests.DATA_PY]


def _pinned_sha256(rel: str) -> str:
    # Read the digests at call time so that tests can monkeypatch them.
    return digests.DATA_PY_SHA256 if rel == digests.DATA_PY else digests.LIST_SHA256[rel]


def cache_problems() -> Dict[str, str]:
    """Cache files that are ``"missing"`` or ``"changed"`` (present without their pinned SHA-256).

    Every file is hashed on every call: the lists and data.py are 6 MB together, hashed in milliseconds,
    so a file edited and given its old size and time back is caught as well.
    """
    root = cache_dir()
    problems: Dict[str, str] = {}
    for rel in cache_files():
        path = root / rel
        if not path.is_file():
            problems[rel] = "missing"
        elif file_digest(path) != _pinned_sha256(rel):
            problems[rel] = "changed"
    return problems


def cache_complete() -> bool:
    """Every cache file is present with its pinned SHA-256."""
    return not cache_problems()


def fill_cache(force: bool = False, quiet: bool = False,
               problems: Optional[Dict[str, str]] = None) -> Path:
    """Download the missing or changed (with ``force``, all) metadata files to the cache; return its path.

    ``problems`` is ``cache_problems()`` if the caller has it. Files go to a staging folder first; only
    when every one has its pinned SHA-256 are they moved in, so a mismatch caches nothing. A dropped
    connection keeps the partial file for a resume.
    """
    target = cache_dir()
    problems = cache_problems() if problems is None else problems
    for rel, problem in problems.items():
        if problem == "changed":
            warn(f"{target / rel} does not have its pinned SHA-256 (cut short or edited?): "
                 "downloading it again")
    wanted = cache_files() if force else [rel for rel in cache_files() if rel in problems]
    if not wanted:
        return target
    # Before the download: a cache that cannot be written (a file in the way, no permission) is one line
    # naming where it comes from.
    check_writable_dir(f"the metadata cache (${ENV_CACHE}, else ~/.cache/imagenets)", target)
    staging = target.with_name(f".{target.name}.partial")
    base = base_url()
    info(f"downloading the ImageNet-S metadata (commit {META_COMMIT[:7]}) from {base} to {target}", quiet)
    try:
        with progress(total=len(wanted), desc="metadata", quiet=quiet, unit="file") as bar:
            for rel in wanted:
                download(f"{base}/{rel}", staging / rel, sha256=_pinned_sha256(rel), quiet=True)
                bar.update()
    except ChecksumError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{rel} downloaded from {exc.url} has SHA-256 {exc.got}, expected {exc.expected} "
                        f"(pinned for commit {META_COMMIT[:7]}): nothing was cached; if "
                        f"{ENV_URL} points at a mirror, make it serve that commit, else rerun later") from None
    except DownloadError as exc:
        raise DownloadError(f"cannot download the ImageNet-S metadata ({exc.url}: {exc.reason}); "
                            f"rerun when online to resume, or {SOURCE_HINT}", exc.url, exc.reason) from None
    for rel in wanted:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target / rel)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _checked_dir(path: Union[str, "os.PathLike[str]"], option: str) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        unset = ", or unset it to use the downloaded cache" if option == SOURCE_ENV else ""
        raise UserError(f"{option} {directory} is not a directory: point it at a copy of the official "
                        f"ImageNet-S data/ folder (categories/, names/, mapping/){unset}")
    return directory


def resolve_source(meta_dir: Optional[Union[str, "os.PathLike[str]"]] = None) -> Tuple[Path, str]:
    """(directory, source) by precedence: ``meta_dir``, ``$IMAGENETS_META_DIR``, the cache. Never downloads."""
    if meta_dir:
        return _checked_dir(meta_dir, SOURCE_OPTION), SOURCE_OPTION
    env = os.environ.get(ENV_META_DIR)
    if env:
        return _checked_dir(env, SOURCE_ENV), SOURCE_ENV
    return cache_dir(), SOURCE_CACHE


def load_metadata(meta_dir: Optional[Union[str, "os.PathLike[str]"]] = None, quiet: bool = False) -> "Metadata":
    """Metadata from ``--meta-dir``, else ``$IMAGENETS_META_DIR``, else the cache (filled on first use).

    Cache files are checked against their pinned SHA-256 on every load; a changed one is downloaded again.
    """
    root, source = resolve_source(meta_dir)
    if source == SOURCE_CACHE:
        problems = cache_problems()
        if problems:
            try:
                fill_cache(quiet=quiet, problems=problems)
            except DownloadError as exc:
                changed = [rel for rel in problems if problems[rel] == "changed"]
                if not changed:
                    raise
                more = f" (and {len(changed) - 1} more cached files)" if len(changed) > 1 else ""
                raise UserError(f"{root / changed[0]}{more} does not have its pinned SHA-256 (cut short or "
                                f"edited?) and cannot be downloaded again ({exc.reason}): run `imagenets "
                                f"meta download` when online to replace it, or {SOURCE_DIR_HINT}") from None
    return Metadata(root, source)


def _read_capped(path: Path, cap: int) -> bytes:
    """A metadata file's bytes; ValueError (not read whole) when it holds more than ``cap`` (or is endless)."""
    data = read_at_most(path, cap)
    if data is None:
        raise ValueError(f"larger than {cap >> 20} MiB: not a metadata file")
    return data


def official_size(rel: str) -> Optional[Tuple[int, str]]:
    """(entries, what they are) of the official list ``rel`` (``names/ImageNetS_im50_validation.txt``...)."""
    for subset in SUBSETS.values():
        sizes = {subset.categories_file: (subset.num_classes, "classes"),
                 subset.validation_names_file: (subset.validation, "images"),
                 subset.train_semi_names_file: (subset.train_semi, "images"),
                 subset.mapping_file("validation"): (subset.validation, "images"),
                 subset.mapping_file("test"): (subset.test, "images")}
        if rel in sizes:
            return sizes[rel]
    return None


# ---- class names from data.py (parsed, never executed) ---------------------------------------

def _class_targets(node: ast.AST) -> List[str]:
    """Names ``classes_*`` that an assignment node binds, as a module constant or an attribute."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return []
    names = [target.id if isinstance(target, ast.Name) else
             target.attr if isinstance(target, ast.Attribute) else "" for target in targets]
    return [name for name in names if name.startswith("classes_")]


def read_data_py(path: Path) -> Dict[str, Any]:
    """The first literal assigned to each ``classes_*`` anywhere in ``path``, read with ``ast`` only.

    The official file sets ``self.classes_K = "a, b, ..."`` in ``EvalDataset.__init__``, then rebinds it
    to ``['background'] + ....split(', ')``; older shapes are module constants. Only literals count.
    """
    fix = "use the official data/data.py, or remove it to fall back to classnames/"
    try:
        source = _read_capped(path, DATA_PY_MAX_BYTES)
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot parse {path} ({exc}): {fix}") from None
    except (RecursionError, MemoryError):  # an expression nested beyond what the parser can hold
        raise UserError(f"cannot parse {path}: it nests too deeply for Python's parser: {fix}") from None
    assignments = [node for node in ast.walk(tree) if _class_targets(node)]
    # ast.walk goes breadth-first; source order decides which assignment is "first".
    assignments.sort(key=lambda node: (node.lineno, node.col_offset))
    found: Dict[str, Any] = {}
    for node in assignments:
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = None  # not a literal: reported if this subset needs it and no literal follows
        for name in _class_targets(node):
            if found.get(name) is None:
                found[name] = value
    return found


def names_from_constant(value: Any, categories: List[str], where: str) -> List[str]:
    """Class names aligned with ``categories`` from a ``classes_K`` value of any accepted shape.

    Accepted: a list/tuple of names in class-id order, of (wnid, name) pairs, a dict wnid -> name,
    or one string with one name per line or names joined by ``", "`` (the official file) or ``","``.
    """
    count = len(categories)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(item, (list, tuple)) and len(item) == 2 for item in value):
        value = dict(value)
    if isinstance(value, dict):
        missing = [wnid for wnid in categories if not isinstance(value.get(wnid), str)]
        if missing:
            raise UserError(f"{where} has no name for {missing[0]} ({len(missing)} wnids missing): "
                            "use the official data/data.py, or remove it to fall back to classnames/")
        return [value[wnid].strip() for wnid in categories]
    if isinstance(value, str):
        for separator in ("\n", ", ", ","):
            parts = [part.strip() for part in value.split(separator) if part.strip()]
            if len(parts) == count:
                return parts
        value = None
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        if len(value) != count:
            raise UserError(f"{where} holds {len(value)} class names, expected {count}: "
                            "use the official data/data.py, or remove it to fall back to classnames/")
        return [item.strip() for item in value]
    raise UserError(f"{where} is not a list, dict or string of {count} class names: "
                    "use the official data/data.py, or remove it to fall back to classnames/")


# ---- the lists -----------------------------------------------------------------------------

def classnames_file(subset: SubsetLike) -> str:
    """Our ``wnid<TAB>name`` class-name list, relative to a metadata directory."""
    return f"classnames/ImageNetS_classnames_im{get_subset(subset).num_classes}.txt"


class Metadata:
    """The official lists of one metadata directory; each list is read once, on first use, hashed against
    its pinned digest (``lists``: rel -> official or not) and checked for paths that leave their folder."""

    def __init__(self, root: Union[str, "os.PathLike[str]"], source: str = SOURCE_OPTION) -> None:
        self.root = Path(root)
        self.source = source
        self._memo: Dict[Any, Any] = {}
        self.lists: Dict[str, bool] = {}

    @property
    def official(self) -> bool:
        """True when every list read so far is byte for byte the official one (what JSON results record
        as ``"official_lists"``)."""
        return all(self.lists.values())

    def _check_official(self, rel: str, data: bytes, entries: int) -> None:
        pinned = digests.LIST_SHA256.get(rel)
        if pinned is None:
            return
        self.lists[rel] = hashlib.sha256(data).hexdigest() == pinned
        folder = os.path.realpath(self.root)
        if self.lists[rel] or folder in _WARNED:
            return
        _WARNED.add(folder)  # one line per folder: the first list that differs says it for all of them
        count, what = official_size(rel) or (0, "entries")
        size = (f"{entries} {what}, as many as the official one but not the same" if entries == count
                else f"{entries} {what}; the official one has {count}")
        warn(f"{self.source} {self.root}: {rel} is not the official list ({size}): numbers computed on it "
             "are not the benchmark's, and JSON results record \"official_lists\": false")

    def __repr__(self) -> str:
        return f"Metadata({str(self.root)!r}, source={self.source!r})"

    def _fix(self) -> str:
        if self.source == SOURCE_CACHE:
            return "the cache is incomplete: run `imagenets meta download`"
        return (f"point {self.source} at a copy of the official ImageNet-S data/ folder, "
                "or unset it to use the downloaded cache")

    def _lines(self, rel: str) -> List[str]:
        key = ("lines", rel)
        if key not in self._memo:
            path = self.root / rel
            try:
                data = _read_capped(path, LIST_MAX_BYTES)
                text = data.decode("utf-8")
            except FileNotFoundError:
                raise UserError(f"{path} not found ({self.source}): {self._fix()}") from None
            except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
                raise UserError(f"cannot read {path} ({exc}): {self._fix()}") from None
            # splitlines() also takes CRLF; blank lines (a final newline) are not entries.
            self._memo[key] = [line.strip() for line in text.splitlines() if line.strip()]
            self._check_official(rel, data, len(self._memo[key]))
        return self._memo[key]

    def _unsafe(self, rel: str, number: int, name: str, problem: str) -> UserError:
        return UserError(f"{self.root / rel} line {number}: {name!r} is unsafe ({problem}): every path in a "
                         f"list must be relative and stay inside its folder; {self._fix()}")

    def _pairs(self, rel: str) -> List[Pair]:
        key = ("pairs", rel)
        if key not in self._memo:
            pairs = []
            for number, line in enumerate(self._lines(rel), 1):
                fields = line.split()
                if len(fields) != 2:
                    raise UserError(f"{self.root / rel} line {number} has {len(fields)} fields, expected "
                                    f"2 ('source target'): {self._fix()}")
                for name in fields:  # a list decides where files are read and written: none may leave
                    problem = relative_path_problem(name)
                    if problem:
                        raise self._unsafe(rel, number, name, problem)
                pairs.append((fields[0], fields[1]))
            self._memo[key] = pairs
        return list(self._memo[key])

    def categories(self, subset: SubsetLike) -> List[str]:
        """wnids in class-id order: class id = 1-based position in the sorted list."""
        subset = get_subset(subset)
        key = ("categories", subset.num_classes)
        if key not in self._memo:
            for number, wnid in enumerate(self._lines(subset.categories_file), 1):
                problem = relative_path_problem(wnid) or ("a '/'" if "/" in wnid else "") or (
                    "nothing but '.'" if wnid == "." else "")
                if problem:  # a wnid names a folder (train/<wnid>): one plain name
                    raise self._unsafe(subset.categories_file, number, wnid, problem)
            wnids = sorted(self._lines(subset.categories_file))
            if len(wnids) != subset.num_classes or len(set(wnids)) != len(wnids):
                raise UserError(f"{self.root / subset.categories_file} holds {len(set(wnids))} distinct "
                                f"wnids, {subset.name} has {subset.num_classes}: {self._fix()}")
            self._memo[key] = wnids
        return list(self._memo[key])

    def class_ids(self, subset: SubsetLike) -> Dict[str, int]:
        """wnid -> class id (1..K)."""
        return {wnid: index for index, wnid in enumerate(self.categories(subset), 1)}

    def class_names_file(self, subset: SubsetLike) -> Optional[Path]:
        """Where class names come from: ``data.py`` at the root, else ``classnames/``; None if neither."""
        for rel in (digests.DATA_PY, classnames_file(subset)):
            if (self.root / rel).is_file():
                return self.root / rel
        return None

    def class_names(self, subset: SubsetLike) -> List[str]:
        """Human-readable names aligned with ``categories(subset)`` (the wnids, with a warning, if none)."""
        subset = get_subset(subset)
        key = ("names", subset.num_classes)
        if key not in self._memo:
            self._memo[key] = self._read_class_names(subset)
        return list(self._memo[key])

    def _read_class_names(self, subset: Subset) -> List[str]:
        categories = self.categories(subset)
        path = self.class_names_file(subset)
        if path is None:
            warn(f"no class names in {self.root} (neither data.py nor {classnames_file(subset)}): "
                 "the wnids stand in for them")
            return categories
        if path.name == digests.DATA_PY:
            if "data.py" not in self._memo:
                self._memo["data.py"] = read_data_py(path)
            variable = f"classes_{subset.num_classes}"
            if variable not in self._memo["data.py"]:
                raise UserError(f"{path} defines no {variable}: use the official data/data.py, "
                                "or remove it to fall back to classnames/")
            return names_from_constant(self._memo["data.py"][variable], categories, f"{variable} in {path}")
        table = {}
        for number, line in enumerate(self._lines(classnames_file(subset)), 1):
            wnid, _, name = line.partition("\t")
            if not name.strip():
                raise UserError(f"{path} line {number} is not 'wnid<TAB>name': fix or remove the file")
            table[wnid.strip()] = name.strip()
        return names_from_constant(table, categories, str(path))

    def validation_names(self, subset: SubsetLike) -> List[Pair]:
        """(image, mask) relative paths of the validation split."""
        return self._pairs(get_subset(subset).validation_names_file)

    def train_semi_names(self, subset: SubsetLike) -> List[Pair]:
        """(image, mask) relative paths of the train-semi split."""
        return self._pairs(get_subset(subset).train_semi_names_file)

    def mapping(self, subset: SubsetLike, split: str) -> List[Pair]:
        """(src, dst) for ``split`` "validation" or "test": src under ImageNet ``val/``, dst in the split."""
        if split not in ("validation", "test"):
            raise UserError(f"no mapping list for split {split!r}: use validation or test")
        return self._pairs(get_subset(subset).mapping_file(split))

    def split_images(self, subset: SubsetLike, split: str) -> List[str]:
        """Relative image paths of "validation", "test" or "train-semi"."""
        if split == "train-semi":
            return [image for image, _ in self.train_semi_names(subset)]
        if split in ("validation", "test"):
            return [dst for _, dst in self.mapping(subset, split)]
        raise UserError(f"no image list for split {split!r}: use validation, test or train-semi")

    def missing_lists(self, subset: SubsetLike) -> List[str]:
        """The official list files of ``subset`` absent from this directory."""
        return [rel for rel in get_subset(subset).list_files if not (self.root / rel).is_file()]


def train_semi_source(image_rel: str) -> Tuple[str, str]:
    """(ImageNet class, file name) of a train-semi list entry: the class is the name before ``_``.

    It differs from the entry's folder for 919's merged classes (``n04355933/n04356056_3162.JPEG``).
    """
    name = image_rel.rsplit("/", 1)[-1]
    return name.split("_", 1)[0], name

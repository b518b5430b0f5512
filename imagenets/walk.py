"""The one tree walker of the toolbox: files under a folder, linked folders followed without loops."""

from __future__ import annotations

import os
from typing import List, Tuple

from .errors import first_few, warn
from .fileio import PathLike


def walk_files(root: PathLike, follow_links: bool = True) -> List[str]:
    """Relative POSIX paths of every non-folder entry under ``root``, sorted (links to files included).

    ``follow_links``: a linked folder is walked too, unless it leads back to a folder above it (a loop:
    warned about, walked once); otherwise it is listed as an entry, not walked.
    """
    found: List[str] = []
    loops: List[str] = []
    top = os.stat(root)
    # (folder, its relative path, the (st_dev, st_ino) of it and every folder above it)
    stack: List[Tuple[str, str, frozenset]] = [(os.fspath(root), "", frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        folder, rel, above = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = f"{rel}{entry.name}"
                if not entry.is_dir():  # follows links: a link to a file (or a dangling one) is a file here
                    found.append(path)
                elif entry.is_symlink() and not follow_links:
                    found.append(path)
                else:
                    st = entry.stat()
                    key = (st.st_dev, st.st_ino)
                    if key in above:
                        loops.append(path)
                    else:
                        stack.append((entry.path, f"{path}/", above | {key}))
    if loops:
        warn(f"{len(loops)} linked folders under {root} lead back to a folder above them (a loop) and were "
             f"not followed again: {first_few(sorted(loops))}")
    return sorted(found)

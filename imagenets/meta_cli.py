"""``imagenets meta``: fill the metadata cache ahead of time, or say where metadata is read from."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, Optional

from .cli import Command, add_meta_argument, add_quiet_argument
from .errors import UserError, first_few, info
from .metadata import (SOURCE_CACHE, SOURCE_HINT, Metadata, cache_dir, cache_files, cache_problems, fill_cache,
                       resolve_source)
from .subsets import META_COMMIT, SUBSETS


def _action(actions: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return actions.add_parser(name, help=help, description=description,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="meta_action", metavar="ACTION")
    actions.required = True
    download = _action(
        actions, "download", "download the official lists into the cache and print its path",
        f"Download the 15 official lists and data.py (commit {META_COMMIT[:7]}) into the cache "
        "($IMAGENETS_CACHE or ~/.cache/imagenets), each checked against its pinned SHA-256, so that "
        "later commands work offline. A rerun resumes a broken download.")
    add_quiet_argument(download)
    download.add_argument("--force", action="store_true",
                          help="download every file again, even those already cached and verified")
    path = _action(
        actions, "path", "print the directory metadata is read from and its source",
        "Print the directory metadata is read from, its source (--meta-dir, IMAGENETS_META_DIR or "
        "cache) and whether the cache is complete: every file present with its pinned SHA-256. "
        "Downloads nothing; exits 2 if no source is usable.")
    add_meta_argument(path)
    path.add_argument("--json", action="store_true",
                      help="print one JSON object (path, source, cache, cache_complete, cache_missing, "
                           "cache_changed, subsets, usable)")


def describe(meta_dir: Optional[str] = None) -> Dict[str, Any]:
    """Where metadata would be read from, which subsets it covers, and the state of the cache."""
    root, source = resolve_source(meta_dir)
    problems = cache_problems()
    complete = {}
    for subset in SUBSETS.values():
        if source == SOURCE_CACHE:
            complete[subset.mode] = not problems
        else:
            complete[subset.mode] = not Metadata(root, source).missing_lists(subset)
    return {"path": str(root), "source": source, "cache": str(cache_dir()),
            "cache_complete": not problems,
            "cache_missing": sum(problem == "missing" for problem in problems.values()),
            "cache_changed": sorted(rel for rel, problem in problems.items() if problem == "changed"),
            "subsets": complete, "usable": any(complete.values())}


def _cache_state(report: Dict[str, Any]) -> str:
    total = len(cache_files())
    if report["cache_complete"]:
        return f"complete, {total} files with their pinned SHA-256"
    parts = [f"{report['cache_missing']} of {total} files missing"] if report["cache_missing"] else []
    changed = report["cache_changed"]
    if changed:
        named = first_few(changed, 3)
        parts.append(f"{len(changed)} of {total} files not verified ({named}: not the pinned SHA-256)")
    return "incomplete, " + "; ".join(parts)


def _print_path(args: argparse.Namespace) -> int:
    report = describe(args.meta_dir)
    if args.json:
        print(json.dumps(report))
    else:
        short = "cache incomplete" if report["source"] == SOURCE_CACHE else "lists missing"
        covered = ", ".join(f"{k}: {'complete' if ok else short}" for k, ok in report["subsets"].items())
        print(report["path"])
        print(f"source: {report['source']}")
        print(f"subsets: {covered}")
        print(f"cache: {report['cache']}: {_cache_state(report)}")
    if not report["usable"]:
        where = ("the cache is incomplete" if report["source"] == SOURCE_CACHE
                 else f"{report['path']} ({report['source']}) holds no complete subset")
        raise UserError(f"no usable metadata: {where}; {SOURCE_HINT}")
    return 0


def _download(args: argparse.Namespace) -> int:
    problems = cache_problems()
    if not args.force and not problems:
        info("the metadata cache is already complete and verified; --force downloads it again", args.quiet)
    print(fill_cache(force=args.force, quiet=args.quiet, problems=problems))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.meta_action == "download":
        return _download(args)
    return _print_path(args)


COMMAND = Command(
    name="meta",
    help="metadata: `meta download` fills the cache, `meta path` says where lists are read from",
    add_arguments=add_arguments,
    run=run,
    description="The official ImageNet-S lists (categories, names, mappings, class names). Commands read "
                "them from --meta-dir DIR, else $IMAGENETS_META_DIR, else a cache filled on first use.")

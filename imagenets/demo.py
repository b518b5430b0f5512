"""``imagenets demo``: the toolbox end to end on made-up data, offline, in well under a minute.

Every step goes through the public commands (``run_command``), so the demo shows what a user types;
steps whose command is not installed are named and skipped, never failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from .cli import Command, add_quiet_argument, add_workers_argument, all_commands, run_command
from .errors import UserError, info
from .fileio import read_json, write_json_atomic
from .metadata import load_metadata
from .synthetic import write_synthetic_benchmark, write_synthetic_meta

MODE = 50
#: Marks a folder as the demo's own, so a rerun may replace its content.
MARKER = ".imagenets-demo"
SESSION = "demo"


@dataclass
class Demo:
    """State shared by the steps: where things go and what has been made."""

    out: Path
    workers: int
    quiet: bool
    images: Optional[int]
    seed: int
    max_side: int
    commands: Sequence[str]
    made: List[Tuple[str, Path]] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def meta_dir(self) -> Path:
        return self.out / "meta"

    @property
    def gt_dir(self) -> Path:
        return self.out / "benchmark" / "gt"

    @property
    def pred_dir(self) -> Path:
        return self.out / "benchmark" / "pred"

    @property
    def true_match_file(self) -> Path:
        return self.out / "benchmark" / "true_match.json"

    @property
    def match_file(self) -> Path:
        return self.out / "results" / f"{SESSION}.json"

    def common(self, meta: bool = True) -> List[str]:
        """Flags every evaluation command of the demo takes."""
        flags = ["--mode", str(MODE), "--workers", str(self.workers)]
        if meta:
            flags += ["--meta-dir", str(self.meta_dir)]
        return flags + (["--quiet"] if self.quiet else [])

    def run(self, argv: List[str]) -> None:
        """Run ``imagenets ARGV`` in the demo folder (the cwd is restored); a failure stops the demo."""
        info(f"\n$ imagenets {' '.join(shlex.quote(a) for a in argv)}", self.quiet)
        here = os.getcwd()
        os.chdir(self.out)
        try:
            status = run_command(argv)
        finally:
            os.chdir(here)
        if status:
            raise UserError(f"demo step `imagenets {argv[0]}` failed (exit status {status}): see the "
                            f"error above; the demo's files are in {self.out}")

    def record(self, what: str, path: Path) -> None:
        self.made.append((what, path))


@dataclass
class Step:
    """One demo step; ``needs`` names the commands it runs."""

    title: str
    action: Callable[[Demo], None]
    needs: Tuple[str, ...] = ()


# ---- the steps ---------------------------------------------------------------------------------

def make_meta(demo: Demo) -> None:
    write_synthetic_meta(demo.meta_dir, MODE, validation=demo.images, seed=demo.seed)
    demo.record("synthetic metadata (official layout, made-up classes)", demo.meta_dir)


def make_benchmark(demo: Demo) -> None:
    meta = load_metadata(demo.meta_dir, quiet=True)
    result = write_synthetic_benchmark(demo.out / "benchmark", meta, MODE, sides=(24, demo.max_side),
                                       seed=demo.seed, permute=True, quality=0.8, out_of_range=0.0,
                                       workers=demo.workers, quiet=demo.quiet)
    info(f"wrote {result['images']} ground-truth masks and predictions with permuted cluster ids",
         demo.quiet)
    truth = {"0": 0}
    truth.update({str(int(cluster)): c for c, cluster in enumerate(result["permutation"], 1)})
    write_json_atomic(demo.true_match_file, truth)
    demo.record("ground truth masks", demo.gt_dir)
    demo.record("predictions (cluster ids)", demo.pred_dir)
    demo.record("the true match the predictions were made with", demo.true_match_file)


def match(demo: Demo) -> None:
    demo.run(["match", "--predict-dir", str(demo.pred_dir), "--gt-dir", str(demo.gt_dir),
              "--session-name", SESSION, *demo.common()])
    found, truth = read_json(demo.match_file, "match file"), read_json(demo.true_match_file, "true match")
    right = sum(found.get(cluster) == c for cluster, c in truth.items() if c)
    info(f"the match maps {right} of {len(truth) - 1} cluster ids to their true class", demo.quiet)
    demo.record("match (cluster id -> class id)", demo.match_file)


def evaluate(demo: Demo) -> None:
    report = demo.out / "results" / "evaluation.json"
    demo.run(["evaluate", "--predict-dir", str(demo.pred_dir), "--gt-dir", str(demo.gt_dir),
              "--match", str(demo.match_file), "--output", str(report), *demo.common()])
    demo.record("evaluation (mIoU and the other metrics, JSON)", report)


STEPS = (
    Step("synthetic metadata", make_meta),
    Step("synthetic ground truth and predictions", make_benchmark),
    Step("match cluster ids to classes", match, ("match",)),
    Step("evaluate with the match", evaluate, ("evaluate",)),
)


# ---- the command -------------------------------------------------------------------------------

def claim_folder(out: Path) -> None:
    """Use ``out`` only if it is new, empty or an earlier demo's: never write into a user's folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--output-dir {out} is a file: choose a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"--output-dir {out} is not empty and was not made by `imagenets demo`: "
                        "choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def run_demo(out: Path, workers: int = 2, quiet: bool = False, images: Optional[int] = None, seed: int = 0,
             max_side: int = 200, steps: Sequence[Step] = STEPS) -> Demo:
    """Run the steps into ``out``; returns what was made and what was skipped."""
    if workers < 0:
        raise UserError(f"--workers {workers}: use 0 (no worker processes) or more")
    if images is not None and images < 1:
        raise UserError(f"--images {images}: use at least 1")
    if max_side < 24:
        raise UserError(f"--max-side {max_side}: use 24 or more")
    out = Path(out).expanduser().resolve()
    claim_folder(out)
    demo = Demo(out, workers, quiet, images, seed, max_side, tuple(all_commands()))
    for number, step in enumerate(steps, 1):
        missing = [name for name in step.needs if name not in demo.commands]
        if missing:
            demo.skipped.append((step.title, ", ".join(f"imagenets {m}" for m in missing)))
            continue
        info(f"\n[{number}/{len(steps)}] {step.title}", quiet)
        step.action(demo)
    return demo


def summary(demo: Demo) -> str:
    """Where each thing is, then what was not run."""
    width = max((len(what) for what, _ in demo.made), default=0)
    lines = [f"\nimagenets demo: everything is under {demo.out}"]
    lines += [f"  {what.ljust(width)}  {path}" for what, path in demo.made]
    if demo.skipped:
        lines.append("not run (command not installed yet):")
        lines += [f"  {title} (needs {needs})" for title, needs in demo.skipped]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", "-o", type=Path, default=Path("imagenets-demo"), metavar="DIR",
                        help="folder for everything the demo makes (new, empty, or an earlier demo's)")
    add_workers_argument(parser)
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="validation images to synthesise (default: the official ImageNet-S50 count, 752)")
    parser.add_argument("--max-side", type=int, default=200, metavar="PX",
                        help="largest image side of the synthetic masks (sides are drawn in 24..PX)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (same seed, same files)")
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    demo = run_demo(args.output_dir, workers=args.workers, quiet=args.quiet, images=args.images,
                    seed=args.seed, max_side=args.max_side)
    print(summary(demo))
    return 0


COMMAND = Command("demo", "run the whole toolbox on synthetic data, offline (a minute at most)", add_arguments, run,
                  description="Make a synthetic ImageNet-S50 (metadata, ground truth, predictions with permuted "
                              "cluster ids), then match and evaluate it with the real commands; prints where "
                              "each result is. Needs no download.")


def main(argv: Optional[List[str]] = None) -> int:
    return COMMAND.main(argv)


if __name__ == "__main__":
    sys.exit(main())

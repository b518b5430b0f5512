"""``imagenets demo``: the whole toolbox end to end on made-up data, offline, in under a minute.

A synthetic ImageNet-1k copy and annotation archive are prepared into ImageNet-S50, a made-up
unsupervised method's predictions (permuted cluster ids) are matched, evaluated, turned into
submissions, scored and drawn. Every step goes through the public commands (``run_command``),
so the demo shows what a user types; a step whose command is not installed is named and skipped.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..cli import Command, add_quiet_argument, add_workers_argument, all_commands, run_command
from ..errors import UserError, info
from ..fileio import read_json, write_json_atomic
from ..flags import integer, output_dir, seed
from ..metadata import load_metadata
from ..subsets import MASK_FOLDERS, get_subset
from .synthetic import write_synthetic_dataset, write_synthetic_meta

MODE = 50
SUBSET = get_subset(MODE)
#: Marks a folder as the demo's own, so a rerun may write into it again.
MARKER = ".imagenets-demo"
SESSION = "demo"
PICTURES = 24
#: Bootstrap resamples of the demo's evaluation: intervals on the report page in a fraction of a second.
BOOTSTRAP = 200
#: Bounds of --images and --max-side: a demo stays a demo.
MAX_IMAGES = 100_000
MAX_SIDE = 4096
METHOD = ("--method-name", "imagenets demo", "--train-data", "synthetic images, no labels",
          "--train-scheme", "none: predictions are synthesised from the ground truth",
          "--networks", "none", "--link", "none",
          "--description", "noisy copies of the ground truth with permuted cluster ids")


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
    notes: Dict[str, object] = field(default_factory=dict)
    #: The prepared subset folder (DEST/ImageNetS50), set by the data steps.
    subset_dir: Optional[Path] = None
    seconds: float = 0.0

    # -- where things are
    @property
    def meta_dir(self) -> Path:
        return self.out / "meta"

    @property
    def dest(self) -> Path:
        return self.out / "dataset"

    @property
    def gt_dir(self) -> Path:
        assert self.subset_dir is not None
        return self.subset_dir / MASK_FOLDERS["validation"]

    def predictions(self, split: str) -> Path:
        return self.out / "predictions" / split

    @property
    def true_match_file(self) -> Path:
        return self.out / "predictions" / "true_match.json"

    @property
    def match_file(self) -> Path:
        return self.out / "results" / f"{SESSION}.json"

    @property
    def evaluation_file(self) -> Path:
        return self.out / "results" / "evaluation.json"

    def has(self, command: str) -> bool:
        return command in self.commands

    def common(self, workers: bool = True) -> List[str]:
        """Flags the demo gives every evaluation command."""
        flags = ["--mode", str(MODE), "--meta-dir", str(self.meta_dir)]
        if workers:
            flags += ["--workers", str(self.workers)]
        return flags + (["--quiet"] if self.quiet else [])

    def run(self, argv: Sequence[str]) -> None:
        """Run ``imagenets ARGV`` in the demo folder (the cwd is restored); a failure stops the demo."""
        argv = [str(a) for a in argv]
        info(f"$ imagenets {' '.join(shlex.quote(a) for a in argv)}", self.quiet)
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
    """One demo step; ``needs`` names the commands it runs (all present, or the step is skipped)."""

    title: str
    action: Callable[[Demo], None]
    needs: Tuple[str, ...] = ()


# ---- the steps -----------------------------------------------------------------------------------

def make_meta(demo: Demo) -> None:
    # --images N shrinks every split, for a quick run; by default the official counts.
    write_synthetic_meta(demo.meta_dir, MODE, validation=demo.images, test=demo.images,
                         train_semi=demo.images, seed=demo.seed)
    demo.record("metadata (official layout, made-up classes)", demo.meta_dir)


def make_data(demo: Demo) -> None:
    """A synthetic ImageNet + mask archive for `prepare` (or, without it, the prepared tree itself)."""
    meta = load_metadata(demo.meta_dir, quiet=True)
    layout = "imagenet" if demo.has("prepare") else "prepared"
    result = write_synthetic_dataset(demo.out if layout == "imagenet" else demo.dest, meta, MODE,
                                     layout=layout, sides=(24, demo.max_side), seed=demo.seed, quality=0.8,
                                     predictions_dir=demo.out / "predictions", workers=demo.workers,
                                     quiet=demo.quiet)
    if layout == "prepared":
        demo.subset_dir = Path(str(result["root"]))
        demo.record(f"{SUBSET.name} (written directly: `imagenets prepare` is not installed)", demo.subset_dir)
    else:
        demo.notes["imagenet"] = result["root"]
        demo.notes["archive"] = result["annotations_zip"]
        demo.record("fake ImageNet-1k (train/, val/)", Path(str(result["root"])))
        demo.record("annotation archive (like the official zip)", Path(str(result["annotations_zip"])))
    truth = {"0": 0}
    truth.update({str(int(cluster)): c for c, cluster in enumerate(result["permutation"], 1)})  # type: ignore
    write_json_atomic(demo.true_match_file, truth)
    counts = result["images"]
    info(f"synthesised {sum(counts.values())} images ({', '.join(f'{v} {k}' for k, v in counts.items())}) "
         "and the predictions of a made-up method (cluster ids 1..50)", demo.quiet)
    demo.record("predictions, cluster ids (validation/, test/)", demo.out / "predictions")
    demo.record("the true cluster -> class map the predictions were made with", demo.true_match_file)


def prepare(demo: Demo) -> None:
    demo.run(["prepare", "--imagenet-dir", demo.notes["imagenet"], "--save-dir", demo.dest,
              "--mode", MODE, "--annotations-zip", demo.notes["archive"], "--skip-checksum",
              "--meta-dir", demo.meta_dir, "--workers", max(1, demo.workers)] + (["--quiet"] if demo.quiet else []))
    demo.subset_dir = demo.dest / SUBSET.name
    demo.record(f"{SUBSET.name}, prepared by `imagenets prepare`", demo.subset_dir)


def verify(demo: Demo) -> None:
    demo.run(["verify", demo.dest, "--mode", MODE, "--meta-dir", demo.meta_dir] + (["--quiet"] if demo.quiet else []))


def match(demo: Demo) -> None:
    demo.run(["match", "--predict-dir", demo.predictions("validation"), "--gt-dir", demo.gt_dir,
              "--session-name", SESSION, *demo.common()])
    found, truth = read_json(demo.match_file, "match file"), read_json(demo.true_match_file, "true match")
    right = sum(found.get(cluster) == c for cluster, c in truth.items() if c)
    info(f"the match maps {right} of {len(truth) - 1} cluster ids to their true class", demo.quiet)
    demo.notes["match_right"] = right
    demo.record("match (cluster id -> class id)", demo.match_file)


def evaluate(demo: Demo) -> None:
    plot = demo.out / "results" / "per_class_iou.png"
    report = demo.out / "results" / "report.html"
    # The photos of the report's pictures are found beside the masks (DEST/ImageNetS50/validation).
    demo.run(["evaluate", "--predict-dir", demo.predictions("validation"), "--gt-dir", demo.gt_dir,
              "--match", demo.match_file, "--output", demo.evaluation_file, "--plot", plot, "--report", report,
              "--bootstrap", BOOTSTRAP, *demo.common()])
    demo.record("evaluation: mIoU and the other metrics (JSON)", demo.evaluation_file)
    demo.record("per-class IoU bar chart", plot)
    demo.record("evaluation report: open it in a browser", report)


def apply_match(demo: Demo) -> None:
    demo.run(["apply-match", "--predict-dir", demo.predictions("test"), "--match", demo.match_file,
              "--output-dir", demo.predictions("test-matched"), "--mode", MODE, "--workers", demo.workers]
             + (["--quiet"] if demo.quiet else []))
    demo.record("test predictions through the match (class ids)", demo.predictions("test-matched"))


def submission_test(demo: Demo) -> None:
    assert demo.subset_dir is not None
    target = demo.out / "submissions" / "test-submission.zip"
    demo.run(["submission", "--predict-dir", demo.predictions("test-matched"), "--split", "test",
              "--protocol", "fully-unsupervised", "--images", demo.subset_dir, *METHOD, "--output", target,
              *demo.common()])
    demo.record("test submission, checked (what you would upload)", target)


def submission_validation(demo: Demo) -> None:
    assert demo.subset_dir is not None
    target = demo.out / "submissions" / "validation-submission.zip"
    demo.run(["submission", "--predict-dir", demo.predictions("validation"), "--split", "validation",
              "--protocol", "fully-unsupervised", "--match", demo.match_file, "--images", demo.subset_dir,
              *METHOD, "--output", target, *demo.common()])
    demo.notes["validation_zip"] = target
    demo.record("validation submission, cluster ids + match.json", target)


def score(demo: Demo) -> None:
    report = demo.out / "results" / "score.json"
    demo.run(["score", demo.notes["validation_zip"], "--gt-dir", demo.gt_dir, "--split", "validation",
              "--output", report, *demo.common(), *([] if demo.quiet else ["--quiet"])])
    scored = read_json(report, "score report")["mIoU"]
    if demo.evaluation_file.is_file():
        evaluated = read_json(demo.evaluation_file, "evaluation")["mIoU"]
        same = "the same as" if math.isclose(scored, evaluated, abs_tol=1e-9) else "DIFFERENT from"
        info(f"scored the validation submission: mIoU {scored:.2f}, {same} `evaluate --match` "
             f"({evaluated:.2f})", demo.quiet)
    demo.record("local score of the validation submission (JSON)", report)


def visualize(demo: Demo) -> None:
    assert demo.subset_dir is not None
    out = demo.out / "pictures"
    demo.run(["visualize", "--images", demo.subset_dir / "validation", "--gt-dir", demo.gt_dir,
              "--predict-dir", demo.predictions("validation"), "--match", demo.match_file,
              "--output-dir", out, "--limit", PICTURES, "--sort", "worst", *demo.common()])
    demo.record(f"pictures of the {PICTURES} worst images; open the gallery", out / "index.html")


def convert(demo: Demo) -> None:
    out = demo.out / "validation-segmentation-gray16"
    demo.run(["convert", "--to", "gray16", "--input-dir", demo.gt_dir, "--output-dir", out,
              "--workers", demo.workers] + (["--quiet"] if demo.quiet else []))
    demo.record("validation masks as 16-bit grayscale PNGs", out)


def torch_dataset(demo: Demo) -> None:
    """Load a training batch from the prepared tree, as a segmentation model would."""
    from torch.utils.data import DataLoader

    from ..datasets import ImageNetS
    from ..transforms import training_transforms

    assert demo.subset_dir is not None
    data = ImageNetS(demo.subset_dir, MODE, "validation", meta_dir=str(demo.meta_dir),
                     transforms=training_transforms(crop=64, resize=72))
    images, masks = next(iter(DataLoader(data, batch_size=8, shuffle=True, num_workers=0)))
    info(f"ImageNetS(..., 'validation') holds {len(data)} samples; a batch: images "
         f"{tuple(images.shape)} {images.dtype}, masks {tuple(masks.shape)} {masks.dtype}", demo.quiet)


STEPS = (
    Step("synthetic metadata", make_meta),
    Step("synthetic ImageNet, annotation archive and predictions", make_data),
    Step("prepare ImageNet-S50", prepare, ("prepare",)),
    Step("verify the prepared tree", verify, ("verify",)),
    Step("match cluster ids to classes", match, ("match",)),
    Step("evaluate with the match", evaluate, ("evaluate",)),
    Step("apply the match to the test predictions", apply_match, ("match", "apply-match")),
    Step("build the test submission", submission_test, ("match", "apply-match", "submission")),
    Step("build a validation submission", submission_validation, ("match", "submission")),
    Step("score the validation submission", score, ("match", "submission", "score")),
    Step("draw pictures", visualize, ("match", "visualize")),
    Step("convert masks to 16-bit grayscale", convert, ("convert",)),
    Step("load a batch with imagenets.datasets", torch_dataset),
)


# ---- the command ---------------------------------------------------------------------------------

#: What the demo writes at the top of its folder; a rerun removes these (and nothing else) first.
PRODUCTS = ("meta", "imagenet", f"{SUBSET.name}-synthetic.zip", "dataset", "predictions", "results",
            "submissions", "pictures", "validation-segmentation-gray16")


def claim_folder(out: Path, quiet: bool = False) -> None:
    """Use ``out`` only if it is new, empty or an earlier demo's: never write into a user's folder.

    An earlier demo's products are removed first, so stale files (other seed or sizes) cannot linger.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--output-dir {out} is a file: choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UserError(f"--output-dir {out} is not empty and was not made by `imagenets demo`: "
                            "choose a new or empty folder")
        old = [out / name for name in PRODUCTS if os.path.lexists(out / name)]
        if old:
            info(f"replacing the earlier demo's files in {out}", quiet)
        for path in old:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def run_demo(out: Path, workers: int = 2, quiet: bool = False, images: Optional[int] = None, seed: int = 0,
             max_side: int = 160, steps: Sequence[Step] = STEPS) -> Demo:
    """Run the steps into ``out``; returns what was made and what was skipped."""
    # The command's parser bounds these already (imagenets.flags); a call as a function is checked here.
    if workers < 0:
        raise UserError(f"--workers {workers}: use 0 (no worker processes) or more")
    if images is not None and not 1 <= images <= MAX_IMAGES:
        raise UserError(f"--images {images}: use 1 to {MAX_IMAGES}")
    if not 24 <= max_side <= MAX_SIDE:
        raise UserError(f"--max-side {max_side}: use 24 to {MAX_SIDE}")
    out = Path(out).expanduser().resolve()
    claim_folder(out, quiet)
    start = time.perf_counter()
    demo = Demo(out, workers, quiet, images, seed, max_side, tuple(all_commands()))
    for number, step in enumerate(steps, 1):
        missing = [name for name in step.needs if not demo.has(name)]
        if missing:
            demo.skipped.append((step.title, ", ".join(f"imagenets {m}" for m in missing)))
            continue
        info(f"\n[{number}/{len(steps)}] {step.title}", quiet)
        began = time.perf_counter()
        step.action(demo)
        info(f"({time.perf_counter() - began:.1f} s)", quiet)
    demo.seconds = time.perf_counter() - start
    return demo


def summary(demo: Demo) -> str:
    """Where each thing is, then what was not run."""
    width = max((len(what) for what, _ in demo.made), default=0)
    lines = [f"\nimagenets demo ({demo.seconds:.0f} s): everything is under {demo.out}"]
    lines += [f"  {what.ljust(width)}  {path}" for what, path in demo.made]
    if demo.skipped:
        lines.append("not run (command not installed):")
        lines += [f"  {title} (needs {needs})" for title, needs in demo.skipped]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    output_dir(parser, "--output-dir", "-o", default=Path("imagenets-demo"), metavar="DIR", managed=True,
               help="folder for everything the demo makes (new, empty, or an earlier demo's)")
    add_workers_argument(parser)
    parser.add_argument("--images", type=integer(1, MAX_IMAGES), default=None, metavar="N",
                        help="images per split (validation, test, train-semi) for a quicker run; "
                             "default: the official ImageNet-S50 counts (752, 1682, 500)")
    parser.add_argument("--max-side", type=integer(24, MAX_SIDE), default=160, metavar="PX",
                        help="largest side of the synthetic images (sides are drawn in 24..PX)")
    parser.add_argument("--seed", type=seed(), default=0, help="seed of the synthetic data (same seed, same files)")
    add_quiet_argument(parser)


def run(args: argparse.Namespace) -> int:
    demo = run_demo(args.output_dir, workers=args.workers, quiet=args.quiet, images=args.images,
                    seed=args.seed, max_side=args.max_side)
    print(summary(demo))
    return 0


COMMAND = Command("demo", "run the whole toolbox on synthetic data, offline, in under a minute", add_arguments, run,
                  description="Build a synthetic ImageNet and annotation archive, prepare ImageNet-S50 from them, "
                              "synthesise an unsupervised method's predictions (permuted cluster ids), then match, "
                              "evaluate, apply the match, build and score submissions, draw pictures and convert "
                              "masks, all with the real commands; prints where each result is. Needs no download.")


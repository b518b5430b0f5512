"""``imagenets distance-matching``: the benchmark's distance-matching protocol for any backbone.

Step 1 averages the model's features over each labelled region of the train-semi images
(cached in OUT); step 2 labels every pixel of a split by a weighted vote of its k most similar
embeddings and writes R+G*256 PNGs; step 3 evaluates (validation) or builds the submission (test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, TypeVar

import torch

from imagenets.cli import (Command, add_device_argument, add_meta_argument, add_mode_argument,
                           add_quiet_argument, add_workers_argument)
from imagenets.codec import write_mask
from imagenets.device import resolve_device
from imagenets.errors import UserError, info, warn
from imagenets.fileio import read_json, write_json_atomic
from imagenets.flags import input_dir, input_file, integer, output_dir, real
from imagenets.metadata import Metadata, load_metadata
from imagenets.progress import progress
from imagenets.subsets import Subset, get_subset, subset_folder

from imagenets.evaluation.engine import distributed
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.idmaps import resize_nearest
from imagenets.evaluation.engine.matchfile import save_match
from imagenets.evaluation.engine.matching import compute_match
from imagenets.evaluation.engine.report import publish
from imagenets.evaluation.protocols.submission import build_submission

from .bank import (SAMPLING, UPSAMPLE, Bank, ImageSet, bank_key, build_bank, feature_maps,
                   file_stamps, iterate_images, load_cached_bank, save_bank)
from .model import MODEL_HINT, load_model, load_weights, require_weights_only
from .vote import VoteBank, vote_map

SPLIT_CHOICES = ("validation", "test")
PROTOCOL = "distance-matching"
COMPAT_HELP = (
    "ours (default): masks are shrunk to the upsampled feature grid and label maps grown back to "
    "the image size by sampling at cell centres, and validation predictions are scored as they "
    "are, as the benchmark server scores test submissions. pass: exactly PASS's "
    "distance_matching/ scripts: both resizes with torch's legacy 'nearest' (each cell takes the "
    "source pixel at floor(i * in/out), its top-left one), and validation predictions re-matched "
    "to classes (image-level Hungarian matching, OUT/match-validation.json) before scoring. Use "
    "pass to compare with numbers published by PASS.")
#: Runs on CPU longer than this (estimated after the first batch) get a hint about --device cuda.
LONG_RUN_S = 300.0
LIMIT_HELP = (
    "a quick look: only N train-semi images (the embeddings) and N images of --split, each spread "
    "evenly over its list; the scores are NOT the benchmark's (a warning says so), and --split test "
    "builds no submission")
#: The settings a run's predictions depend on, and how a refusal names each.
SETTING_NAMES = {"model": "--model (another model, or its code changed)",
                 "weights": "--weights (another file, or none)",
                 "train_semi": "the train-semi images or masks under --dataset",
                 "compat": "--compat", "limit": "--limit", "k": "-k", "temperature": "-T",
                 "embeddings": "the embedding recipe (another imagenets version)"}
Item = TypeVar("Item")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    input_dir(parser, "--dataset", required=True, metavar="DIR",
              help="the prepared subset folder DEST/ImageNetS{K} (with train-semi/, "
                   "train-semi-segmentation/ and the split's images)")
    add_mode_argument(parser)
    input_file(parser, "--model", type=str, required=True, metavar="MODEL", help=MODEL_HINT)
    input_file(parser, "--weights", metavar="FILE", default=None,
               help="state dict to load into MODEL (a 'state_dict' key is unwrapped and "
                    "'module.' prefixes stripped)")
    parser.add_argument("--split", required=True, choices=SPLIT_CHOICES,
                        help="images to label: validation (then evaluated) or test (then zipped "
                             "for submission)")
    output_dir(parser, "--output-dir", "-o", required=True, metavar="OUT",
               help="where the embedding cache, OUT/<split>/<wnid>/<name>.png and "
                    "OUT/submission.zip go; outside --dataset")
    parser.add_argument("-k", type=integer(1, 100_000, "use -k 10 (the benchmark's)"), default=10,
                        help="number of nearest embeddings that vote for each pixel")
    parser.add_argument("-T", "--temperature", type=real(0, above=True, hint="use -T 0.07", float32=True), default=0.07,
                        help="vote weight of an embedding is exp(cosine similarity / T)")
    parser.add_argument("--batch-size", type=integer(1, 4096), default=8, metavar="B",
                        help="images decoded together; those of equal size go through MODEL as one batch")
    add_device_argument(parser)
    add_workers_argument(parser)
    add_meta_argument(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute every prediction, even those OUT/<split> already holds")
    parser.add_argument("--compat", choices=tuple(SAMPLING), default="ours", help=COMPAT_HELP)
    parser.add_argument("--limit", type=integer(1, hint="or leave --limit out for the benchmark's run"), default=None,
                        metavar="N", help=LIMIT_HELP)
    group = parser.add_argument_group(
        "submission (--split test)", "the method.txt fields of OUT/submission.zip")
    group.add_argument("--method-name", metavar="TEXT", help="the method's name (default: from MODEL)")
    group.add_argument("--train-data", metavar="TEXT",
                       help="data the model was pre-trained on, e.g. 'ImageNet-1k train images, "
                            "no labels' (required with --split test)")
    group.add_argument("--train-scheme", metavar="TEXT",
                       help="how the model was trained (default: pre-trained, no fine-tuning, "
                            "distance matching with -k and -T)")
    group.add_argument("--networks", metavar="TEXT", help="backbone, e.g. 'ViT-S/16' (default: from MODEL)")
    group.add_argument("--link", metavar="URL",
                       help="paper or code URL, 'none' if there is none yet (required with --split test)")
    group.add_argument("--description", metavar="TEXT",
                       help="one-line summary (default: the distance-matching vote with -k and -T)")
    add_quiet_argument(parser)


def _check_options(args: argparse.Namespace) -> None:
    if args.split == "test" and not (args.train_data and args.link):
        raise UserError("--split test also builds OUT/submission.zip, whose method.txt needs "
                        "--train-data TEXT and --link URL ('none' if there is none yet)")


def spread(items: Sequence[Item], limit: Optional[int]) -> List[Item]:
    """``limit`` items evenly spread over ``items`` (all of them without a limit), in order."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def _dataset_root(path: str, subset: Subset, quiet: bool) -> Path:
    """``--dataset`` as given, or its ImageNetS{K} child when the parent DEST was given."""
    root = subset_folder(path, subset)
    if root is None:
        raise UserError(f"--dataset {path} is neither DEST nor DEST/{subset.name}: give the folder "
                        "written by `imagenets prepare`")
    if root != Path(path):
        info(f"using {root}", quiet)
    return root


def _raise_if_missing(missing: Sequence[Path], what: str) -> None:
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise UserError(f"{len(missing)} {what} missing from --dataset (e.g. {shown}); "
                        "prepare the subset with `imagenets prepare` (or fix --dataset/--mode)")


def _train_semi(root: Path, pairs: Sequence[Tuple[str, str]]) -> Tuple[List[Path], List[Path]]:
    """The train-semi (images, masks) of ``pairs`` under ``root``."""
    images = [root / "train-semi" / image for image, _ in pairs]
    masks = [root / "train-semi-segmentation" / mask for _, mask in pairs]
    return images, masks


def _settings(args: argparse.Namespace, subset: Subset, images: List[Path], masks: List[Path],
              pairs: Sequence[Tuple[str, str]], device: torch.device):
    """The model (weights loaded) and the record of every setting its predictions depend on; the
    record's ``embeddings`` is the key of the embedding cache."""
    stamps, missing = file_stamps([p for pair in zip(images, masks) for p in pair])
    _raise_if_missing(missing, "train-semi files (images or masks) are")
    model, identity = load_model(args.model, device)
    digest = load_weights(model, Path(args.weights)) if args.weights else None
    names = [f"{i} {m}" for i, m in pairs]
    key = bank_key(identity, digest, subset.mode, names, stamps, SAMPLING[args.compat])
    record = {"embeddings": key, "model": identity, "weights": digest,
              "train_semi": hashlib.sha256(json.dumps([names, stamps]).encode("utf-8")).hexdigest(),
              "compat": args.compat, "limit": args.limit, "k": args.k, "temperature": args.temperature}
    return model, record


def _bank(args: argparse.Namespace, subset: Subset, out: Path, device: torch.device, model,
          key: str, images: List[Path], masks: List[Path]) -> Bank:
    """Step 1: the embedding bank, cached in OUT while model and data are unchanged. Under torchrun
    rank 0 builds and caches it; the other ranks then read that cache."""
    bank: Optional[Bank] = load_cached_bank(out, key) if distributed.is_main() else None
    if bank is not None:
        info(f"embeddings: reusing {len(bank.labels)} cached in {out} (model and train-semi unchanged)",
             args.quiet)
    with distributed.share_failure():  # the others wait here
        if bank is None and distributed.is_main():
            bank = build_bank(model, images, masks, subset.num_classes, device, args.batch_size,
                              args.workers, args.quiet, SAMPLING[args.compat])
            save_bank(out, key, bank, args.quiet)
    with distributed.share_failure():
        bank = bank if bank is not None else load_cached_bank(out, key)
        if bank is None:
            raise UserError(f"rank {distributed.rank()} cannot read the embeddings rank 0 saved in {out}: "
                            "under torchrun on several machines, --output-dir must be on a shared file system")
    return bank


def changed_settings(previous: object, record: Dict[str, object]) -> List[str]:
    """Each setting in which ``record`` differs from the ``previous`` run's record, named for a message."""
    if not isinstance(previous, dict):
        return ["unknown ones (the record is not a JSON object)"]

    def named(field: str) -> str:
        if field in ("compat", "limit", "k", "temperature"):
            old, new = previous.get(field), record.get(field)
            return f"{SETTING_NAMES[field]} {'none' if new is None else new} (was {'none' if old is None else old})"
        return SETTING_NAMES[field]

    if "model" not in previous:  # an older record: the embeddings' key, k, T, and compat when not ours
        previous = {"compat": "ours", "limit": None, **previous}
        changed = [named(f) for f in ("compat", "limit", "k", "temperature") if previous.get(f) != record[f]]
        if previous.get("embeddings") != record["embeddings"] and previous["compat"] == record["compat"]:
            changed.append("the embeddings (--model, --weights or the train-semi data: an older record "
                           "does not tell which)")
        return changed
    changed = [named(f) for f in SETTING_NAMES if f != "embeddings" and previous.get(f) != record.get(f)]
    if not changed and previous.get("embeddings") != record["embeddings"]:
        changed.append(named("embeddings"))
    return changed


def _pending(args: argparse.Namespace, out: Path, record: Dict[str, object],
             targets: List[Tuple[Path, Path]]) -> List[Tuple[Path, Path]]:
    """The (image, prediction) pairs still to compute; refuses to mix runs of other settings."""
    record_path = out / f"predictions-{args.split}.json"
    written = [pair for pair in targets if pair[1].exists()]
    distributed.barrier()  # every rank has looked before any writes
    if written and not args.overwrite:
        previous = read_json(record_path, "prediction record") if record_path.exists() else None
        changed = changed_settings(previous, record) if previous is not None else [
            "the settings (no record of them)"]
        if changed:
            raise UserError(f"{out / args.split} already holds {len(written)} predictions made with other "
                            f"settings: {'; '.join(changed)}; pass --overwrite to redo them (the embeddings "
                            "are rebuilt as needed) or choose another --output-dir")
    if args.overwrite:
        return targets
    if written:
        info(f"predictions: {len(written)} of {len(targets)} already written, skipping them", args.quiet)
    done = set(p for _, p in written)
    return [pair for pair in targets if pair[1] not in done]


@torch.inference_mode()
def predict(model, bank: Bank, todo: List[Tuple[Path, Path]], args: argparse.Namespace,
            device: torch.device) -> None:
    """Step 2: label every pixel by the k-NN vote and write the PNGs at the original size."""
    if not todo:
        return
    voter = VoteBank(bank.embeddings, bank.labels, device)
    dataset = ImageSet([image for image, _ in todo])
    sampling = SAMPLING[args.compat]
    bar = progress(total=len(todo), desc=f"predictions ({args.split})", quiet=args.quiet, unit="img")
    start, first = time.perf_counter(), True
    for batch in iterate_images(dataset, args.batch_size, args.workers):
        maps = feature_maps(model, [item["image"] for item in batch], device,
                            describe=str(todo[batch[0]["index"]][0]))
        for item, features in zip(batch, maps):
            labels = vote_map(features, voter, args.k, args.temperature, scale=UPSAMPLE)
            original_h, original_w = item["size"]
            write_mask(todo[item["index"]][1],
                       resize_nearest(labels.cpu().numpy(), original_h, original_w, sampling))
        if first:
            _warn_if_long(time.perf_counter() - start, len(batch), len(todo), device, args.quiet)
            first = False
        bar.update(len(batch))
    bar.close()


def _warn_if_long(seconds: float, done: int, total: int, device: torch.device, quiet: bool) -> None:
    """After the first batch: one line when the rest of a CPU run will take long."""
    remaining = seconds / max(done, 1) * (total - done)
    if device.type == "cpu" and total > done and remaining > LONG_RUN_S:
        info(f"predictions: about {remaining / 60:.0f} more minutes on CPU for the other "
             f"{total - done} images; with a GPU, --device cuda is much faster", quiet)


def _model_name(args: argparse.Namespace) -> str:
    if ":" in args.model and not Path(args.model).is_file():
        return args.model
    return Path(args.model).stem


def finish(args: argparse.Namespace, meta: Metadata, subset: Subset, root: Path, out: Path,
           targets: Sequence[Tuple[Path, Path]]) -> int:
    """Step 3: evaluate the validation predictions, or build the test submission."""
    predictions = out / args.split
    # --limit: only the predicted images are scored (mask names as the validation list has them)
    names = [target.relative_to(predictions).as_posix() for _, target in targets] \
        if args.limit is not None else None
    if args.split == "validation":
        gt_dir = root / "validation-segmentation"
        match_file = None
        if args.compat == "pass":  # PASS's evaluator re-matches predictions to classes first
            match_file = out / "match-validation.json"
            with distributed.share_failure():  # under torchrun the other ranks wait, then read its file
                if distributed.is_main():
                    result = compute_match(predictions, gt_dir, subset, meta, method="image", workers=args.workers,
                                           device=args.device, quiet=args.quiet, names=names)
                    match_file = save_match(match_file, result["assignment"], ties=result.get("ties"))
                    info(f"--compat pass: predictions re-matched to classes (image-level, objective "
                         f"{result['objective']}) by {match_file}, as PASS's evaluator does", args.quiet)
        result = evaluate_predictions(predictions, gt_dir, subset, meta, match_file=match_file,
                                      workers=args.workers, device=args.device, quiet=args.quiet, names=names)
        heading = (f"--limit {args.limit}: {len(targets)} validation images, NOT the benchmark's scores"
                   if names is not None else "")
        return publish(result, meta, subset, None, args.quiet, heading=heading) if distributed.is_main() else 0
    if not distributed.is_main():
        return 0  # rank 0 zips every rank's predictions
    if args.limit is not None:
        warn(f"--limit {args.limit}: no {out / 'submission.zip'} (a submission needs every test image); "
             f"the {len(targets)} predictions are in {predictions}")
        return 0
    vote = f"k={args.k} nearest train-semi embeddings, T={args.temperature}"
    method = {
        "method_name": args.method_name or f"distance matching with {_model_name(args)}",
        "train_data": args.train_data,
        "train_scheme": args.train_scheme or f"pre-trained model, no fine-tuning; distance matching ({vote})",
        "networks": args.networks or _model_name(args),
        "link": args.link,
        "description": args.description or f"each pixel takes the weighted vote of its {vote}",
    }
    build_submission(predictions, subset, PROTOCOL, method, out / "submission.zip", split="test",
                     images=root, meta=meta, workers=args.workers, quiet=args.quiet)
    return 0


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    require_weights_only()
    subset = get_subset(args.mode)
    meta = load_metadata(meta_dir=args.meta_dir, quiet=args.quiet)
    root = _dataset_root(args.dataset, subset, args.quiet)
    out = Path(args.output_dir)
    every = [(root / args.split / rel, (out / args.split / rel).with_suffix(".png"))
             for rel in meta.split_images(subset, args.split)]
    all_pairs = meta.train_semi_names(subset)
    targets, pairs = spread(every, args.limit), spread(all_pairs, args.limit)
    if args.limit is not None:
        warn(f"--limit {args.limit}: embeddings from {len(pairs)} of {len(all_pairs)} train-semi images and "
             f"predictions for {len(targets)} of {len(every)} {args.split} images, spread evenly over the "
             "lists: a quick look, NOT the benchmark's scores")
    _, missing = file_stamps([image for image, _ in targets])
    _raise_if_missing(missing, f"{args.split} images are")
    device = distributed.rank_device(resolve_device(args.device))
    images, masks = _train_semi(root, pairs)
    model, record = _settings(args, subset, images, masks, pairs, device)
    todo = _pending(args, out, record, targets)  # refuses other settings before any embedding work
    bank = _bank(args, subset, out, device, model, str(record["embeddings"]), images, masks)
    if distributed.is_main():
        write_json_atomic(out / f"predictions-{args.split}.json", record)
    # Whole batches per rank: each image goes through MODEL in the batch one process would give it.
    with distributed.share_failure():  # then every rank's predictions are written
        predict(model, bank, distributed.shard(todo, args.batch_size), args, device)
    info(f"predictions: {len(targets)} label maps in {out / args.split}", args.quiet)
    return finish(args, meta, subset, root, out, targets)


COMMAND = Command(
    name="distance-matching",
    help="distance-matching protocol: label a split with the k nearest train-semi embeddings "
         "of any pre-trained backbone",
    add_arguments=add_arguments,
    run=run,
    start=distributed.start_command,  # under torchrun: one rank of several, each labelling its share
    description="The distance-matching protocol: step 1 averages MODEL's features over each "
                "labelled region of the train-semi images (cached in OUT); step 2 labels every "
                "pixel of --split by a weighted vote of its k most similar embeddings; step 3 "
                "evaluates (validation) or builds OUT/submission.zip (test).",
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point as a function (``imagenets distance-matching`` is the command)."""
    return COMMAND.main(argv, prog="imagenets distance-matching")

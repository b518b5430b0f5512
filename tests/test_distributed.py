"""torch.distributed on the CPU (gloo, 2 processes): a DDP-style validation loop with ``SegmentationMetrics``,
and ``imagenets evaluate`` / ``distance-matching`` under torchrun, each giving exactly one process's numbers."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

import imagenets
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.evaluation.distance_matching.command import COMMAND as DISTANCE_MATCHING
from imagenets.evaluation.evaluator import COMMAND as EVALUATE
from imagenets.metadata import load_metadata

REPO = Path(__file__).resolve().parents[1]
K = 50
RANKS = 2
#: A model stand-in for the loops: a fixed 1x1 convolution, 3 -> K+1 channels.
SEED = 7


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Dict[str, Path]:
    """A prepared synthetic ImageNetS50 (8 validation and 4 train-semi images, 32x32), its lists, predictions."""
    root = tmp_path_factory.mktemp("ddp")
    meta = write_synthetic_meta(root / "meta", K, validation=8, test=0, train_semi=4, seed=4)
    write_synthetic_dataset(root, load_metadata(meta), K, layout="prepared", sides=(32, 32), seed=4,
                            train_per_class=0, quiet=True)
    return {"root": root, "meta": meta, "dest": root / "ImageNetS50", "pred": root / "predictions" / "validation"}


def _model() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return torch.nn.Conv2d(3, K + 1, kernel_size=1)


def validation_loop(dest: Path, meta: Path, rank: int = 0, world: int = 1):
    """The README's validation loop; with ``world`` > 1 each rank reads its DistributedSampler share."""
    from torch.utils.data import DataLoader, DistributedSampler

    from imagenets import SegmentationMetrics
    from imagenets.datasets import ImageNetS, collate_padded
    from imagenets.transforms import evaluation_transforms

    data = ImageNetS(dest, K, "validation", transforms=evaluation_transforms(resize=32), meta_dir=str(meta))
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
    model, metrics, rows = _model(), SegmentationMetrics(K), SegmentationMetrics(K, keep_images=True)
    with torch.no_grad():
        for images, masks in DataLoader(data, batch_size=2, sampler=sampler, collate_fn=collate_padded):
            preds = model(images).argmax(1)
            metrics.update(preds=preds, target=masks)
            rows.update(preds=preds, target=masks)
    return metrics, rows


def _ddp_rank(rank: int, dest: Path, meta: Path, predictions: Path, rendezvous: Path, out: Path) -> None:
    """One process of the 2-process run (torch.multiprocessing.spawn calls it with its rank)."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=RANKS,
                                         timeout=datetime.timedelta(seconds=60))  # a stray collective fails
    try:
        metrics, rows = validation_loop(dest, meta, rank, RANKS)
        result = metrics.compute()                     # sums over the ranks
        total = metrics.sync()
        if rank == 0:  # the folder API inside a DDP script, on one rank: no collective, nothing sharded
            folder = imagenets.evaluate(predictions, dest / "validation-segmentation", K, workers=0,
                                        meta_dir=meta).images
        torch.save({"result": result, "local_images": metrics.images, "state": total.state_dict(),
                    "again": metrics.compute(), "rows": rows.sync().image_counts().images,
                    "folder": folder if rank == 0 else None}, out / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_a_two_process_gloo_validation_loop_gives_the_one_process_numbers(tree, tmp_path):
    alone, _rows = validation_loop(tree["dest"], tree["meta"])
    torch.multiprocessing.spawn(_ddp_rank, args=(tree["dest"], tree["meta"], tree["pred"], tmp_path / "rendezvous",
                                                 tmp_path), nprocs=RANKS, join=True)
    expected, state = alone.compute(), alone.state_dict()
    for rank in range(RANKS):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["local_images"] == 4                # each rank counted half of the 8 images
        assert json.dumps(got["result"]) == json.dumps(expected)   # exactly, NaN included
        assert json.dumps(got["again"]) == json.dumps(expected)    # compute() leaves the local counts alone
        assert all(torch.equal(got["state"][key], value) for key, value in state.items() if key != "num_classes")
        assert got["rows"] == 8
    assert torch.load(tmp_path / "rank0.pt", weights_only=True)["folder"] == 8


# ---- the commands under torchrun --------------------------------------------------------------

def torchrun(*argv: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(cwd)]))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
               "-m", "imagenets", *argv]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert (done.returncode == 0) == ok, done.stderr[-3000:]
    return done


def _files(folder: Path) -> Dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_evaluate_under_torchrun_writes_exactly_the_one_process_files(tree, tmp_path, capsys):
    common = ["--predict-dir", str(tree["pred"]), "--gt-dir", str(tree["dest"] / "validation-segmentation"),
              "--mode", "50", "--meta-dir", str(tree["meta"]), "--workers", "0"]

    def outputs(folder: Path) -> List[str]:
        folder.mkdir()
        return ["--output", str(folder / "r.json"), "--per-image", str(folder / "images.csv"),
                "--save-counts", str(folder / "counts.npz"), "--confusion", str(folder / "confusion.csv")]

    assert EVALUATE.main(common + outputs(tmp_path / "one"), prog="imagenets evaluate") == 0
    printed = capsys.readouterr().out
    done = torchrun("evaluate", *common, *outputs(tmp_path / "two"), cwd=tmp_path)
    assert done.stdout == printed and done.stdout.count("FMeasure") == 1   # the tables once, from rank 0
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) == ["confusion.csv", "counts.npz", "images.csv", "r.json"]
    assert {k: v for k, v in one.items() if k != "counts.npz"} == {k: v for k, v in two.items() if k != "counts.npz"}
    with np.load(tmp_path / "one" / "counts.npz") as a, np.load(tmp_path / "two" / "counts.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[f], b[f]) for f in a.files)


def test_a_bad_file_in_one_ranks_share_is_one_error_line_from_rank_0(tree, tmp_path):
    predictions = tmp_path / "pred"
    shutil.copytree(tree["pred"], predictions)
    last = sorted(predictions.rglob("*.png"))[-1]          # in rank 1's share
    last.write_bytes(last.read_bytes()[:-200])               # the header is fine: only decoding fails
    done = torchrun("evaluate", "--predict-dir", str(predictions), "--gt-dir",
                    str(tree["dest"] / "validation-segmentation"), "--mode", "50", "--meta-dir", str(tree["meta"]),
                    "--workers", "0", "--quiet", cwd=tmp_path, ok=False)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(last) in errors[0] and "re-export it" in errors[0]
    assert "exitcode: 2" in done.stderr and "[rank0]: Traceback" not in done.stderr


def test_an_output_over_an_input_is_one_error_line_under_torchrun(tree, tmp_path):
    match = tmp_path / "match.json"
    match.write_text(json.dumps({"0": 0, **{str(c): c for c in range(1, K + 1)}}))
    before = match.read_bytes()
    done = torchrun("evaluate", "--predict-dir", str(tree["pred"]), "--gt-dir",
                    str(tree["dest"] / "validation-segmentation"), "--mode", "50", "--meta-dir", str(tree["meta"]),
                    "--workers", "0", "--match", str(match), "--output", str(match), cwd=tmp_path, ok=False)
    # counted in the text, not by line: two ranks writing at once share a line
    assert done.stderr.count("error: ") == 1 and done.stderr.count("is --match, an input of this run") == 1, \
        done.stderr[-3000:]
    assert match.read_bytes() == before


MODEL = textwrap.dedent("""
    import torch


    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, kernel_size=8, stride=8), torch.nn.ReLU())
""")


def test_distance_matching_under_torchrun_labels_and_scores_as_one_process(tree, tmp_path, capsys, monkeypatch):
    (tmp_path / "ddp_model.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--dataset", str(tree["dest"]), "--mode", "50", "--meta-dir", str(tree["meta"]),
              "--model", "ddp_model:make", "--split", "validation", "--workers", "0", "--batch-size", "2",
              "--quiet"]
    assert DISTANCE_MATCHING.main(common + ["--output-dir", str(tmp_path / "one")]) == 0
    printed = capsys.readouterr().out
    done = torchrun("distance-matching", *common, "--output-dir", str(tmp_path / "two"), cwd=tmp_path)
    assert done.stdout == printed and "mIoU" in printed
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert len([name for name in one if name.endswith(".png")]) == 8
    assert all(one[name] == two[name] for name in one if not name.endswith(".pt"))  # PNGs, record
    (bank_one,), (bank_two,) = [[p for p in (tmp_path / run).iterdir() if p.suffix == ".pt"] for run in ("one", "two")]
    saved_one, saved_two = torch.load(bank_one, weights_only=True), torch.load(bank_two, weights_only=True)
    assert all(torch.equal(saved_one[key], saved_two[key]) for key in ("embeddings", "labels"))

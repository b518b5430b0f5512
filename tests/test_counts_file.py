"""``--save-counts`` files as ``compare`` reads them: nothing in one is trusted, and runs that cannot be
paired (another subset, other images, other GT masks) are refused in one line naming what differs."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imagenets.codec import read_mask, write_mask
from imagenets.evaluation import aggregate, compare
from imagenets.evaluation.engine.countsfile import FORMAT, load_counts
from imagenets.evaluation.evaluator import COMMAND as EVALUATE
from helpers import assert_one_error, base_args, exit_status


@pytest.fixture
def case(eval_case):
    return eval_case


def save_counts(case, name: str, *extra: str) -> Path:
    path = case["tmp"] / name
    assert EVALUATE.main(base_args(case) + ["--save-counts", str(path), *extra]) == 0
    return path


@pytest.fixture
def saved(case) -> Path:
    return save_counts(case, "a.npz")


def arrays_of(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def rewrite(path: Path, target: Path, **changes) -> Path:
    """The counts file ``path`` with some arrays replaced, written as numpy writes an .npz."""
    np.savez_compressed(target, **{**arrays_of(path), **changes})
    return target


def refused(capsys, a: Path, b: Path, *needles: str) -> str:
    rc = exit_status(compare.COMMAND.main, [str(a), str(b), "--bootstrap", "20"])
    return assert_one_error(rc, capsys.readouterr().err, *needles)


def test_a_saved_file_records_what_it_was_computed_on(case, saved):
    run = load_counts(saved)
    assert run.context["subset"] == "ImageNetS50" and len(run.context["gt_fingerprint"]) == 64
    assert run.context["match_digest"] == "" and run.names == case["masks"]
    assert str(arrays_of(saved)["format"]) == FORMAT


@pytest.mark.parametrize("change, needle", [
    (lambda a: {"correct": np.full(a["correct"].size, 7)}, "correctness is 7"),            # Acc 700%
    (lambda a: {"f": np.full(a["f"].size, 1e6)}, "F-measure is 1000000.0"),               # FMeasure 1e8%
    (lambda a: {"f": np.full(a["f"].size, np.nan)}, "F-measure is nan"),
    (lambda a: {"values": -a["values"]}, "negative"),                                     # mIoU 0
    (lambda a: {"keys": a["keys"] + 30 * 51}, "outside 0..1529"),                         # dropped before
    (lambda a: {"correct": a["correct"][:-1]}, "disagree in length"),
    (lambda a: {"values": a["values"][:-1]}, "disagree in length"),
    (lambda a: {"indptr": a["indptr"][::-1]}, "indptr is not a monotone index"),
    (lambda a: {"keys": a["keys"][:, None]}, "'keys' is a 2-D int64 array"),
    (lambda a: {"num_classes": np.array([50, 50])}, "'num_classes' is a 1-D"),
    (lambda a: {"num_classes": np.array(51)}, "num_classes is 51"),
    (lambda a: {"keys": a["keys"][::-1].copy()}, "repeated or out of order"),
    (lambda a: {"values": a["values"] * (1 + (a["keys"] % (30 * 51) < 51))}, "more I than"),  # IoU > 100%
    (lambda a: {"context_values": a["context_values"][:-1]}, "do not pair up"),
    (lambda a: {"names": np.array(["x.png"] * a["names"].size)}, "appears twice"),
])
def test_a_damaged_counts_file_is_one_line(case, saved, capsys, change, needle):
    bad = rewrite(saved, case["tmp"] / "bad.npz", **change(arrays_of(saved)))
    refused(capsys, saved, bad, str(bad), needle)


def test_edited_gt_counts_no_longer_match_the_fingerprint(case, saved, capsys):
    arrays = arrays_of(saved)
    values = arrays["values"].copy()
    values[arrays["keys"] // 51 % 6 == 2] += 1     # every G count: the GT as another folder would give it
    bad = rewrite(saved, case["tmp"] / "bad.npz", values=values)
    refused(capsys, saved, bad, str(bad), "GT fingerprint")


def test_a_file_without_provenance_is_refused(case, saved, capsys):
    arrays = arrays_of(saved)
    keep = arrays["context_keys"] != "gt_fingerprint"
    bad = rewrite(saved, case["tmp"] / "bad.npz", context_keys=arrays["context_keys"][keep],
                  context_values=arrays["context_values"][keep])
    refused(capsys, saved, bad, str(bad), "gt_fingerprint")


def test_an_older_counts_file_says_save_it_again(case, saved, capsys):
    bad = rewrite(saved, case["tmp"] / "old.npz", format=np.array("imagenets-image-counts/1"))
    refused(capsys, saved, bad, str(bad), "older", "--save-counts")


def test_a_header_claiming_745_gib_is_refused_before_allocating(case, saved, capsys):
    bad = case["tmp"] / "huge.npz"
    with zipfile.ZipFile(saved) as good, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as out:
        for info in good.infolist():
            if info.filename != "f.npy":
                out.writestr(info.filename, good.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 11,)})
        out.writestr("f.npy", header.getvalue() + b"\0" * 64)
    start = time.perf_counter()
    refused(capsys, saved, bad, str(bad), "'f'", "claims 100000000000 values")
    assert time.perf_counter() - start < 10


def test_a_member_claiming_more_than_it_stores_is_refused(case, saved, capsys):
    bad = case["tmp"] / "bomb.npz"
    shutil.copy(saved, bad)
    data = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as archive:
        info = archive.getinfo("values.npy")
    # The central directory's uncompressed size of values.npy: claim 4 GB.
    at = data.rfind(b"values.npy") - 46 + 24
    data[at:at + 4] = (4_000_000_000).to_bytes(4, "little")
    bad.write_bytes(bytes(data))
    assert info.file_size < 4_000_000_000
    refused(capsys, saved, bad, str(bad), "claims 4000000000 bytes")


def test_pickled_arrays_are_never_loaded(case, saved, capsys):
    bad = rewrite(saved, case["tmp"] / "pickle.npz", names=np.array([object()] * 8, dtype=object))
    refused(capsys, saved, bad, str(bad), "'names'")


def test_runs_scored_against_another_gt_dir_are_refused(case, saved, tmp_path, capsys):
    other_gt = tmp_path / "other-gt"
    shutil.copytree(case["gt"], other_gt)
    mask = case["masks"][0]
    ids = read_mask(other_gt / mask)
    ids[:4, :4] = ids[:4, :4] % 50 + 1              # another annotation of one image
    write_mask(other_gt / mask, ids)
    args = base_args(case)
    args[args.index("--gt-dir") + 1] = str(other_gt)
    b = case["tmp"] / "b.npz"
    assert EVALUATE.main(args + ["--save-counts", str(b)]) == 0
    refused(capsys, saved, b, str(saved), str(b), "different ground truth", str(other_gt))


def test_runs_through_other_matches_are_compared(case, saved, capsys):
    match = case["tmp"] / "match.json"
    match.write_text(json.dumps({str(i): i for i in range(51)}))
    b = save_counts(case, "b.npz", "--match", str(match))
    assert len(load_counts(b).context["match_digest"]) == 64
    capsys.readouterr()
    assert compare.COMMAND.main([str(saved), str(b), "--bootstrap", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["mIoU"]["difference"] == 0.0


def test_aggregate_refuses_runs_of_other_subsets(case, tmp_path, capsys):
    out = tmp_path / "run.json"
    assert EVALUATE.main(base_args(case) + ["--output", str(out)]) == 0
    run = json.loads(out.read_text())
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run))
    b.write_text(json.dumps({**run, "subset": "ImageNetS300", "mode": 300}))
    rc = exit_status(aggregate.COMMAND.main, [str(a), str(b)])
    assert_one_error(rc, capsys.readouterr().err, str(a), str(b), "subset")

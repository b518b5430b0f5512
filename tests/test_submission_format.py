"""The official submission format: zips made as the official tools make them, our zip's shape, damaged zips."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import struct
import time
import zipfile
from pathlib import Path
from typing import Iterable, List, Optional

import pytest

from imagenets.cli import main as imagenets_main
from imagenets.codec import read_mask, write_mask
from imagenets.fileio import STALE_AFTER_S, Terminated, exit_on_sigterm
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.protocols import apply_match, score

from helpers import SUBSET, assert_same_numbers, direct_eval, first_mask, score_zip, submit

REPO = Path(__file__).resolve().parent.parent
#: method.txt of an official tool: six lines, these labels, no final newline.
OFFICIAL_LINES = ["Method name: PASS", "Training data: ImageNet-1k", "Training scheme: unsupervised",
                  "Networks: ResNet-50", "Paper/Project link: null", "Method description: null"]


def official_zip(root: Path, pred_dir: Path, masks: Iterable[str], match: Optional[Path] = None,
                 method_lines: List[str] = OFFICIAL_LINES, final_newline: bool = False) -> Path:
    """A zip built exactly as the official tools build it: ``shutil.make_archive`` over the split folder."""
    folder = root / "official" / "validation"
    for mask in masks:
        (folder / mask).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pred_dir / mask, folder / mask)
    (folder / "method.txt").write_text("\n".join(method_lines) + ("\n" if final_newline else ""))
    if match is not None:
        shutil.copy(match, folder / "match.json")
    return Path(shutil.make_archive(str(root / "official-sub"), "zip", root_dir=folder))


def masks_of(case) -> List[str]:
    return [mask for _image, mask in case["names"]]


def score_result(case, zip_path):
    return score.score_submission(zip_path, case["gt"], SUBSET, case["meta"], workers=0, quiet=True)


# ---- official zips score exactly as evaluate --------------------------------------------------

def test_official_zip_has_folder_entries_and_no_enclosing_folder(case):
    with zipfile.ZipFile(official_zip(case["root"], case["pred"], masks_of(case), case["match"])) as archive:
        names = archive.namelist()
    assert "method.txt" in names and "match.json" in names and "n01443537/" in names


def test_official_zip_with_match_json_scores_as_evaluate(case, capsys):
    zip_path = official_zip(case["root"], case["pred"], masks_of(case), case["match"])
    assert_same_numbers(score_result(case, zip_path), direct_eval(case))
    assert "warning" not in capsys.readouterr().err


def test_official_zip_of_class_ids_scores_as_evaluate(case):
    matched = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], matched, workers=0, quiet=True)
    zip_path = official_zip(case["root"], matched, masks_of(case))
    expected = evaluate_predictions(matched, case["gt"], SUBSET, case["meta"], workers=0, quiet=True)
    assert_same_numbers(score_result(case, zip_path), expected)


@pytest.mark.parametrize("with_match", [False, True])
def test_out_of_range_ids_are_counted_and_warned_as_evaluate_does(case, capsys, with_match):
    for index, mask in enumerate(masks_of(case)[:3]):
        ids = read_mask(case["pred"] / mask)
        ids[0, :index + 1] = 700  # uncovered by the match, and outside 0..K
        write_mask(case["pred"] / mask, ids)
    match = case["match"] if with_match else None
    zip_path = official_zip(case["root"], case["pred"], masks_of(case), match)
    result = score_result(case, zip_path)
    scored = capsys.readouterr().err
    expected = evaluate_predictions(case["pred"], case["gt"], SUBSET, case["meta"], match_file=match,
                                    workers=0, quiet=True)
    evaluated = capsys.readouterr().err
    assert result["out_of_range_pixels"] == expected["out_of_range_pixels"] == 6
    assert "6 pixels in 3 images" in scored and scored == evaluated
    assert_same_numbers(result, expected)


def test_method_txt_with_a_final_newline_is_accepted_silently(case, capsys):
    zip_path = official_zip(case["root"], case["pred"], masks_of(case), case["match"], final_newline=True)
    assert score_zip(case, zip_path) == 0
    assert "warning" not in capsys.readouterr().err


def test_method_txt_with_extra_lines_draws_a_warning(case, capsys):
    lines = OFFICIAL_LINES + ["Protocol: fully-unsupervised"]
    zip_path = official_zip(case["root"], case["pred"], masks_of(case), case["match"], method_lines=lines)
    assert score_zip(case, zip_path) == 0
    assert "none of the six official" in capsys.readouterr().err


def test_method_txt_of_our_old_labels_is_refused(case, capsys, scratch):
    lines = OFFICIAL_LINES[:4] + ["Link: none", "Description: x"]
    zip_path = official_zip(case["root"], case["pred"], masks_of(case), case["match"], method_lines=lines)
    assert score_zip(case, zip_path) == 2
    err = capsys.readouterr().err
    assert "no 'Paper/Project link: ...' line" in err and "no 'Method description: ...' line" in err
    assert list(scratch.iterdir()) == []


# ---- our zip has the official shape -------------------------------------------------------------

def test_submission_method_txt_is_the_official_six_lines(case):
    assert submit(case, case["pred"], "--match", str(case["match"])) == 0
    with zipfile.ZipFile(case["root"] / "sub.zip") as archive:
        text = archive.read("method.txt")
    assert text == (b"Method name: Toy\nTraining data: ImageNet-1k train, no labels\nTraining scheme: clustering\n"
                    b"Networks: ResNet-50\nPaper/Project link: null\nMethod description: a toy method")


def test_submission_zip_lists_what_the_official_tools_list(case):
    assert submit(case, case["pred"], "--match", str(case["match"])) == 0
    with zipfile.ZipFile(case["root"] / "sub.zip") as ours, \
            zipfile.ZipFile(official_zip(case["root"], case["pred"], masks_of(case), case["match"])) as theirs:
        assert sorted(ours.namelist()) == sorted(theirs.namelist())


def test_submission_prints_the_protocol_and_reports_it(case, capsys):
    report = case["root"] / "report.json"
    assert submit(case, case["pred"], "--match", str(case["match"]), "--check-only", "--report", str(report),
                  quiet=False) == 0
    assert "protocol fully-unsupervised" in capsys.readouterr().err
    assert json.loads(report.read_text())["protocol"] == "fully-unsupervised"


def test_out_of_range_refusal_says_how_to_apply_the_match_and_the_flag_allows_them(case, capsys):
    mask = first_mask(case)
    ids = read_mask(case["pred"] / mask)
    ids[0, 0] = 700
    write_mask(case["pred"] / mask, ids)
    assert submit(case, case["pred"], protocol="free") == 2
    err = capsys.readouterr().err
    assert "imagenets apply-match" in err and "--match" in err and "--allow-out-of-range" in err
    assert submit(case, case["pred"], "--allow-out-of-range", protocol="free") == 0
    assert "1 PNGs hold ids outside 0..50" in capsys.readouterr().err


def test_a_stale_temporary_zip_is_removed_on_the_next_run(case):
    stale = case["root"] / ".sub.zip.abcd_123.tmp"
    other = case["root"] / ".notes.txt.abcd_123.tmp"  # another file's: not this run's business
    for path in (stale, other):
        path.write_bytes(b"PK half")
    old = time.time() - 2 * STALE_AFTER_S
    for path in (stale, other):
        os.utime(path, (old, old))
    assert submit(case, case["pred"], "--match", str(case["match"])) == 0
    assert not stale.exists() and other.exists()


# ---- the README example runs as written ---------------------------------------------------------

def readme_protocol_commands() -> List[List[str]]:
    """The ``imagenets ...`` lines of the README's Protocols example (continuations joined)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Protocols\n.*?```bash\n(.*?)```", text, flags=re.S).group(1)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()
            if line.startswith("imagenets ")]


def test_readme_protocols_example_runs_as_written(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DEST" / "ImageNetS50").mkdir(parents=True)
    os.symlink(case["gt"], tmp_path / "DEST" / "ImageNetS50" / "validation-segmentation")
    os.symlink(case["pred"], tmp_path / "P")
    (tmp_path / "results").mkdir()
    shutil.copy(case["match"], tmp_path / "results" / "mymethod.json")
    commands = [argv for argv in readme_protocol_commands() if argv[1] != "distance-matching"]
    assert [argv[1] for argv in commands] == ["apply-match", "submission", "score"]
    for argv in commands:
        extra = ["--workers", "0", "--quiet"] + (["--meta-dir", str(case["meta_dir"])]
                                                 if argv[1] != "apply-match" else [])
        assert imagenets_main(argv[1:] + extra) == 0, argv
    assert (tmp_path / "submission.zip").is_file()


# ---- damaged and hostile zips: one line, exit 2, nothing left ---------------------------------

def central_offset(data: bytes, name: str) -> int:
    """Offset of ``name``'s central directory header."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + length] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(name)


def forge(zip_path: Path, name: str, method: Optional[int] = None, flip_at: Optional[float] = None) -> Path:
    """Patch one entry: its compression method (local and central headers), or a byte of its data."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(name)
    data = bytearray(zip_path.read_bytes())
    local = info.header_offset
    if method is not None:
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central_offset(bytes(data), name) + 10, method)
    if flip_at is not None:
        name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
        start = local + 30 + name_len + extra_len
        for offset in range(int(flip_at * info.compress_size), int(flip_at * info.compress_size) + 4):
            data[start + offset] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    return zip_path


def assert_one_line_refusal(case, capsys, zip_path, scratch, *extra) -> str:
    code = score_zip(case, zip_path, *extra)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: "), err
    assert list(scratch.iterdir()) == [], "the temporary folder was left behind"
    return err


@pytest.fixture
def official(case):
    return official_zip(case["root"], case["pred"], masks_of(case), case["match"])


def test_deflate64_entry_is_refused_in_one_line(case, capsys, official, scratch):
    err = assert_one_line_refusal(case, capsys, forge(official, first_mask(case), method=9), scratch)
    assert "compression method 9 (Deflate64" in err


@pytest.mark.parametrize("name, flip_at", [("method.txt", 0.0), ("MASK", 0.5)])
def test_corrupt_deflate_data_is_refused_in_one_line(case, capsys, official, scratch, name, flip_at):
    name = first_mask(case) if name == "MASK" else name
    err = assert_one_line_refusal(case, capsys, forge(official, name, flip_at=flip_at), scratch)
    assert f"entry {name!r} cannot be read" in err, err


def add_entries(zip_path: Path, entries) -> Path:
    with zipfile.ZipFile(zip_path, "a") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return zip_path


@pytest.mark.parametrize("alias", ["./{}", "{0}//{1}"])
def test_aliases_of_an_entry_are_refused(case, capsys, official, scratch, alias):
    mask = first_mask(case)
    name = alias.format(mask) if alias.startswith("./") else alias.format(*mask.split("/"))
    bad = add_entries(official, [(name, b"x")])
    err = assert_one_line_refusal(case, capsys, bad, scratch)
    assert f"an alias of {mask!r}" in err and "refusing to extract anything" in err


def test_an_oversized_match_json_is_refused_before_reading(case, capsys, official, scratch, monkeypatch):
    monkeypatch.setitem(score.SMALL_FILES, "match.json", 4096)
    with zipfile.ZipFile(official) as archive:
        padded = archive.read("match.json") + b" " * 5000
    bad = case["root"] / "padded.zip"
    with zipfile.ZipFile(official) as old, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info, padded if info.filename == "match.json" else old.read(info))
    err = assert_one_line_refusal(case, capsys, bad, scratch)
    assert "match.json is" in err and "more than the 4096" in err


def test_unexpected_entries_are_refused_before_extracting(case, capsys, official, scratch, monkeypatch):
    calls = []
    monkeypatch.setattr(score, "extract_entries", lambda *a, **k: calls.append(a))
    bad = add_entries(official, [("notes/readme.txt", b"x")])
    err = assert_one_line_refusal(case, capsys, bad, scratch)
    assert "extra: 1" in err and "nothing was extracted" in err and calls == []


def test_sigterm_while_scoring_removes_the_temporary_folder(case, official, scratch, monkeypatch):
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    monkeypatch.setattr(score, "evaluate_predictions", killed)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as exc:
        score_zip(case, official)
    assert exc.value.code == 128 + signal.SIGTERM
    assert list(scratch.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_handler_is_restored_after_the_block():
    before = signal.getsignal(signal.SIGTERM)
    with exit_on_sigterm():
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before


def _rewritten(official: Path, target: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(official) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info, data if info.filename == name else old.read(info))
    return target


def test_a_png_cut_short_is_named_by_its_zip_entry(case, capsys, official, scratch):
    mask = first_mask(case)
    with zipfile.ZipFile(official) as archive:
        head = archive.read(mask)[:60]  # the header survives: only decoding finds it
    bad = _rewritten(official, case["root"] / "cut.zip", mask, head)
    last = assert_one_line_refusal(case, capsys, bad, scratch).strip().splitlines()[-1]
    assert f"{bad}:{mask}" in last and "imagenets-score-" not in last


def test_a_match_json_nested_too_deep_is_a_listed_problem(case, capsys, official, scratch):
    bad = _rewritten(official, case["root"] / "deep.zip", "match.json", b"[" * 5000 + b"]" * 5000)
    err = assert_one_line_refusal(case, capsys, bad, scratch)
    assert "match: 1 match.json problems" in err and "nests deeper than" in err

"""Benchmark protocols: apply-match, submission and score on small synthetic predictions (conftest's ``case``)."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagenets.evaluation.protocols import apply_match, score, submission
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.protocols.rules import (APPLIED_MARKER, MATCH_REQUIRED, PROTOCOLS, match_rule, method_text,
                                  parse_method_text)
from imagenets.evaluation.protocols.checks import split_entries
from imagenets.zipsafe import parse_size
from imagenets.codec import read_mask, write_mask
from imagenets.errors import UserError

from helpers import K, SUBSET, assert_same_numbers, direct_eval, first_mask, score_zip, submit


# ---- the protocol table --------------------------------------------------------------------

def test_every_protocol_of_the_benchmark_is_in_the_table():
    assert list(PROTOCOLS) == ["fully-unsupervised", "distance-matching", "semi-supervised", "free"]
    assert [p.name for p in PROTOCOLS.values() if p.match == MATCH_REQUIRED] == ["fully-unsupervised"]
    assert all(p.labels and p.predictions and p.title for p in PROTOCOLS.values())


@pytest.mark.parametrize("name", ["distance-matching", "semi-supervised", "free"])
def test_match_file_with_a_class_id_protocol_draws_a_warning(name):
    assert match_rule(PROTOCOLS[name], has_match=True, matched=False)
    assert match_rule(PROTOCOLS[name], has_match=False, matched=False) == []


def test_fully_unsupervised_needs_a_match_or_matched_predictions():
    protocol = PROTOCOLS["fully-unsupervised"]
    with pytest.raises(UserError, match="apply-match"):
        match_rule(protocol, has_match=False, matched=False)
    with pytest.raises(UserError, match="applied twice"):
        match_rule(protocol, has_match=True, matched=True)
    assert match_rule(protocol, has_match=True, matched=False) == []
    assert match_rule(protocol, has_match=False, matched=None) == []  # a received zip: trusted


def test_method_text_round_trips_and_refuses_multiline_fields():
    values = {"Method name": "M", "Training data": "d", "Training scheme": "s", "Networks": "n",
              "Paper/Project link": "https://x.org/a:b", "Method description": "x: y"}
    text = method_text(values)
    assert text.splitlines()[:2] == ["Method name: M", "Training data: d"] and not text.endswith("\n")
    parsed = parse_method_text(text)
    assert parsed.fields == values and parsed.problems == [] and parsed.warnings == []
    with pytest.raises(UserError, match="Method description"):
        method_text({**values, "Method description": "two\nlines"})


def test_unknown_method_values_are_written_as_null():
    text = method_text({"Method name": "M", "Paper/Project link": "none", "Networks": " "})
    assert "Paper/Project link: null" in text and "Networks: null" in text and "Training data: null" in text


def test_sizes_take_binary_units():
    assert parse_size("4G") == 4 * 1024 ** 3
    assert parse_size("500MiB") == 500 * 1024 ** 2
    with pytest.raises(UserError):
        parse_size("lots")


# ---- apply-match ---------------------------------------------------------------------------

def test_apply_match_maps_every_png_through_the_match(case):
    out = case["root"] / "matched"
    assert apply_match.COMMAND.main(["--predict-dir", str(case["pred"]), "--match", str(case["match"]),
                             "--output-dir", str(out), "--workers", "0", "--quiet"]) == 0
    match = {int(k): v for k, v in json.loads(case["match"].read_text()).items()}
    for _image, mask in case["names"]:
        expected = np.vectorize(match.get)(read_mask(case["pred"] / mask))
        assert np.array_equal(read_mask(out / mask), expected)
    assert (out / APPLIED_MARKER).is_file()


def test_apply_match_second_run_changes_nothing(case):
    out = case["root"] / "matched"
    first = apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    second = apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert (first.written, second.written, second.kept) == (len(case["names"]), 0, len(case["names"]))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps


def test_apply_match_resumes_an_interrupted_run(case):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    (out / first_mask(case)).unlink()
    stats = apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert (stats.written, stats.kept) == (1, len(case["names"]) - 1)


def test_apply_match_with_a_new_match_rewrites_every_output(case):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    other = case["root"] / "other.json"
    other.write_text(json.dumps({**{str(p): p for p in range(1, K + 1)}, "0": 0}))
    stats = apply_match.apply_match(case["pred"], other, out, workers=0, quiet=True)
    assert stats.written == len(case["names"])
    mask = first_mask(case)
    assert np.array_equal(read_mask(out / mask), read_mask(case["pred"] / mask))


def test_apply_match_keeps_uncovered_ids_above_k_and_warns(case, capsys):
    mask = first_mask(case)
    pred = read_mask(case["pred"] / mask)
    pred[0, 0], pred[0, 1] = 700, 60
    write_mask(case["pred"] / mask, pred)
    dropped = int(pred[(pred > 0) & (pred <= K)][0])
    partial = {k: v for k, v in json.loads(case["match"].read_text()).items() if k != str(dropped)}
    partial_file = case["root"] / "partial.json"
    partial_file.write_text(json.dumps(partial))
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], partial_file, out, mode="50", workers=0, quiet=True)
    written = read_mask(out / mask)
    assert (written[0, 0], written[0, 1]) == (700, 60)
    assert (written[pred == dropped] == 65535).all()  # an uncovered cluster 1..K must not pass for a class
    assert "does not cover" in capsys.readouterr().err


def test_apply_match_refuses_an_output_inside_the_predictions(case, capsys):
    assert apply_match.COMMAND.main(["--predict-dir", str(case["pred"]), "--match", str(case["match"]),
                             "--output-dir", str(case["pred"] / "matched"), "--quiet"]) == 2
    assert "overlap" in capsys.readouterr().err


# ---- round trips ---------------------------------------------------------------------------

def test_round_trip_through_apply_match_gives_the_evaluator_numbers(case, capsys):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert submit(case, out) == 0
    assert score_zip(case, case["root"] / "sub.zip", "--output", str(case["root"] / "score.json"),
                     "--protocol", "fully-unsupervised") == 0
    result = json.loads((case["root"] / "score.json").read_text())
    assert_same_numbers(result, direct_eval(case))
    assert result["protocol"] == "fully-unsupervised" and result["match"] is None


def test_round_trip_with_match_in_the_zip_gives_the_evaluator_numbers(case):
    assert submit(case, case["pred"], "--match", str(case["match"]), "--workers", "2") == 0
    with zipfile.ZipFile(case["root"] / "sub.zip") as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert parse_method_text(archive.read("method.txt").decode()).fields["Method name"] == "Toy"
    folders = {m.split("/")[0] + "/" for _i, m in case["names"]}
    assert set(infos) == {"method.txt", "match.json"} | {m for _i, m in case["names"]} | folders
    assert infos[first_mask(case)].compress_type == zipfile.ZIP_STORED
    meta = case["meta"]
    result = score.score_submission(case["root"] / "sub.zip", case["gt"], SUBSET, meta, workers=2, quiet=True)
    assert_same_numbers(result, direct_eval(case))


def test_umbrella_command_offers_the_protocol_commands(case):
    from imagenets.cli import all_commands
    assert {"apply-match", "submission", "score"} <= set(all_commands())


# ---- submission refusals -------------------------------------------------------------------

def refused(case, capsys, *extra, predict_dir=None, protocol="fully-unsupervised"):
    code = submit(case, predict_dir or case["pred"], "--match", str(case["match"]), *extra, protocol=protocol)
    err = capsys.readouterr().err
    assert code == 2 and not (case["root"] / "sub.zip").exists(), err
    assert not list(case["root"].glob(".sub.zip.*")), "a temporary zip was left behind"
    return err


def test_submission_refuses_a_missing_png(case, capsys):
    (case["pred"] / first_mask(case)).unlink()
    err = refused(case, capsys)
    assert "missing: 1" in err and first_mask(case) in err


def test_submission_refuses_an_extra_file(case, capsys):
    (case["pred"] / "n01443537" / "notes.txt").write_text("x")
    assert "extra: 1" in refused(case, capsys)


def test_submission_refuses_a_png_of_the_wrong_size(case, capsys):
    mask = first_mask(case)
    write_mask(case["pred"] / mask, np.zeros((4, 4), dtype=np.int32))
    err = refused(case, capsys, "--images", str(case["images"]))
    assert "wrong-size: 1" in err and "4x4" in err


def test_submission_refuses_a_palette_png(case, capsys):
    Image.new("P", (12, 10)).save(case["pred"] / first_mask(case))
    assert "not-rgb: 1" in refused(case, capsys)


def test_submission_refuses_out_of_range_ids(case, capsys):
    mask = first_mask(case)
    pred = read_mask(case["pred"] / mask)
    pred[0, 0] = 51
    write_mask(case["pred"] / mask, pred)
    assert "out-of-range: 1" in refused(case, capsys, protocol="free")


def test_submission_refuses_fully_unsupervised_cluster_ids_without_a_match(case, capsys):
    assert submit(case, case["pred"]) == 2
    assert "--match" in capsys.readouterr().err
    assert submit(case, case["pred"], "--matched") == 0  # the submitter declares class ids


def test_submission_refuses_a_match_on_matched_predictions(case, capsys):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert "applied twice" in refused(case, capsys, predict_dir=out)
    assert "applied twice" in refused(case, capsys, predict_dir=out, protocol="free")
    assert "applied twice" in refused(case, capsys, "--matched")


def test_submission_warns_about_a_match_with_the_semi_supervised_protocol(case, capsys):
    assert submit(case, case["pred"], "--match", str(case["match"]), protocol="semi-supervised") == 0
    assert "unexpected" in capsys.readouterr().err
    with zipfile.ZipFile(case["root"] / "sub.zip") as archive:
        assert "match.json" in archive.namelist()


def test_submission_report_lists_every_problem_as_json(case, capsys):
    (case["pred"] / first_mask(case)).unlink()
    report = case["root"] / "report.json"
    refused(case, capsys, "--report", str(report))
    data = json.loads(report.read_text())
    assert data["ok"] is False and data["problems"]["missing"]["items"] == [first_mask(case)]


# ---- score refusals ------------------------------------------------------------------------

@pytest.fixture
def good_zip(case):
    assert submit(case, case["pred"], "--match", str(case["match"])) == 0
    return case["root"] / "sub.zip"


def rezip(src: Path, dst: Path, drop=(), add=()):
    """Copy a zip, leaving out names in ``drop`` and adding (ZipInfo or name, bytes) pairs."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename not in drop:
                new.writestr(info, old.read(info))
        for name, data in add:
            new.writestr(name, data)
    return dst


def score_refused(case, capsys, zip_path, scratch, *extra):
    code = score_zip(case, zip_path, *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert list(scratch.iterdir()) == [], "the temporary folder was left behind"
    return err


def test_score_refuses_a_parent_path_entry_before_extracting(case, capsys, good_zip, scratch):
    bad = rezip(good_zip, case["root"] / "bad.zip", add=[("../x", b"evil")])
    err = score_refused(case, capsys, bad, scratch)
    assert "'..'" in err and "refusing to extract anything" in err
    assert not (scratch.parent / "x").exists()


def test_score_refuses_an_absolute_path_entry(case, capsys, good_zip, scratch):
    bad = rezip(good_zip, case["root"] / "bad.zip", add=[("/tmp/x", b"evil")])
    assert "absolute path" in score_refused(case, capsys, bad, scratch)


def test_score_refuses_a_symlink_entry(case, capsys, good_zip, scratch):
    link = zipfile.ZipInfo("n01443537/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = rezip(good_zip, case["root"] / "bad.zip", add=[(link, b"/etc/passwd")])
    assert "symbolic link" in score_refused(case, capsys, bad, scratch)


def test_score_refuses_an_oversized_zip(case, capsys, good_zip, scratch):
    assert "--max-extract-size" in score_refused(case, capsys, good_zip, scratch, "--max-extract-size", "1K")


def test_score_refuses_too_many_entries(case, capsys, good_zip, scratch):
    assert "more than the cap 3" in score_refused(case, capsys, good_zip, scratch, "--max-entries", "3")


def test_score_refuses_a_file_that_is_not_a_zip(case, capsys, scratch):
    (case["root"] / "fake.zip").write_text("not a zip")
    assert "not a readable zip" in score_refused(case, capsys, case["root"] / "fake.zip", scratch)


def test_score_refuses_a_zip_without_method_txt(case, capsys, good_zip, scratch):
    bad = rezip(good_zip, case["root"] / "bad.zip", drop={"method.txt"})
    assert "method.txt (missing)" in score_refused(case, capsys, bad, scratch)


def test_score_of_a_validation_zip_as_test_names_the_split_to_pass(case, capsys, good_zip, scratch):
    err = score_refused(case, capsys, good_zip, scratch, "--split", "test")
    assert "look like ImageNetS50 validation predictions" in err and "pass --split validation" in err


def test_score_refuses_missing_and_extra_pngs(case, capsys, good_zip, scratch):
    bad = rezip(good_zip, case["root"] / "bad.zip", drop={first_mask(case)}, add=[("n01443537/x.png", b"")])
    err = score_refused(case, capsys, bad, scratch)
    assert "missing: 1" in err and "extra: 1" in err


def test_score_refuses_pngs_of_the_wrong_size_or_palette(case, capsys, good_zip, scratch):
    names = [m for _i, m in case["names"]]
    work = case["root"] / "work"
    write_mask(work / "small.png", np.zeros((3, 3), dtype=np.int32))
    Image.new("P", (13, 10)).save(work / "palette.png")
    swaps = {names[0]: "small.png", names[1]: "palette.png"}
    bad = rezip(good_zip, case["root"] / "bad.zip", drop=set(swaps),
                add=[(name, (work / file).read_bytes()) for name, file in swaps.items()])
    err = score_refused(case, capsys, bad, scratch)
    assert "wrong-size: 1" in err and "not-rgb: 1" in err


def test_score_leaves_no_temporary_folder_after_success(case, good_zip, scratch):
    assert score_zip(case, good_zip) == 0
    assert list(scratch.iterdir()) == []


def test_score_lists_the_protocol_in_its_report(case, good_zip, capsys):
    assert score.COMMAND.main([str(good_zip), "--gt-dir", str(case["gt"]), "--mode", "50", "--meta-dir",
                       str(case["meta_dir"]), "--workers", "0", "--protocol", "fully-unsupervised"]) == 0
    out = capsys.readouterr().out
    assert "method Toy, protocol fully-unsupervised" in out and "mIoU" in out


def test_every_option_has_help_text():
    for command in (apply_match.COMMAND, submission.COMMAND, score.COMMAND):
        parser = command.build_parser("x")
        assert all(action.help for action in parser._actions), command.name
        assert parser.format_help()  # %-formatting of every help string works


def test_extracted_files_stay_in_the_extraction_folder(case, good_zip, tmp_path):
    from imagenets.zipsafe import safe_extract
    names = safe_extract(good_zip, tmp_path / "x", quiet=True)
    assert len(names) == len(case["names"]) + 2  # folder entries make folders, not names
    assert all((tmp_path / "x" / n).resolve().is_relative_to((tmp_path / "x").resolve()) for n in names)
    assert not any(os.path.islink(tmp_path / "x" / n) for n in names)


def test_submission_with_images_accepts_predictions_of_the_right_size(case):
    assert submit(case, case["pred"], "--match", str(case["match"]), "--images", str(case["images"]),
                  "--check-only") == 0
    assert not (case["root"] / "sub.zip").exists()


def test_test_split_takes_its_list_from_the_test_mapping(case, capsys):
    meta = case["meta"]
    masks = [m for _i, m in split_entries(meta, SUBSET, "test")]
    assert masks and all(m.endswith(".png") for m in masks)
    for index, mask in enumerate(masks):
        ids = np.full((6, 7), meta.class_ids(SUBSET)[mask.split("/")[0]], dtype=np.int32)
        ids[:, :index] = 0
        write_mask(case["root"] / "test-gt" / mask, ids)
        write_mask(case["root"] / "test-pred" / mask, np.roll(ids, 1, axis=1))
    # Validation predictions are not a test submission.
    assert submit(case, case["pred"], "--split", "test", "--matched") == 2
    err = capsys.readouterr().err
    assert "missing: " in err and "pass --split validation" in err
    assert submit(case, case["root"] / "test-pred", "--split", "test", protocol="free") == 0
    result = score.score_submission(case["root"] / "sub.zip", case["root"] / "test-gt", SUBSET, meta,
                                    split="test", workers=0, quiet=True)
    expected = evaluate_predictions(case["root"] / "test-pred", case["root"] / "test-gt", SUBSET, meta,
                                    workers=0, quiet=True, names=masks)
    assert result["images"] == len(masks)
    assert_same_numbers(result, expected)


@pytest.mark.parametrize("how", ["rsync -a", "cp -p"])
def test_apply_match_rewrites_predictions_replaced_with_their_times_kept(case, tmp_path, how):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    mask = first_mask(case)
    source = case["pred"] / mask
    stamp = source.stat()
    replacement = tmp_path / "new.png"
    write_mask(replacement, np.zeros_like(read_mask(source)))  # another method's prediction: all "other"
    if how == "rsync -a":  # a new file renamed over the old one, its times set back
        os.utime(replacement, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        os.replace(replacement, source)
    else:  # the old file rewritten in place, its times set back
        source.write_bytes(replacement.read_bytes())
        os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    stats = apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert (stats.written, stats.kept) == (1, len(case["names"]) - 1)
    assert not read_mask(out / mask).any()


def test_apply_match_rewrites_an_output_edited_since(case):
    out = case["root"] / "matched"
    apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    mask = first_mask(case)
    expected = read_mask(out / mask)
    write_mask(out / mask, np.zeros_like(expected))
    stats = apply_match.apply_match(case["pred"], case["match"], out, workers=0, quiet=True)
    assert stats.written == 1 and np.array_equal(read_mask(out / mask), expected)

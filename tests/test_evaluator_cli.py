"""``evaluator.py`` / ``imagenets evaluate`` as users run it: results, JSON, and one clear line per bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from PIL import Image

from imagenets.evaluation.evaluator import COMMAND
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.codec import read_mask, write_mask

from helpers import IMAGES, K, assert_one_error, base_args, exit_status, run_tool


@pytest.fixture
def case(eval_case) -> Dict[str, Path]:
    return eval_case


def pred_path(case, index: int = 0) -> Path:
    return case["pred"] / case["masks"][index]


# ---- working runs -------------------------------------------------------------------------------

def test_run_prints_class_and_summary_tables(case, capsys):
    args = [a for a in base_args(case) if a != "--quiet"]
    assert COMMAND.main(args) == 0
    out = capsys.readouterr().out
    assert "synthetic class 1" in out and "other (background)" in out
    for key in SUMMARY_KEYS:
        assert f"\n{key} " in out
    assert f"{IMAGES} images" in out


def test_output_json_has_summary_keys_ious_and_context(case, capsys):
    out_file = case["tmp"] / "res" / "eval.json"
    assert COMMAND.main(base_args(case) + ["--output", str(out_file)]) == 0
    result = json.loads(out_file.read_text())
    for key in SUMMARY_KEYS:
        assert key in result and (result[key] is None or isinstance(result[key], float))
    assert len(result["IoUs"]) == K + 1
    assert result["subset"] == "ImageNetS50" and result["images"] == IMAGES and result["match"] is None
    assert result["mIoU"] == pytest.approx(sum(result["IoUs"]) / (K + 1))


def test_quiet_prints_only_the_summary_line_when_no_file_keeps_the_result(case, capsys):
    assert COMMAND.main(base_args(case)) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.splitlines()) == 1
    assert captured.out.startswith(f"ImageNetS50, {IMAGES} images: mIoU ")
    assert all(f" {key} " in captured.out for key in SUMMARY_KEYS)


def test_quiet_with_output_prints_nothing(case, capsys):
    assert COMMAND.main(base_args(case) + ["--output", str(case["tmp"] / "r.json")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_workers_give_the_same_numbers(case, tmp_path, capsys):
    files = []
    for workers in ("0", "2"):
        files.append(tmp_path / f"w{workers}.json")
        args = base_args(case) + ["--output", str(files[-1])]
        args[args.index("--workers") + 1] = workers
        assert COMMAND.main(args) == 0
    assert json.loads(files[0].read_text()) == json.loads(files[1].read_text())


def test_out_of_range_ids_warn_with_the_pixel_count(case, capsys):
    expected = 0
    for index in (1, 4):
        ids = read_mask(pred_path(case, index))
        ids[:3, :5] = 51 + index
        ids[-1, -2:] = 65535
        expected += 17
        write_mask(pred_path(case, index), ids)
    assert COMMAND.main(base_args(case)) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert f"{expected} pixels in 2 images" in warnings[0] and "outside 0..50" in warnings[0]


def test_ids_a_match_does_not_cover_warn_with_the_pixel_count(case, capsys):
    # Cover every id the predictions use but 0 (always covered) and the ones in image 0.
    uncovered = set(np.unique(read_mask(pred_path(case, 0))).tolist()) - {0}
    used = set()
    pixels = 0
    for mask in case["masks"]:
        ids = read_mask(case["pred"] / mask)
        used |= set(np.unique(ids).tolist())
        pixels += int(np.isin(ids, list(uncovered)).sum())
    match = {str(i): i for i in sorted(used - uncovered - {0})}
    match["0"] = 0
    match_file = case["tmp"] / "partial.json"
    match_file.write_text(json.dumps(match))
    assert pixels > 0
    assert COMMAND.main(base_args(case) + ["--match", str(match_file)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert f"{pixels} pixels" in warnings[0] and "match does not cover" in warnings[0]


# ---- bad input: one line naming the file and the fix --------------------------------------------

def test_missing_predictions_give_count_and_first_paths(case, capsys):
    for index in (2, 5, 6):
        pred_path(case, index).unlink()
    line = assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err,
                            f"3 of {IMAGES} prediction PNGs are missing", str(pred_path(case, 2)))
    assert "--predict-dir" in line


def test_missing_gt_directory_is_named(case, capsys):
    shutil.rmtree(case["gt"])
    assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err, "--gt-dir", str(case["gt"]))


def test_size_mismatch_names_both_files(case, capsys):
    ids = read_mask(pred_path(case, 3))
    write_mask(pred_path(case, 3), ids[:, :-1])
    assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err, str(pred_path(case, 3)),
                     str(case["gt"] / case["masks"][3]), "size")


@pytest.mark.parametrize("mode", ["L", "P", "LA", "I;16"])
def test_non_rgb_png_explains_the_encoding(case, capsys, mode):
    ids = read_mask(pred_path(case, 1))
    Image.fromarray(ids.astype(np.uint8)).convert(mode).save(pred_path(case, 1))
    assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err, str(pred_path(case, 1)),
                     "R + 256*G", "RGB")


def test_sixteen_bit_rgb_png_is_refused(case):
    # 8 bits per channel is part of the encoding; a 48-bit PNG header alone must be refused.
    path = pred_path(case, 0)
    data = bytearray(path.read_bytes())
    data[24] = 16  # IHDR bit depth
    path.write_bytes(bytes(data))
    from imagenets.evaluation.engine.inputs import check_png
    from imagenets.errors import UserError
    with pytest.raises(UserError, match="16 bits per channel"):
        check_png(path)


def test_not_a_png_is_named(case, capsys):
    pred_path(case, 2).write_bytes(b"this is not an image")
    assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err, str(pred_path(case, 2)), "not a PNG")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_truncated_png_is_named_even_from_a_worker(case, capsys, workers):
    path = case["gt"] / case["masks"][4]
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # the header is intact: found while decoding
    args = base_args(case)
    args[args.index("--workers") + 1] = workers
    assert_one_error(COMMAND.main(args), capsys.readouterr().err, str(path), "corrupt")


def test_gt_of_another_subset_is_named(case, capsys):
    path = case["gt"] / case["masks"][0]
    ids = read_mask(path)
    ids[0, 0] = 300
    write_mask(path, ids)
    assert_one_error(COMMAND.main(base_args(case)), capsys.readouterr().err, str(path), "--mode")


def test_unknown_mode_is_refused_with_status_2(case, capsys):
    args = base_args(case)
    args[args.index("--mode") + 1] = "51"
    assert exit_status(COMMAND.main, args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--mode" in errors[0] and "51" in errors[0]


@pytest.mark.parametrize("content, needle", [
    ("[1, 2, 3]", "not a match"),
    ("{}", "not a match"),
    ("{not json", "match file"),
    ('{"1": "19", "0": 0}', "not an integer class id"),
    ('{"one": 1, "0": 0}', "not an integer id"),
    ('{"1": 51, "0": 0}', "outside the GT ids 0..50"),
    ('{"1": -1, "0": 0}', "outside the GT ids 0..50"),
    ('{"-3": 1, "0": 0}', "negative"),
])
def test_bad_match_file_is_named(case, capsys, content, needle):
    match_file = case["tmp"] / "bad-match.json"
    match_file.write_text(content)
    assert_one_error(COMMAND.main(base_args(case) + ["--match", str(match_file)]), capsys.readouterr().err,
                     str(match_file), needle)


def test_missing_match_file_is_named(case, capsys):
    match_file = case["tmp"] / "nowhere.json"
    assert_one_error(COMMAND.main(base_args(case) + ["--match", str(match_file)]), capsys.readouterr().err,
                     str(match_file))


# ---- the installed ways in --------------------------------------------------------------------

def test_console_script_and_script_file_work(case):
    script = shutil.which("imagenets-evaluate")
    if script is None:
        pytest.skip("imagenets-evaluate is not installed (pip install -e .)")
    out_file = case["tmp"] / "cli.json"
    done = run_tool([script] + base_args(case) + ["--output", str(out_file)], case["tmp"])
    assert done.returncode == 0, done.stderr
    evaluator_py = Path(__file__).resolve().parents[1] / "evaluation" / "evaluator.py"
    done = run_tool([sys.executable, str(evaluator_py)] + base_args(case), case["tmp"])
    assert done.returncode == 0, done.stderr
    assert json.loads(out_file.read_text())["images"] == IMAGES
    pred_path(case, 0).unlink()
    done = run_tool([script] + base_args(case), case["tmp"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: 1 of 8 prediction PNGs are missing")

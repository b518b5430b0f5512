"""``imagenets threshold-curve``: the one-pass curve equals thresholding + the normal tools at every t."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
from PIL import Image

from helpers import assert_one_error
from imagenets.codec import read_mask, write_mask
from imagenets.demo.synthetic import write_synthetic_benchmark, write_synthetic_meta
from imagenets.errors import UserError
from imagenets.evaluation.engine.curve import threshold_curve
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.matchfile import save_match
from imagenets.evaluation.engine.matching import compute_match
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS
from imagenets.evaluation.engine.score_bins import ScoreBins, parse_thresholds
from imagenets.evaluation.threshold_curve import COMMAND
from imagenets.metadata import load_metadata
from imagenets.subsets import get_subset

K = 50
IMAGES = 10
THRESHOLDS = "0:1:0.05"
CURVE_KEYS = ("mIoU", "Acc", "FMeasure")


def write_scores(pred_dir: Path, masks: List[str], seed: int) -> None:
    """PASS-like ``.npy`` scores: lower on 'other' pixels, some exactly on a threshold."""
    rng = np.random.default_rng(seed)
    grid = parse_thresholds(THRESHOLDS).astype(np.float32)
    for mask in masks:
        pred = read_mask(pred_dir / mask)
        scores = rng.random(pred.shape, dtype=np.float32)
        scores = np.where(pred == 0, 0.6 * scores, scores).astype(np.float32)
        scores.reshape(-1)[:6] = rng.choice(grid, size=6)
        np.save(pred_dir / (mask[:-4] + ".npy"), scores)


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A tiny ImageNet-S50 of cluster-id predictions (permuted, some ids out of range) with scores."""
    root = tmp_path_factory.mktemp("curve")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=IMAGES, test=0, train_semi=0))
    made = write_synthetic_benchmark(root / "case", meta, K, sides=(20, 56), permute=True, quality=0.7,
                                     out_of_range=0.3, quiet=True)
    masks = [m for _i, m in meta.validation_names(K)]
    write_scores(root / "case" / "pred", masks, seed=1)
    save_match(root / "match.json", {int(p): c for c, p in enumerate(made["permutation"], 1)})
    return root


def _case(root: Path, tmp_path: Path) -> Dict[str, object]:
    meta = load_metadata(root / "meta")
    return {"root": root, "meta": meta, "meta_dir": root / "meta", "gt": root / "case" / "gt",
            "pred": root / "case" / "pred", "match": root / "match.json", "tmp": tmp_path,
            "masks": [m for _i, m in meta.validation_names(K)]}


@pytest.fixture
def case(pristine, tmp_path) -> Dict[str, object]:
    """The shared data, read only; ``tmp`` is the test's own folder."""
    return _case(pristine, tmp_path)


@pytest.fixture
def writable(pristine, tmp_path) -> Dict[str, object]:
    """A private copy of the data, for tests that break it."""
    shutil.copytree(pristine, tmp_path / "data")
    return _case(tmp_path / "data", tmp_path)


def scores_of(pred_dir: Path, mask: str) -> np.ndarray:
    npy = pred_dir / (mask[:-4] + ".npy")
    if npy.is_file():
        return np.load(npy).astype(np.float32)
    return np.asarray(Image.open(pred_dir / mask)).astype(np.float32) / np.float32(65535)


def write_thresholded(case, t: float, out: Path, scores_dir: Optional[Path] = None) -> Path:
    """What PASS does: prediction 0 wherever float32(score) < float32(t)."""
    for mask in case["masks"]:
        pred = read_mask(case["pred"] / mask)
        pred[scores_of(scores_dir or case["pred"], mask) < np.float32(t)] = 0
        write_mask(out / mask, pred)
    return out


_CURVES: Dict[tuple, Dict[str, object]] = {}


def curve(case, scores_dir: Optional[Path] = None, match: Optional[Path] = None, rematch: bool = False,
          thresholds: str = THRESHOLDS, workers: int = 0) -> Dict[str, object]:
    """The curve of the shared data (computed once per set of arguments), or of other scores."""
    key = (str(case["root"]), str(match), rematch, thresholds, workers)
    if scores_dir is None and key in _CURVES:
        return _CURVES[key]
    result = threshold_curve(case["pred"], scores_dir or case["pred"], case["gt"], get_subset(K), case["meta"],
                           parse_thresholds(thresholds), match_file=match, rematch=rematch, workers=workers,
                           quiet=True)
    if scores_dir is None:
        _CURVES[key] = result
    return result


def evaluate(case, pred_dir: Path, match: Optional[Path]) -> Dict[str, object]:
    return evaluate_predictions(pred_dir, case["gt"], get_subset(K), case["meta"], match_file=match,
                                workers=0, quiet=True)


def rematched(case, pred_dir: Path, name: str) -> Path:
    found = compute_match(pred_dir, case["gt"], get_subset(K), case["meta"], workers=0, quiet=True)
    return save_match(case["tmp"] / f"{name}.json", found["assignment"])


def assert_close(a: float, b: float) -> None:
    assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (a, b)


# ---- the curve against thresholding + evaluate ------------------------------------------------

@pytest.mark.parametrize("index", [0, 3, 9, 14, 20])
def test_curve_with_match_equals_evaluate_on_thresholded_predictions(case, index):
    result = curve(case, match=case["match"])
    t = result["thresholds"][index]
    expected = evaluate(case, write_thresholded(case, t, case["tmp"] / "th"), case["match"])
    for key in CURVE_KEYS:
        assert_close(result["curve"][index][key], expected[key])


@pytest.mark.parametrize("index", [0, 4, 10, 16, 20])
def test_rematch_curve_equals_compute_match_then_evaluate_at_each_threshold(case, index):
    result = curve(case, rematch=True)
    t = result["thresholds"][index]
    thresholded = write_thresholded(case, t, case["tmp"] / "th")
    expected = evaluate(case, thresholded, rematched(case, thresholded, "m"))
    for key in CURVE_KEYS:
        assert_close(result["curve"][index][key], expected[key])


def test_curve_without_match_reads_class_ids(case):
    result = curve(case)
    t = result["thresholds"][6]
    expected = evaluate(case, write_thresholded(case, t, case["tmp"] / "th"), None)
    for key in CURVE_KEYS:
        assert_close(result["curve"][6][key], expected[key])


def test_many_to_one_and_over_clustering_match_is_applied_after_thresholding(case):
    # Clusters 1..50 onto 25 classes, plus over-clusters 51..60 (the out-of-range ids).
    mapping = {str(p): (p - 1) % 25 + 1 for p in range(1, 61)}
    path = case["tmp"] / "many.json"
    path.write_text(json.dumps(mapping))
    result = curve(case, match=path)
    for index in (2, 11):
        t = result["thresholds"][index]
        expected = evaluate(case, write_thresholded(case, t, case["tmp"] / f"th{index}"), path)
        for key in CURVE_KEYS:
            assert_close(result["curve"][index][key], expected[key])


@pytest.mark.parametrize("rematch", [False, True])
def test_best_threshold_gets_every_key_of_evaluate_on_thresholded_predictions(case, rematch):
    result = curve(case, match=None if rematch else case["match"], rematch=rematch, thresholds="0:0.6:0.1")
    rows = [row["mIoU"] for row in result["curve"]]
    assert result["best_threshold"] == result["thresholds"][rows.index(max(rows))]
    thresholded = write_thresholded(case, result["best_threshold"], case["tmp"] / "best")
    match = rematched(case, thresholded, "best") if rematch else case["match"]
    expected = evaluate(case, thresholded, match)
    best = result["best"]
    for key in (*SUMMARY_KEYS, "images", "out_of_range_pixels"):
        assert best[key] == pytest.approx(expected[key], rel=1e-12, nan_ok=True), key
    assert best["IoUs"] == pytest.approx(expected["IoUs"], rel=1e-12)
    if rematch:
        assert result["best_match"] == json.loads(Path(match).read_text())


def stripes(rng, ids, width: int = 6, height: int = 4) -> np.ndarray:
    """Equal vertical stripes of ``ids``: equal pixel counts, so the most predicted clusters tie."""
    return np.repeat(np.asarray(ids, dtype=np.int32), width // len(ids))[None, :].repeat(height, axis=0)


def test_rematch_acc_ties_and_empty_images_match_evaluate(tmp_path):
    rng = np.random.default_rng(7)
    meta = load_metadata(write_synthetic_meta(tmp_path / "meta", K, validation=16, test=0, train_semi=0))
    masks = [m for _i, m in meta.validation_names(K)]
    for n, mask in enumerate(masks):
        parts = int(rng.choice([2, 3]))
        pred = stripes(rng, rng.choice(np.arange(1, 7), size=parts, replace=False))
        gt = stripes(rng, rng.choice([0, 1, 2, 3, 4, 5, 6, 1000], size=parts))
        if n == 0:
            gt[:] = 1000          # nothing left after dropping ignore
        scores = stripes(rng, rng.choice([0.1, 0.5, 0.9], size=parts)).astype(np.float32)
        write_mask(tmp_path / "gt" / mask, gt)
        write_mask(tmp_path / "pred" / mask, pred)
        np.save(tmp_path / "pred" / (mask[:-4] + ".npy"), scores)
    case = {"root": tmp_path, "meta": meta, "gt": tmp_path / "gt", "pred": tmp_path / "pred", "tmp": tmp_path,
            "masks": masks}
    result = curve(case, rematch=True, thresholds="0,0.3,0.5,0.7,0.9,0.95")
    for index, t in enumerate(result["thresholds"]):
        thresholded = write_thresholded(case, t, tmp_path / f"th{index}")
        expected = evaluate(case, thresholded, rematched(case, thresholded, f"m{index}"))
        for key in CURVE_KEYS:
            assert_close(result["curve"][index][key], expected[key])


def test_sixteen_bit_png_scores_are_value_over_65535(case):
    scores = case["tmp"] / "scores"
    for mask in case["masks"]:
        values = np.random.default_rng(len(mask)).integers(0, 65536, size=read_mask(case["gt"] / mask).shape)
        values.reshape(-1)[:3] = [13107, 13106, 32768]  # 0.2 exactly, just below, just above 0.5
        (scores / mask).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(values.astype(np.uint16)).save(scores / mask)
    result = curve(case, scores_dir=scores, match=case["match"])
    for index in (4, 10):
        t = result["thresholds"][index]
        expected = evaluate(case, write_thresholded(case, t, case["tmp"] / f"th{index}", scores), case["match"])
        for key in CURVE_KEYS:
            assert_close(result["curve"][index][key], expected[key])


def test_workers_give_the_same_curve(case):
    parallel, serial = curve(case, rematch=True, workers=2), curve(case, rematch=True, workers=0)
    for a, b in zip(parallel["curve"], serial["curve"]):
        assert a == pytest.approx(b, rel=1e-12)  # F sums differ in the last bits: other chunking
    assert parallel["best_match"] == serial["best_match"]


# ---- score bins and threshold lists -----------------------------------------------------------

@pytest.mark.parametrize("spec", ["0:1:0.01", "0.1,0.5,0.9", "-1:1:0.25", "0.3", "0:0.001:0.000001", "0,1e-6,0.9"])
def test_score_bins_count_the_thresholds_each_float32_score_reaches(spec):
    thresholds = parse_thresholds(spec)
    t32 = thresholds.astype(np.float32)
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.random(5000, dtype=np.float32) * 2.4 - 1.2, t32, np.nextafter(t32, np.float32(-2)),
                             np.nextafter(t32, np.float32(2)),
                             np.array([np.inf, -np.inf, 0.0, -0.0, 1.0, 1e-30, 5e4], np.float32)]).astype(np.float32)
    expected = np.searchsorted(t32, scores, side="right")
    assert np.array_equal(ScoreBins(thresholds)(scores), expected)
    values = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(ScoreBins(thresholds)(values),
                          np.searchsorted(t32, values.astype(np.float32) / np.float32(65535), side="right"))


def test_threshold_range_gives_passes_hundredths():
    values = parse_thresholds("0:1:0.01")
    assert values.size == 101 and list(values) == [i / 100.0 for i in range(101)]
    assert list(parse_thresholds("0.3, 0.1,0.2")) == [0.1, 0.2, 0.3]


@pytest.mark.parametrize("spec", ["0:1", "a:1:0.1", "0:1:0", "1:0:0.1", "0:1:0.0001", "", "nan", "0.1,inf"])
def test_bad_threshold_specs_are_refused(spec):
    with pytest.raises(UserError):
        parse_thresholds(spec)


# ---- the command --------------------------------------------------------------------------------

def base_args(case, *extra: str) -> List[str]:
    return ["--predict-dir", str(case["pred"]), "--scores-dir", str(case["pred"]), "--gt-dir", str(case["gt"]),
            "--mode", str(K), "--meta-dir", str(case["meta_dir"]), "--workers", "0", "--thresholds", THRESHOLDS,
            *extra]


def test_command_prints_the_curve_and_writes_json_and_plot(case, capsys):
    out_json, out_png = case["tmp"] / "curve.json", case["tmp"] / "curve.png"
    assert COMMAND.main(base_args(case, "--rematch", "--output", str(out_json), "--plot", str(out_png))) == 0
    printed = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    best = data["best_threshold"]
    assert f"* {best!r:>8}" in printed and "objective" in printed and "best t = " in printed
    assert "other (background)" in printed and "mBIoU" in printed
    assert len(data["curve"]) == 21 and data["rematch"] and set(data["best"]) >= set(SUMMARY_KEYS)
    with Image.open(out_png) as im:
        assert im.mode == "RGB" and im.size[0] > 600


def test_plot_draws_each_metric_at_its_value():
    from imagenets.evaluation.curve_plot import PLOT_WIDTH, SERIES, draw_curve
    from imagenets.evaluation.plot import LEFT, PLOT_HEIGHT, TOP

    rows = [{"mIoU": 50.0, "Acc": 80.0, "FMeasure": 20.0}] * 3
    image = draw_curve([0.0, 0.5, 1.0], rows, best=0.5)
    x = LEFT + PLOT_WIDTH // 4
    for name, colour in SERIES:
        assert image.getpixel((x, TOP + PLOT_HEIGHT - round(rows[0][name] / 100 * PLOT_HEIGHT))) == colour


def run_bad(case, capsys, *extra: str) -> str:
    out_json = case["tmp"] / "never.json"
    try:
        rc = COMMAND.main(base_args(case, "--quiet", "--output", str(out_json), *extra))
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and not out_json.exists(), err
    return err


def score_file(case, index: int = 0) -> Path:
    return case["pred"] / (case["masks"][index][:-4] + ".npy")


def test_missing_score_files_give_count_and_first_paths(writable, capsys):
    score_file(writable, 2).unlink()
    assert_one_error(2, run_bad(writable, capsys), "1 of 10 score files are missing", str(score_file(writable, 2)))


def test_score_map_of_another_size_is_named_from_its_header(writable, capsys):
    np.save(score_file(writable, 1), np.zeros((3, 4), np.float32))
    assert_one_error(2, run_bad(writable, capsys), str(score_file(writable, 1)), "shape (3, 4)")


def test_integer_scores_are_refused_from_the_header(writable, capsys):
    shape = read_mask(writable["gt"] / writable["masks"][0]).shape
    np.save(score_file(writable), np.zeros(shape, np.int64))
    assert_one_error(2, run_bad(writable, capsys), str(score_file(writable)), "int64", "not floats")


def test_nan_scores_are_named_with_their_count(writable, capsys):
    scores = np.load(score_file(writable, 4))
    scores.reshape(-1)[:2] = np.nan
    np.save(score_file(writable, 4), scores)
    assert_one_error(2, run_bad(writable, capsys), str(score_file(writable, 4)), "2 NaN scores")


def test_prediction_folder_without_npy_files_names_the_npy_files(writable, capsys):
    for mask in writable["masks"]:
        (writable["pred"] / (mask[:-4] + ".npy")).unlink()
    assert_one_error(2, run_bad(writable, capsys), "10 of 10 score files are missing", str(score_file(writable)))


def test_rgb_png_among_the_scores_explains_the_score_format(writable, capsys):
    scores = writable["tmp"] / "rgb"
    shutil.copytree(writable["pred"], scores)
    (scores / (writable["masks"][3][:-4] + ".npy")).unlink()
    err = run_bad(writable, capsys, "--scores-dir", str(scores))
    assert_one_error(2, err, str(scores / writable["masks"][3]), "RGB PNG, not a 16-bit grayscale score map")


def test_eight_bit_grayscale_scores_are_refused(writable, capsys):
    score_file(writable).unlink()
    shape = read_mask(writable["gt"] / writable["masks"][0]).shape
    scores = writable["tmp"] / "s8"
    shutil.copytree(writable["pred"], scores)
    Image.fromarray(np.zeros(shape, np.uint8)).save(scores / writable["masks"][0])
    err = run_bad(writable, capsys, "--scores-dir", str(scores))
    assert_one_error(2, err, "8-bit grayscale", str(scores / writable["masks"][0]))


def test_match_and_rematch_exclude_each_other(writable, capsys):
    err = run_bad(writable, capsys, "--match", str(writable["match"]), "--rematch")
    assert_one_error(2, err, "--rematch")


def test_bad_thresholds_option_is_one_line(writable, capsys):
    assert_one_error(2, run_bad(writable, capsys, "--thresholds", "0:1:-0.1"), "--thresholds", "STEP")


@pytest.mark.parametrize("spec", ["0:1:1e-30", "0:1e30:1", "0,1e400", "0.5,1e39", "0,1_0"])
def test_thresholds_past_any_count_or_float32_are_one_line(writable, capsys, spec):
    assert_one_error(2, run_bad(writable, capsys, "--thresholds", spec), "--thresholds")


@pytest.mark.parametrize("option, target", [("--output", "match"), ("--plot", "gt"), ("--output", "scores"),
                                            ("--plot", "pred")])
def test_outputs_never_overwrite_an_input(writable, capsys, option, target):
    mask = writable["masks"][0]
    path = {"match": writable["match"], "gt": writable["gt"] / mask, "pred": writable["pred"] / mask,
            "scores": score_file(writable)}[target]
    before = path.read_bytes()
    rc = COMMAND.main(base_args(writable, "--quiet", "--match", str(writable["match"]), option, str(path)))
    assert_one_error(rc, capsys.readouterr().err, option, str(path))
    assert path.read_bytes() == before


def test_an_output_folder_nobody_may_write_is_refused_before_the_curve(writable, capsys, monkeypatch):
    counted = []
    monkeypatch.setattr("imagenets.evaluation.threshold_curve.threshold_curve", lambda *a, **k: counted.append(1))
    rc = COMMAND.main(base_args(writable, "--quiet", "--plot", "/proc/imagenets-test/curve.png"))
    line = assert_one_error(rc, capsys.readouterr().err, "--plot", "cannot write in /proc")
    assert counted == [] and ".tmp" not in line


def test_a_match_that_moves_other_to_a_class_is_refused_before_the_curve(writable, capsys):
    moved = writable["tmp"] / "moved.json"
    moved.write_text(json.dumps({**json.loads(writable["match"].read_text()), "0": 5}))
    err = run_bad(writable, capsys, "--match", str(moved))
    assert_one_error(2, err, "--match", "maps id 0 to class 5", '"0": 0')

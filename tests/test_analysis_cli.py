"""The analysis options of ``imagenets evaluate`` and ``match``, and the ``compare`` / ``aggregate`` commands."""

from __future__ import annotations

import csv
import re
import json
from pathlib import Path

import numpy as np
import pytest

from imagenets.codec import read_mask, write_mask
from imagenets.evaluation import aggregate, compare, match
from imagenets.evaluation.engine.metrics import EXTRA_KEYS, SUMMARY_KEYS
from imagenets.evaluation.evaluator import COMMAND as EVALUATE
from helpers import IMAGES, K, assert_one_error, base_args, exit_status


@pytest.fixture
def case(eval_case):
    return eval_case


def evaluate(case, *extra: str) -> dict:
    out = case["tmp"] / f"run{len(list(case['tmp'].glob('run*.json')))}.json"
    assert EVALUATE.main(base_args(case) + ["--output", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_bootstrap_adds_intervals_to_json_and_table(case, capsys):
    result = evaluate(case, "--bootstrap", "50", "--seed", "3")
    assert set(result["ci95"]) == set(SUMMARY_KEYS)
    assert result["bootstrap"] == {"resamples": 50, "seed": 3, "level": 95, "method": "studentized-symmetric"}
    assert result["ci95_method"] == "studentized-symmetric"
    assert result["ci95"] == evaluate(case, "--bootstrap", "50", "--seed", "3")["ci95"]
    args = [a for a in base_args(case) if a != "--quiet"] + ["--bootstrap", "50"]
    assert EVALUATE.main(args) == 0
    out = capsys.readouterr().out
    assert "95% interval (studentized-symmetric, 50 resamples of the images, seed 0)" in out
    lo, hi = evaluate(case, "--bootstrap", "50")["ci95"]["mIoU"]
    assert f"[{lo:.2f}, {hi:.2f}]" in out


def test_default_run_is_unchanged_by_the_analysis_options(case, tmp_path, capsys):
    plain = evaluate(case)
    assert "ci95" not in plain and "not_benchmark" not in plain and "bootstrap" not in plain
    args = [a for a in base_args(case) if a != "--quiet"]
    assert EVALUATE.main(args) == 0
    plain_out = capsys.readouterr().out
    analysed = evaluate(case, "--bootstrap", "0", "--save-counts", str(tmp_path / "c.npz"),
                        "--confusion", str(tmp_path / "c.csv"), "--per-image", str(tmp_path / "p.csv"))
    assert analysed == plain
    assert EVALUATE.main(args + ["--bootstrap", "0"]) == 0
    assert capsys.readouterr().out == plain_out


def test_extra_metrics_are_a_separate_block(case, capsys):
    result = evaluate(case, "--extra-metrics")
    assert set(result["not_benchmark"]) == set(EXTRA_KEYS)
    assert all(k not in result for k in EXTRA_KEYS)
    assert EVALUATE.main([a for a in base_args(case) if a != "--quiet"] + ["--extra-metrics"]) == 0
    out = capsys.readouterr().out
    assert out.index("not the benchmark") > out.index("FMeasure")


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_confusion_matrix_sums_to_the_pixel_count(case, tmp_path, suffix):
    path = tmp_path / f"conf{suffix}"
    evaluate(case, "--confusion", str(path))
    if suffix == ".npz":
        with np.load(path) as data:
            matrix, labels = data["matrix"], list(data["column_labels"])
            assert str(data["rows"]) == "gt" and str(data["columns"]) == "prediction"
    else:
        rows = list(csv.reader(path.open()))
        labels = rows[0][1:]
        matrix = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
        assert [int(r[0]) for r in rows[1:]] == list(range(K + 1))
    assert matrix.shape == (K + 1, K + 2) and labels[-1] == "out_of_range"
    kept = sum(int((read_mask(case["gt"] / m) != 1000).sum()) for m in case["masks"])
    assert matrix.sum() == kept


def test_per_image_csv_has_one_row_per_image(case, tmp_path):
    path = tmp_path / "images.csv"
    result = evaluate(case, "--per-image", str(path))
    rows = list(csv.DictReader(path.open()))
    assert [r["name"] for r in rows] == case["masks"] and len(rows) == IMAGES
    first = read_mask(case["gt"] / case["masks"][0])
    assert (int(rows[0]["width"]), int(rows[0]["height"])) == (first.shape[1], first.shape[0])
    assert rows[0]["gt_classes"].split() == [str(c) for c in np.unique(first) if 0 < c <= K]
    assert sum(int(r["acc_correct"]) for r in rows) == pytest.approx(result["Acc"] * IMAGES / 100)
    assert np.mean([float(r["fmeasure"]) for r in rows]) == pytest.approx(result["FMeasure"])
    assert all(0 <= float(r["iou"]) <= 100 for r in rows)


def test_bad_export_name_is_refused_before_any_work(case, capsys):
    rc = exit_status(EVALUATE.main, base_args(case) + ["--confusion", "x.txt"])
    assert_one_error(rc, capsys.readouterr().err, "x.txt", ".npz or .csv")


def test_cluster_ids_without_a_match_get_one_hint(case, capsys):
    shuffle = np.concatenate([[0], np.random.default_rng(0).permutation(K) + 1, np.arange(K + 1, 2 ** 16)])
    for mask in case["masks"]:
        write_mask(case["pred"] / mask, shuffle[read_mask(case["pred"] / mask)])
    assert EVALUATE.main(base_args(case)) == 0
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "match.py" in line]
    assert len(hints) == 1 and "cluster ids" in hints[0]


def test_class_ids_get_no_hint(case, capsys):
    assert EVALUATE.main(base_args(case)) == 0
    assert "match.py" not in capsys.readouterr().err


def test_match_writes_its_cooccurrence(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cooc.npz"
    assert match.COMMAND.main(base_args(case) + ["--confusion", str(path)]) == 0
    with np.load(path) as data:
        matrix = data["matrix"]
        assert str(data["rows"]) == "prediction" and matrix.shape == (K + 1, K + 1)
    assert matrix[1:, 1:].max() <= IMAGES


# ---- compare and aggregate ----------------------------------------------------------------------

def save_counts(case, name: str, *extra: str) -> Path:
    path = case["tmp"] / name
    evaluate(case, "--save-counts", str(path), *extra)
    return path


def test_compare_of_a_run_with_itself_gives_zero_and_p_one(case, capsys):
    path = save_counts(case, "a.npz")
    assert compare.COMMAND.main([str(path), str(path), "--bootstrap", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == IMAGES
    for key in SUMMARY_KEYS:
        m = result["metrics"][key]
        assert m["difference"] in (0.0, None) and m["p"] in (1.0, None)
    assert result["ci95_method"] == "studentized-symmetric"
    assert compare.COMMAND.main([str(path), str(path), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "B - A" in out and "95% interval (studentized-symmetric)" in out and "p (studentized-symmetric)" in out


def test_compare_refuses_runs_over_other_images(case, capsys):
    a = save_counts(case, "a.npz")
    masks = case["masks"]
    (case["meta"] / "names" / "ImageNetS_im50_validation.txt").write_text(
        "\n".join(f"{m[:-4]}.JPEG {m}" for m in masks[:-1]))
    b = save_counts(case, "b.npz")
    rc = exit_status(compare.COMMAND.main, [str(a), str(b)])
    assert_one_error(rc, capsys.readouterr().err, str(a), str(b), "different images", masks[-1])


def test_compare_refuses_a_file_that_is_not_counts(case, capsys):
    other = case["tmp"] / "r.json"
    other.write_text("{}")
    rc = exit_status(compare.COMMAND.main, [str(save_counts(case, "a.npz")), str(other)])
    assert_one_error(rc, capsys.readouterr().err, str(other), "--save-counts")


def test_aggregate_gives_mean_and_std_over_runs(case, tmp_path, capsys):
    runs = []
    for i, value in enumerate((10.0, 20.0, 30.0)):
        run = evaluate(case)
        run["mIoU"] = value
        runs.append(tmp_path / f"seed{i}.json")
        runs[-1].write_text(json.dumps(run))
    assert aggregate.COMMAND.main([str(p) for p in runs] + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["mIoU"] == {"mean": 20.0, "std": 10.0, "runs": 3}
    assert aggregate.COMMAND.main([str(p) for p in runs]) == 0
    assert "20.00  10.00" in capsys.readouterr().out


def test_aggregate_refuses_runs_of_other_splits(case, tmp_path, capsys):
    run = evaluate(case)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run))
    b.write_text(json.dumps({**run, "images": 3}))
    rc = exit_status(aggregate.COMMAND.main, [str(a), str(b)])
    assert_one_error(rc, capsys.readouterr().err, str(a), str(b), "images")


# ---- numbers and files from outside: one line, before any work ---------------------------------------

def test_a_negative_seed_is_one_line_for_evaluate_and_compare(case, capsys):
    counts = save_counts(case, "a.npz")
    rc = exit_status(EVALUATE.main, base_args(case) + ["--bootstrap", "10", "--seed", "-1"])
    assert_one_error(rc, capsys.readouterr().err, "--seed", "'-1'")
    rc = exit_status(compare.COMMAND.main, [str(counts), str(counts), "--seed", "-1", "--quiet"])
    assert_one_error(rc, capsys.readouterr().err, "--seed", "'-1'")


@pytest.mark.parametrize("value", ["100000000000", "1e3", "-3"])
def test_bootstrap_resamples_are_bounded(case, capsys, monkeypatch, value):
    calls = []
    monkeypatch.setattr("imagenets.evaluation.engine.bootstrap.bootstrap_intervals", lambda *a, **k: calls.append(a))
    rc = exit_status(EVALUATE.main, base_args(case) + ["--bootstrap", value])
    assert_one_error(rc, capsys.readouterr().err, "--bootstrap", "100000")
    assert calls == []


def test_bootstrap_shows_its_progress(case, capsys):
    assert EVALUATE.main([a for a in base_args(case) if a != "--quiet"] + ["--bootstrap", "300"]) == 0
    assert "bootstrap (300 resamples)" in capsys.readouterr().err


def _run_file(case, tmp_path, name, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("bad", ["1e308", "1" * 400, "-5", "[" * 5000 + "]" * 5000],
                         ids=["1e308", "400-digits", "negative", "deep"])
def test_aggregate_refuses_a_value_that_is_no_percentage_in_one_line(case, tmp_path, capsys, bad):
    run = json.dumps(evaluate(case))
    good = _run_file(case, tmp_path, "good.json", run)
    hostile = _run_file(case, tmp_path, "bad.json", re.sub(r'"mIoU": [^,]+,', f'"mIoU": {bad},', run))
    rc = exit_status(aggregate.COMMAND.main, [good, hostile])
    assert_one_error(rc, capsys.readouterr().err, hostile)


def test_aggregate_records_whether_every_run_used_the_official_lists(case, tmp_path, capsys):
    run = evaluate(case)
    assert run["official_lists"] is False  # conftest's synthetic lists
    paths = [_run_file(case, tmp_path, f"{i}.json", json.dumps({**run, "official_lists": i == 0})) for i in (0, 1)]
    assert aggregate.COMMAND.main(paths + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["official_lists"] is False

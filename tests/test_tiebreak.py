"""The tie report of a match: uniqueness and tied clusters against brute force, the warnings, the
report file beside the mapping, ``--tie-break``, and the degenerate (salt-and-pepper) match."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Dict, List, Set, Tuple

import numpy as np
import pytest

from imagenets.codec import read_mask, write_mask
from imagenets.demo.synthetic import write_synthetic_benchmark, write_synthetic_meta
from imagenets.evaluation.engine.munkres_order import benchmark_costs, exact_integers, munkres_114
from imagenets.evaluation.engine.tiebreak import TIE_BREAKS, TieReport, tie_broken_assignment
from imagenets.evaluation.engine.ties import rows_with_alternatives
from imagenets.evaluation.match import COMMAND
from imagenets.metadata import load_metadata

K = 50
IMAGES = 40


def optimal_assignments(costs: np.ndarray) -> Set[Tuple[int, ...]]:
    """Every optimal column-per-row (-1: none) of a tall or square exact-integer matrix, by enumeration."""
    n, m = costs.shape
    best, found = None, set()
    for rows in itertools.permutations(range(n), m):  # rows[j]: the row on column j
        total = int(sum(costs[rows[j], j] for j in range(m)))
        assignment = tuple(rows.index(i) if i in rows else -1 for i in range(n))
        if best is None or total < best:
            best, found = total, {assignment}
        elif total == best:
            found.add(assignment)
    return found


def test_tied_rows_are_those_some_other_optimum_moves():
    rng = np.random.default_rng(0)
    for _ in range(600):
        n = int(rng.integers(1, 7))
        m = int(rng.integers(1, n + 1))
        counts = rng.integers(0, 3, (n, m))
        costs = benchmark_costs(counts, 4).astype(np.float64)
        fallback = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), -1)  # a row left without a column
        col4row, tight = munkres_114(costs)
        moved = rows_with_alternatives(tight, col4row, m, fallback)[:n]
        optima = optimal_assignments(exact_integers(costs))
        ours = tuple(int(j) if j < m else -1 for j in col4row[:n])
        assert ours in optima
        finals = {tuple(j if j >= 0 else int(fallback[i]) for i, j in enumerate(o)) for o in optima}
        assert moved.tolist() == [len({f[i] for f in finals}) > 1 for i in range(n)]


def test_report_counts_predicted_clusters_and_their_ties():
    counts = np.array([[2, 2, 0, 0],    # clusters 1 and 2 are alike: either gets class 1 or 2
                       [2, 2, 0, 0],
                       [0, 0, 3, 0],    # cluster 3 is class 3, alone
                       [0, 0, 0, 0]])   # cluster 4 co-occurs with nothing: it takes what is left
    _cols, report = tie_broken_assignment(counts, 5)
    assert report.as_json() == {"tie_break": "munkres-1.1.4", "unique": False, "clusters": 4,
                                "predicted_clusters": 3, "tied_predicted_clusters": 2, "tied_clusters": [1, 2],
                                "broad_clusters": 0, "degenerate": False}
    [line] = report.warnings()
    assert line.startswith("tied match: 2 of the 3 predicted clusters could go to another class")
    assert "munkres-1.1.4" in line and "original match.py" in line and "may choose, and count ties, differently" in line
    assert tie_broken_assignment(np.diag([3, 1, 2]), 5)[1].warnings() == []


def test_ties_of_never_predicted_clusters_are_named_apart():
    counts = np.array([[4, 1, 0], [0, 0, 0], [0, 0, 0]])
    report = tie_broken_assignment(counts, 5)[1]
    assert report.tied_clusters == (2, 3) and report.tied_predicted_clusters == 0
    assert "0 of the 1 predicted clusters (and 2 that co-occur with no class)" in report.warnings()[0]


def test_nothing_predicted_gives_no_tie_warning():
    report = tie_broken_assignment(np.zeros((3, 3), dtype=np.int64), 5)[1]
    assert not report.unique and report.predicted_clusters == 0 and report.warnings() == []


def test_every_tie_break_is_offered_and_an_unknown_one_refused():
    assert list(TIE_BREAKS)[0] == "munkres-1.1.4"
    with pytest.raises(ValueError, match="munkres-3.0.0"):
        tie_broken_assignment(np.eye(2, dtype=np.int64), 2, "lowest")


# ---- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def permuted(tmp_path_factory) -> Path:
    """Real PNG pairs: GT and perfect predictions as cluster ids (a hidden permutation of the classes)."""
    root = tmp_path_factory.mktemp("ties")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=IMAGES, test=0, train_semi=0, seed=3))
    write_synthetic_benchmark(root / "case", meta, K, sides=(24, 40), permute=True, quality=1.0, seed=3, quiet=True)
    return root


@pytest.fixture
def case(permuted, tmp_path, monkeypatch) -> Dict[str, Path]:
    shutil.copytree(permuted, tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    root = tmp_path / "data"
    return {"meta": root / "meta", "gt": root / "case" / "gt", "pred": root / "case" / "pred", "work": work}


def run_match(case, *extra: str) -> int:
    return COMMAND.main(["--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", str(K),
                         "--meta-dir", str(case["meta"]), "--workers", "0", "--quiet", *extra])


def salt_and_pepper(case) -> None:
    """Every prediction replaced by uniform noise over the 50 cluster ids: every cluster everywhere."""
    rng = np.random.default_rng(0)
    for path in sorted(case["pred"].rglob("*.png")):
        write_mask(path, rng.integers(1, K + 1, read_mask(path).shape))


def warnings_of(err: str) -> List[str]:
    """The match's warning lines about its ties (others, e.g. on the metadata, left out)."""
    return [line for line in err.splitlines() if line.startswith(("warning: tied match", "warning: degenerate"))]


def test_report_file_lies_beside_the_mapping_and_goes_into_output(case, capsys):
    assert run_match(case, "--session-name", "run", "--output", "out.json") == 0
    err = capsys.readouterr().err
    report = json.loads((case["work"] / "results" / "run.ties.json").read_text())
    assert set(report) == {"tie_break", "unique", "clusters", "predicted_clusters", "tied_predicted_clusters",
                           "tied_clusters", "broad_clusters", "degenerate", "match_sha256"}
    mapping_bytes = (case["work"] / "results" / "run.json").read_bytes()
    assert report.pop("match_sha256") == hashlib.sha256(mapping_bytes).hexdigest()  # the mapping it is of
    assert json.loads((case["work"] / "out.json").read_text())["ties"] == report
    # 40 images of 50 classes leave ties: one warning line says how many clusters they touch.
    assert not report["unique"] and report["tied_predicted_clusters"] > 0
    [line] = warnings_of(err)
    assert f"tied match: {report['tied_predicted_clusters']} of the {report['predicted_clusters']}" in line
    mapping = json.loads((case["work"] / "results" / "run.json").read_text())
    assert list(mapping) == [str(i) for i in range(1, K + 1)] + ["0"]


def test_tie_break_option_keeps_another_optimum_at_the_same_objective(case, capsys):
    objectives, matches = set(), {}
    for name in TIE_BREAKS:
        assert run_match(case, "--session-name", name, "--tie-break", name, "--output", f"{name}.json") == 0
        out = json.loads((case["work"] / f"{name}.json").read_text())
        assert out["ties"]["tie_break"] == name
        objectives.add(out["objective"])
        matches[name] = out["match"]
    assert len(objectives) == 1
    assert matches["munkres-1.1.4"] != matches["munkres-3.0.0"]  # this case is tied enough to tell


def test_salt_and_pepper_predictions_are_called_degenerate(case, capsys):
    salt_and_pepper(case)
    assert run_match(case) == 0
    tie_line, degenerate = warnings_of(capsys.readouterr().err)
    assert tie_line.startswith("warning: tied match: ")
    assert "degenerate match: 50 of 50 predicted clusters co-occur with at least 90% of the classes" in degenerate
    assert "--method pixel" in degenerate
    assert json.loads((case["work"] / "results" / "match.ties.json").read_text())["degenerate"] is True


def test_a_faithful_match_says_nothing():
    counts = np.diag(np.arange(1, 6)) + np.triu(np.ones((5, 5), dtype=np.int64), 1)
    cols, report = tie_broken_assignment(counts, 10)
    assert cols.tolist() == [0, 1, 2, 3, 4] and report.unique and report.warnings() == []
    assert isinstance(report, TieReport) and report.as_json()["tied_clusters"] == []


def test_golden_match_file_is_the_originals_byte_for_byte(golden_dir, meta_dir, tmp_path, monkeypatch):
    case = golden_dir / "match50"
    monkeypatch.chdir(tmp_path)
    assert COMMAND.main(["--predict-dir", str(case / "pred"), "--gt-dir", str(case / "gt"), "--mode", "50",
                         "--meta-dir", str(meta_dir), "--workers", "0", "--quiet"]) == 0
    assert (tmp_path / "results" / "match.json").read_bytes() == (case / "expected_match.json").read_bytes()


def test_too_many_clusters_give_an_optimum_and_say_ties_were_not_analysed():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 3, (3100, 6))
    cols, report = tie_broken_assignment(counts, 10)
    rows = np.flatnonzero(cols >= 0)
    assert rows.size == 6
    scipy_optimize = pytest.importorskip("scipy.optimize")
    best_rows, best_cols = scipy_optimize.linear_sum_assignment(counts, maximize=True)
    assert counts[rows, cols[rows]].sum() == counts[best_rows, best_cols].sum()
    assert report.unique is None and report.as_json()["unique"] is None and report.tied_clusters == ()
    [line] = report.warnings()
    assert "3100 clusters: above 3072, ties are neither analysed nor broken" in line

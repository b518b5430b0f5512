"""Conformance with the original toolbox on the golden cases (every number within 0.01 points)."""

from __future__ import annotations

import json

import pytest

from imagenets.evaluation.engine.cooccurrence import Cooccurrence, best_match
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.matching import compute_match
from imagenets.evaluation.engine.matchfile import load_match, match_to_json
from imagenets.metadata import load_metadata
from imagenets.subsets import get_subset

from helpers import assert_matches_expected



@pytest.fixture(scope="module")
def meta(meta_dir):
    return load_metadata(meta_dir)


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluator_equals_original_on_eval50(golden_dir, meta, workers):
    case = golden_dir / "eval50"
    result = evaluate_predictions(case / "pred", case / "gt", get_subset(50), meta, workers=workers, quiet=True)
    assert result["images"] == 752
    assert_matches_expected(result, json.loads((case / "expected_eval.json").read_text()))


def test_evaluator_with_original_match_equals_original(golden_dir, meta):
    case = golden_dir / "match50"
    result = evaluate_predictions(case / "pred", case / "gt", get_subset(50), meta,
                                  match_file=case / "expected_match.json", workers=2, quiet=True)
    assert_matches_expected(result, json.loads((case / "expected_eval_with_match.json").read_text()))


def test_match_reaches_the_original_objective(golden_dir, meta):
    case = golden_dir / "match50"
    result = compute_match(case / "pred", case / "gt", get_subset(50), meta, workers=2, quiet=True)
    expected = json.loads((case / "expected_objective.json").read_text())["objective"]
    assert result["objective"] == expected
    # The written object has the spec's format and is a permutation of 1..K.
    obj = match_to_json(result["assignment"])
    assert sorted(obj.values()) == [0] + list(range(1, 51))
    assert list(obj)[-1] == "0"


def test_expected_match_is_optimal_for_our_cooccurrence(golden_dir, meta):
    """The original's match attains our optimum on our co-occurrence matrix (same counts)."""
    case = golden_dir / "match50"
    result = compute_match(case / "pred", case / "gt", get_subset(50), meta, workers=0, quiet=True)
    mapping = load_match(case / "expected_match.json", 50).mapping
    # Recount with the original's map: same objective.
    from imagenets.evaluation.engine.inputs import read_pair
    from imagenets.evaluation.engine.kernel import joint_table
    from imagenets.evaluation.engine.inputs import make_pairs
    counts = Cooccurrence(50)
    names = [m for _i, m in meta.validation_names(get_subset(50))]
    for pair in make_pairs(names, case / "gt", case / "pred"):
        gt, pred = read_pair(pair)
        counts.update_table(joint_table(gt, pred, 50, with_boundaries=False))
    c = counts.matrix()
    assert sum(int(c[p, g]) for p, g in mapping.items() if p) == result["objective"]
    assert best_match(c)[1] == result["objective"]

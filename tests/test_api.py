"""The Python API (``imagenets.evaluate`` / ``imagenets.match``), tensor input to the metrics, and the
README's "Python API" snippets run as written on a tiny prepared tree."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

import imagenets
from imagenets.demo.synthetic import write_synthetic_benchmark, write_synthetic_dataset, write_synthetic_meta
from imagenets.errors import UserError
from imagenets.evaluation import api
from imagenets.evaluation.engine.evaluation import evaluate_predictions
from imagenets.evaluation.engine.matchfile import save_match
from imagenets.evaluation.engine.matching import compute_match
from imagenets.evaluation.engine.metrics import SUMMARY_KEYS, SegmentationMetrics
from imagenets.evaluation.engine.report import json_ready
from imagenets.codec import read_mask
from imagenets.metadata import ENV_META_DIR, load_metadata
from imagenets.subsets import IGNORE, get_subset

from helpers import assert_matches_expected

REPO = Path(__file__).resolve().parents[1]
K = 50


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Dict[str, Path]:
    """8 validation pairs whose predictions are permuted cluster ids (24-40 px)."""
    root = tmp_path_factory.mktemp("api")
    meta_dir = write_synthetic_meta(root / "meta", K, validation=8, test=0, train_semi=0, seed=5)
    made = write_synthetic_benchmark(root / "case", load_metadata(meta_dir), K, sides=(24, 40), seed=5,
                                     quiet=True)
    return {"meta": meta_dir, "gt": made["gt_dir"], "pred": made["pred_dir"]}


# ---- a light import; the API loaded on first use ----------------------------------------------

def test_importing_imagenets_does_not_import_torch():
    code = "import sys, imagenets; imagenets.__version__; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_api_names_are_served_from_the_api_module():
    assert imagenets.evaluate is api.evaluate and imagenets.match is api.match
    assert imagenets.SegmentationMetrics is SegmentationMetrics
    assert {"evaluate", "match", "EvaluationResult", "MatchResult"} <= set(dir(imagenets))
    with pytest.raises(AttributeError, match="no_such_name"):
        imagenets.no_such_name  # noqa: B018


# ---- the same numbers as the commands' library halves -------------------------------------------

def test_evaluate_equals_evaluate_predictions(bench):
    result = imagenets.evaluate(bench["pred"], bench["gt"], K, workers=0, meta_dir=bench["meta"])
    expected = evaluate_predictions(bench["pred"], bench["gt"], get_subset(K), load_metadata(bench["meta"]),
                                    workers=0, quiet=True)
    assert result.as_dict() == expected
    assert result.summary() == {key: expected[key] for key in SUMMARY_KEYS}
    assert result.ious == expected["IoUs"] and result.images == 8 and result.match is None
    assert all(getattr(result, key) == expected[key] for key in SUMMARY_KEYS)


def test_match_equals_compute_match_and_saves_the_same_file(bench, tmp_path):
    found = imagenets.match(bench["pred"], bench["gt"], K, workers=0, meta_dir=bench["meta"])
    expected = compute_match(bench["pred"], bench["gt"], get_subset(K), load_metadata(bench["meta"]),
                             workers=0, quiet=True)
    assert found.objective == expected["objective"] and found.images == 8 and found.method == "image"
    assert found.mapping == {0: 0, **{p: int(g) for p, g in enumerate(expected["assignment"], 1)}}
    ours, theirs = found.save(tmp_path / "ours.json"), save_match(tmp_path / "theirs.json", expected["assignment"])
    assert ours.read_bytes() == theirs.read_bytes()
    assert found.as_dict()["match"] == json.loads(ours.read_text()) == found.to_json()


def test_evaluate_takes_a_match_file_a_match_result_or_a_mapping(bench, tmp_path):
    found = imagenets.match(bench["pred"], bench["gt"], K, workers=0, meta_dir=bench["meta"])
    path = found.save(tmp_path / "m.json")
    runs = [imagenets.evaluate(bench["pred"], bench["gt"], K, match=m, workers=0, meta_dir=bench["meta"])
            for m in (path, str(path), found, found.mapping)]
    assert [r.match for r in runs] == [str(path), str(path), api.IN_MEMORY, api.IN_MEMORY]
    assert len({json.dumps(r.summary()) for r in runs}) == 1
    raw = imagenets.evaluate(bench["pred"], bench["gt"], K, workers=0, meta_dir=bench["meta"])
    assert runs[0].Acc > raw.Acc  # the match undid the permutation
    expected = evaluate_predictions(bench["pred"], bench["gt"], get_subset(K), load_metadata(bench["meta"]),
                                    match_file=path, workers=0, quiet=True)
    assert runs[2].ious == expected["IoUs"]


def test_a_bad_in_memory_match_is_refused_as_a_file_would_be(bench):
    with pytest.raises(UserError, match="outside the GT ids 0..50"):
        imagenets.evaluate(bench["pred"], bench["gt"], K, match={1: 51}, workers=0, meta_dir=bench["meta"])
    with pytest.raises(TypeError, match="MatchResult"):
        imagenets.evaluate(bench["pred"], bench["gt"], K, match=[1, 2], workers=0, meta_dir=bench["meta"])


def test_result_save_writes_the_output_json(bench, tmp_path):
    result = imagenets.evaluate(bench["pred"], bench["gt"], K, workers=0, meta_dir=bench["meta"])
    path = result.save(tmp_path / "out.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(json_ready(result.as_dict())))
    assert "ious" not in repr(result) and "mIoU=" in repr(result)


def test_golden_cases_through_the_api(golden_dir, meta_dir):
    case = golden_dir / "eval50"
    result = imagenets.evaluate(case / "pred", case / "gt", 50, meta_dir=meta_dir)
    assert_matches_expected(result.as_dict(), json.loads((case / "expected_eval.json").read_text()))
    case = golden_dir / "match50"
    found = imagenets.match(case / "pred", case / "gt", 50, meta_dir=meta_dir)
    assert found.objective == json.loads((case / "expected_objective.json").read_text())["objective"]


# ---- SegmentationMetrics.update on tensors ----------------------------------------------------

def _pairs(bench, count=4):
    names = sorted(p.relative_to(bench["gt"]).as_posix() for p in bench["gt"].rglob("*.png"))[:count]
    return [(read_mask(bench["gt"] / n), read_mask(bench["pred"] / n) % (K + 1)) for n in names]


def _computed(pairs, convert) -> Dict[str, object]:
    metrics = SegmentationMetrics(K)
    for gt, pred in pairs:
        g, p = convert(gt, pred)
        metrics.update(preds=p, target=g)
    return metrics.compute()


def _nan_safe(result: Dict[str, object]) -> Dict[str, object]:
    """NaN (a size bucket with no objects) as None, so that equal results compare equal."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.items()}


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_update_takes_tensors_like_arrays(bench, dtype):
    pairs = _pairs(bench)
    if dtype == torch.uint8:  # GT holds 1000 (ignore): only the prediction fits in uint8
        convert = lambda g, p: (torch.from_numpy(g), torch.from_numpy(p).to(dtype))  # noqa: E731
    else:
        convert = lambda g, p: (torch.from_numpy(g).to(dtype), torch.from_numpy(p).to(dtype))  # noqa: E731
    assert _nan_safe(_computed(pairs, convert)) == _nan_safe(_computed(pairs, lambda g, p: (g, p)))


def test_a_batch_is_one_update_per_image(bench):
    pairs = [(g[:24, :24], p[:24, :24]) for g, p in _pairs(bench)]
    batched = SegmentationMetrics(K)
    batched.update(preds=torch.from_numpy(np.stack([p for _, p in pairs])),
                   target=torch.from_numpy(np.stack([g for g, _ in pairs])).long())
    assert batched.images == len(pairs)
    assert _nan_safe(batched.compute()) == _nan_safe(_computed(pairs, lambda g, p: (g, p)))


def test_update_refuses_scores_and_mismatched_shapes():
    metrics = SegmentationMetrics(K)
    ids = torch.zeros(4, 5, dtype=torch.int64)
    with pytest.raises(TypeError, match="argmax"):
        metrics.update(preds=torch.zeros(4, 5), target=ids)
    with pytest.raises(TypeError, match="argmax"):
        metrics.update(preds=ids, target=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"target \(4, 5\) and preds \(1, 4, 5\)"):
        metrics.update(preds=ids[None], target=ids)
    with pytest.raises(ValueError, match="NxHxW"):
        metrics.update(preds=ids[None, None], target=ids[None, None])
    with pytest.raises(ValueError, match="id -1"):
        metrics.update(preds=ids - 1, target=ids)
    assert metrics.images == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_update_takes_cuda_tensors(bench):
    pairs = _pairs(bench)
    on_gpu = lambda g, p: (torch.from_numpy(g).long().cuda(), torch.from_numpy(p).cuda())  # noqa: E731
    assert _nan_safe(_computed(pairs, on_gpu)) == _nan_safe(_computed(pairs, lambda g, p: (g, p)))


# ---- the README's Python API section, run as written ------------------------------------------

def readme_python_blocks() -> List[str]:
    text = (REPO / "README.md").read_text()
    section = re.search(r"## Python API\n(.*?)\n## ", text, flags=re.S).group(1)
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def dest(tmp_path_factory, tmp_path, monkeypatch) -> Dict[str, Path]:
    """The working directory holds DEST/ImageNetS50 (prepared, 12 validation, 5 test, 6 train-semi images,
    one train image per class), predictions/validation and the metadata (not at hand unless asked for)."""
    meta_dir = write_synthetic_meta(tmp_path / "meta", K, validation=12, test=5, train_semi=6, seed=2)
    write_synthetic_dataset(tmp_path / "DEST", load_metadata(meta_dir), K, layout="prepared", sides=(24, 40),
                            seed=2, train_per_class=1, predictions_dir=tmp_path / "predictions", quiet=True)
    monkeypatch.chdir(tmp_path)
    return {"meta": meta_dir, "root": tmp_path}


def test_readme_python_api_snippets_run_as_written(dest, monkeypatch, capsys):
    evaluation, training, inference = readme_python_blocks()
    with monkeypatch.context() as env:
        env.setenv(ENV_META_DIR, str(dest["meta"]))  # match and evaluate read the validation list
        scope: Dict[str, object] = {}
        exec(compile(evaluation, "README:evaluate", "exec"), scope)
        again = imagenets.evaluate("predictions/validation", scope["gt"], K, match="results/mymethod.json")
        assert _nan_safe(scope["result"].summary()) == _nan_safe(again.summary()) and again.images == 12
    scope = {}  # the datasets: from the tree alone (no metadata at hand)
    exec(compile(training, "README:training", "exec"), scope)
    assert scope["train"].source == "tree" and scope["metrics"].images == 12
    exec(compile(inference, "README:inference", "exec"), scope)
    test = scope["test"]
    written = sorted(p.relative_to("mymethod/test").as_posix() for p in Path("mymethod/test").rglob("*.png"))
    assert written == sorted(test.prediction_names) and len(written) == 5
    for index, name in enumerate(test.prediction_names):
        image = test.load_image(index)
        mask = read_mask(Path("mymethod/test") / name)
        assert mask.shape == (image.height, image.width) and mask.max() <= K
    assert "warning: " in capsys.readouterr().err  # the tiny tree lacks the official image counts
    assert IGNORE == 1000  # the snippet's ignore_index

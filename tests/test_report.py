"""``evaluate --report`` / ``threshold-curve --report``: the numbers on the page are the evaluation's, the page is
self-contained, and a real browser renders it (no console error, the table sorts, every image loads)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from browser import Chromium, find_chromium
from helpers import assert_one_error
from imagenets.cli import run_command
from imagenets.codec import read_mask, write_mask
from imagenets.demo.synthetic import write_synthetic_dataset, write_synthetic_meta
from imagenets.metadata import load_metadata
from imagenets.subsets import IGNORE, get_subset
from imagenets.evaluation.engine.evaluation import Keep, count_predictions
from imagenets.evaluation.engine.matchfile import load_match
from imagenets.evaluation.html_report.data import add_clusters, class_rows, image_scores, tie_report
from imagenets.evaluation.visualize import image_iou

K = 50
IMAGES = 30


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared ImageNet-S50 (photos beside the masks), cluster-id predictions and their match; read-only."""
    root = tmp_path_factory.mktemp("report")
    meta = load_metadata(write_synthetic_meta(root / "meta", K, validation=IMAGES, test=1, train_semi=1))
    made = write_synthetic_dataset(root, meta, K, layout="prepared", sides=(24, 72), train_per_class=0,
                                   quality=0.7, quiet=True)
    match = {"0": 0, **{str(int(cluster)): c for c, cluster in enumerate(made["permutation"], 1)}}
    (root / "match.json").write_text(json.dumps(match))
    return {"root": root, "meta": root / "meta", "gt": root / "ImageNetS50" / "validation-segmentation",
            "images": root / "ImageNetS50" / "validation", "pred": root / "predictions" / "validation",
            "match": root / "match.json"}


def evaluate(case, out: Path, *extra: str) -> int:
    return run_command(["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
                        "--meta-dir", str(case["meta"]), "--workers", "0", "--quiet", *extra])


@pytest.fixture(scope="module")
def page(prepared, tmp_path_factory):
    """The report of the evaluation with the match and bootstrap intervals, and its JSON result."""
    out = tmp_path_factory.mktemp("page")
    assert evaluate(prepared, out, "--match", str(prepared["match"]), "--bootstrap", "50", "--report",
                    str(out / "report.html"), "--output", str(out / "result.json"), "--report-pictures", "4") == 0
    return {"html": (out / "report.html").read_text(encoding="utf-8"), "path": out / "report.html",
            "result": json.loads((out / "result.json").read_text())}


# ---- the numbers --------------------------------------------------------------------------------

def test_per_image_iou_from_the_counts_equals_visualize(prepared):
    meta = load_metadata(prepared["meta"])
    tally = count_predictions(prepared["pred"], prepared["gt"], get_subset(K), meta, match_file=prepared["match"],
                              workers=0, quiet=True, keep=Keep(image_counts=True))
    scores = image_scores(tally.metrics.image_counts(), tally.names, {})
    match = load_match(prepared["match"], K)
    for score in scores:
        gt, pred = read_mask(prepared["gt"] / score.mask), match.relabel(read_mask(prepared["pred"] / score.mask))
        expected = image_iou(gt, pred, K)[0]
        assert score.iou == pytest.approx(expected, abs=1e-9) or math.isnan(expected) and math.isnan(score.iou)


def test_class_rows_hold_every_id_with_its_name_and_the_evaluation_iou(prepared, page):
    meta = load_metadata(prepared["meta"])
    tally = count_predictions(prepared["pred"], prepared["gt"], get_subset(K), meta, match_file=prepared["match"],
                              workers=0, quiet=True)
    rows = class_rows(tally.metrics, meta, get_subset(K))
    assert [r.id for r in rows] == list(range(K + 1))
    assert [r.wnid for r in rows[1:]] == meta.categories(K) and [r.name for r in rows[1:]] == meta.class_names(K)
    assert [r.iou for r in rows] == pytest.approx(page["result"]["IoUs"])
    assert sum(r.gt_share for r in rows) == pytest.approx(100.0)


def test_purity_of_split_clusters_counts_their_own_pixels(prepared, tmp_path):
    """Many-to-one: cluster p keeps the left half of its pixels, cluster p + 100 takes the right half."""
    pred = tmp_path / "pred"
    shutil.copytree(prepared["pred"], pred)
    match = json.loads(prepared["match"].read_text())
    for path in pred.rglob("*.png"):
        ids = read_mask(path)
        right = np.zeros(ids.shape, dtype=bool)
        right[:, ids.shape[1] // 2:] = True
        ids[right & (ids > 0) & (ids <= K)] += 100
        write_mask(path, ids)
    match.update({str(int(p) + 100): c for p, c in match.items() if int(p) > 0})
    (tmp_path / "split.json").write_text(json.dumps(match))
    meta = load_metadata(prepared["meta"])
    loaded = load_match(tmp_path / "split.json", K)
    tally = count_predictions(pred, prepared["gt"], get_subset(K), meta, match=loaded, workers=0, quiet=True,
                              keep=Keep(confusion=True, clusters=True))
    rows = class_rows(tally.metrics, meta, get_subset(K))
    add_clusters(rows, loaded, tally.confusion.matrix(), tally.clusters.matrix())
    on, total = {}, {}
    for path in pred.rglob("*.png"):
        ids, gt = read_mask(path), read_mask(prepared["gt"] / path.relative_to(pred))
        scored = gt != IGNORE
        for cluster in np.unique(ids[scored]):
            mine = scored & (ids == cluster)
            total[int(cluster)] = total.get(int(cluster), 0) + int(mine.sum())
            on[int(cluster)] = on.get(int(cluster), 0) + int((mine & (gt == loaded.mapping.get(int(cluster), -1))).sum())
    for row in rows[1:]:
        assert sorted(c for c, _s in row.clusters) == sorted(p for p, c in loaded.mapping.items() if c == row.id and p)
        for cluster, share in row.clusters:
            expected = 100.0 * on[cluster] / total[cluster] if total.get(cluster) else None
            assert share == (pytest.approx(expected) if expected is not None else None)


def test_tie_report_beside_the_match_is_read_tolerantly(tmp_path):
    assert tie_report(None) is None and tie_report(str(tmp_path / "m.json")) is None
    (tmp_path / "m.ties.json").write_text(json.dumps({"unique": False, "tied_clusters": 3}))
    assert tie_report(str(tmp_path / "m.json")) == {"file": str(tmp_path / "m.ties.json"), "unique": False,
                                                    "tied_clusters": 3}
    (tmp_path / "m.ties.json").write_text("not json")
    assert tie_report(str(tmp_path / "m.json")) is None


# ---- the page -----------------------------------------------------------------------------------

def test_page_shows_the_tie_report_of_a_match_run_and_that_the_lists_are_not_official(prepared, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_command(["match", "--predict-dir", str(prepared["pred"]), "--gt-dir", str(prepared["gt"]),
                        "--mode", "50", "--meta-dir", str(prepared["meta"]), "--workers", "0", "--quiet",
                        "--session-name", "found"]) == 0
    ties = json.loads((tmp_path / "results" / "found.ties.json").read_text())
    assert evaluate(prepared, tmp_path, "--match", "results/found.json", "--report", "r.html",
                    "--report-pictures", "0") == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "found.ties.json" in html and f"tie_break: {ties['tie_break']}" in html
    assert "NO: numbers are not the benchmark" in html  # synthetic lists are not the official ones


def test_page_is_self_contained(page):
    html = page["html"]
    assert "<link" not in html and not re.search(r"<script[^>]+src=", html) and "@import" not in html
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    assert "url(" not in html.split("<style>")[1].split("</style>")[0]


def test_page_shows_the_summary_with_intervals_and_every_class(page):
    html, result = page["html"], page["result"]
    assert f"<th>mIoU</th><td class=n>{result['mIoU']:.2f}</td>" in html
    lo, hi = result["ci95"]["mIoU"]
    assert f"[{lo:.2f}, {hi:.2f}]" in html
    body = html.split('<table id="class-table"')[1].split("</table>")[0]
    assert body.count("<tr>") == K + 1 + 1  # heading + ids 0..K
    assert "clusters (purity)" in body and "Worst 4 images" in html and "Best 4 images" in html
    assert "match tie report</dt><dd>not recorded" in html


def test_report_finds_the_photos_beside_the_masks(page, prepared):
    assert f"<dd>{prepared['images']}</dd>" in page["html"]
    assert page["html"].count('alt="image"') == 8


def test_report_only_flags_without_report_are_refused(prepared, tmp_path, capsys):
    rc = evaluate(prepared, tmp_path, "--images", str(prepared["images"]))
    assert_one_error(rc, capsys.readouterr().err, "--images only serves --report")
    assert not list(tmp_path.iterdir())


def test_report_is_refused_inside_an_input_folder(prepared, tmp_path, capsys):
    pred = tmp_path / "pred"
    shutil.copytree(prepared["pred"], pred)
    rc = run_command(["evaluate", "--predict-dir", str(pred), "--gt-dir", str(prepared["gt"]), "--mode", "50",
                      "--meta-dir", str(prepared["meta"]), "--quiet", "--report", str(pred / "r.html")])
    assert_one_error(rc, capsys.readouterr().err, "--report")


def test_threshold_curve_report_draws_the_curve(prepared, tmp_path):
    scores = tmp_path / "scores"
    for path in prepared["pred"].rglob("*.png"):
        target = scores / path.relative_to(prepared["pred"]).with_suffix(".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, np.random.default_rng(len(path.name)).uniform(0, 1, read_mask(path).shape).astype(np.float32))
    assert run_command(["threshold-curve", "--predict-dir", str(prepared["pred"]), "--scores-dir", str(scores),
                        "--gt-dir", str(prepared["gt"]), "--mode", "50", "--meta-dir", str(prepared["meta"]),
                        "--match", str(prepared["match"]), "--thresholds", "0:0.5:0.1", "--workers", "0", "--quiet",
                        "--report", str(tmp_path / "curve.html"), "--output", str(tmp_path / "c.json")]) == 0
    html = (tmp_path / "curve.html").read_text()
    best = json.loads((tmp_path / "c.json").read_text())["best"]
    assert 'aria-label="threshold curve"' in html and f"{best['mIoU']:.2f}" in html
    assert html.count("<polyline") >= 4  # three curve lines and the sorted class IoUs


# ---- in a browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    if find_chromium() is None:
        pytest.skip("no Chromium installed (apt-get install chromium; .ci/run installs it): the report page "
                    "is not rendered in a browser")
    with Chromium() as browser:
        yield browser


def column(tab, index: int):
    return tab.evaluate(f"Array.from(document.querySelectorAll('#class-table tbody tr'))"
                        f".map(r => r.cells[{index}].textContent)")


def test_browser_renders_the_report_without_errors_and_sorts_the_table(chromium, page):
    tab = chromium.open(page["path"].as_uri())
    images = tab.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert len(images) == 8 * 4 and all(done and width > 0 for done, width in images)
    headings = tab.evaluate("Array.from(document.querySelectorAll('#class-table th')).map(h => h.textContent)")
    iou, name = headings.index("IoU"), headings.index("class")
    tab.evaluate(f"document.querySelectorAll('#class-table th')[{iou}].click()")
    values = [float(v) for v in column(tab, iou)]
    assert values == sorted(values, reverse=True) and len(values) == K + 1
    tab.evaluate(f"document.querySelectorAll('#class-table th')[{iou}].click()")
    assert [float(v) for v in column(tab, iou)] == sorted(values)
    tab.evaluate(f"document.querySelectorAll('#class-table th')[{name}].click()")
    names = column(tab, name)
    assert names == sorted(names, key=str.lower)
    tab.evaluate("var f = document.getElementById('class-filter'); f.value = 'synthetic class 7';"
                 "f.dispatchEvent(new Event('input'))")
    shown = tab.evaluate("Array.from(document.querySelectorAll('#class-table tbody tr')).filter(r => !r.hidden)"
                         ".map(r => r.cells[0].textContent)")
    assert shown == ["7"]
    assert tab.errors == []


def test_browser_check_sees_broken_images_and_script_errors(chromium, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><img src="missing.png"><script>undefinedFunction()</script>')
    tab = chromium.open(broken.as_uri())
    assert tab.evaluate("document.images[0].naturalWidth") == 0
    assert len(tab.errors) == 2

"""Benchmark of ``evaluate --report``: the 919-class report of 12,419 images on top of the evaluation (goal: seconds).

    python bench/bench_report.py [--pairs 12419] [--workers 2] [--pictures 12] [--data DIR]

On ImageNet-S919-like synthetic pairs (sides 24-160 px, cached under ``bench/_data/``, shared with bench_match.py
and bench_bootstrap.py), in one run: the plain evaluation with ``--match`` (the floor), the same pass keeping what
the page needs (per-image counts, pixel confusion), then writing the page alone (tables, charts, 2 x N pictures),
its size, and the time a headless Chromium takes to open it and to sort its 920-row table (when one is installed).
The synthetic set has masks only: photos of the pictured images are drawn once before the clock (the page reads
those alone), so the page holds all four panels of each picture.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))  # the DevTools client of the browser test

from bench_evaluate import add_small_919_arguments, best_of_rounds, small_919_case, timed  # noqa: E402
from imagenets.codec import read_mask  # noqa: E402
from imagenets.demo.synthetic import synthetic_photo  # noqa: E402
from imagenets.evaluation.engine.evaluation import Keep, count_predictions, summarize_tally  # noqa: E402
from imagenets.evaluation.engine.report import json_ready  # noqa: E402
from imagenets.evaluation.html_report import pick_pictures, write_evaluation_report  # noqa: E402
from imagenets.evaluation.html_report.data import image_scores, validation_images  # noqa: E402

K = 919
REPORT_KEEP = Keep(image_counts=True, confusion=True, clusters=True)


def write_photos(case, tally, meta, subset, pictures: int, folder: Path) -> int:
    """Synthetic photos (as the demo draws them) of the images the page will picture; returns how many."""
    from PIL import Image

    scores = image_scores(tally.metrics.image_counts(), tally.names, validation_images(meta, subset))
    written = 0
    for chosen in pick_pictures(scores, pictures).values():
        for score in chosen:
            target = folder / score.image
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                gt = read_mask(case["gt"] / score.mask)
                Image.fromarray(synthetic_photo(gt, 0, score.index)).save(target, format="JPEG", quality=90)
                written += 1
    return written


def open_in_browser(page: Path):
    """(load seconds, sort seconds, images, images loaded, console errors) or None without a Chromium."""
    from browser import Chromium, find_chromium

    if find_chromium() is None:
        return None
    with Chromium() as browser:
        tab = browser.open()
        tab.navigate("about:blank")
        load = tab.navigate(page.as_uri())
        sort = tab.evaluate("(() => { const t = performance.now(); const th = Array.from("
                            "document.querySelectorAll('#class-table th')).find(h => h.textContent === 'IoU');"
                            "th.click(); return (performance.now() - t) / 1000; })()")
        images = tab.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        return load, sort, len(images), sum(images), tab.errors


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_small_919_arguments(parser)
    parser.add_argument("--pictures", type=int, default=12, help="worst and best images pictured")
    parser.add_argument("--keep-page", type=Path, default=None, metavar="FILE.html", help="also keep the page there")
    args = parser.parse_args(argv)

    case, meta, subset = small_919_case(args.data, args.pairs, args.workers)

    def count(keep: Keep):
        return count_predictions(case["pred"], case["gt"], subset, meta, match_file=case["match"],
                                 workers=args.workers, quiet=True, keep=keep)

    (plain_s, plain_cpu, _plain), (keep_s, keep_cpu, tally) = best_of_rounds(
        args.rounds, lambda: count(Keep()), lambda: count(REPORT_KEEP))
    result = json_ready(summarize_tally(tally))
    photos = case["root"] / "photos"
    drawn = write_photos(case, tally, meta, subset, args.pictures, photos)
    with tempfile.TemporaryDirectory() as out:
        page = Path(out) / "report.html"
        report_s, report_cpu, _path = timed(lambda: write_evaluation_report(page, tally, result, meta, subset,
                                                                            photos, args.pictures))
        size = page.stat().st_size
        browser = open_in_browser(page)
        if args.keep_page:
            shutil.copyfile(page, args.keep_page)

    print(f"bench_report: {args.pairs} ImageNet-S919-like pairs (sides 24-160 px), {args.workers} workers, "
          f"{args.pictures} worst + {args.pictures} best pictured ({drawn} photos drawn for this run)")
    print(f"{'':<40} {'wall':>9}  {'CPU':>9}   (best of {args.rounds} rounds for the two passes)")
    print(f"{'evaluate --match (floor)':<40} {plain_s:7.2f} s  {plain_cpu:7.2f} s   mIoU {result['mIoU']:.2f}")
    print(f"{'  pass keeping what the page needs':<40} {keep_s:7.2f} s  {keep_cpu:7.2f} s   "
          f"{keep_s / plain_s:.2f}x / {keep_cpu / plain_cpu:.2f}x the floor")
    print(f"{'  writing the page':<40} {report_s:7.2f} s  {report_cpu:7.2f} s   {size / 1e6:.2f} MB, "
          f"{K + 1} class rows, {2 * args.pictures} pictures")
    total = keep_s + report_s
    print(f"{'  evaluate --report, whole':<40} {total:7.2f} s  {'':>9}   {total / plain_s:.2f}x the floor "
          f"(+{total - plain_s:.2f} s)")
    if browser is None:
        print("browser: no Chromium installed (apt-get install chromium): page not opened")
    else:
        load, sort, images, loaded, errors = browser
        print(f"{'  Chromium: open the page (load event)':<40} {load:7.2f} s   sort 920 rows by IoU {sort * 1000:.0f} ms; "
              f"{loaded}/{images} images loaded; console errors: {len(errors)}" + (f" {errors[:3]}" if errors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

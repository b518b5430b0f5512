"""The second adversarial pass over the command layer (issue 16's "Done when"): each defect it found, pinned on
the artifact's real shape and on the shared piece that now holds the guarantee (the guard's implied inputs,
the readers, the number parser, the temporaries, escaped names, the metric's state)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_error
from imagenets.cli import run_command

K = 50
REPO = Path(__file__).resolve().parents[1]


def run_process(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``imagenets ARGV`` in its own process (a hang ends the test, not the suite)."""
    return subprocess.run([sys.executable, "-m", "imagenets", *argv], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.fixture
def prepared(case):
    """The protocol case laid out as ``prepare`` leaves a tree: photos in validation/ beside the masks."""
    subset = case["root"] / "ImageNetS50"
    subset.mkdir()
    case["gt"] = case["gt"].rename(subset / "validation-segmentation")
    case["images"] = (case["images"] / "validation").rename(subset / "validation")
    return {**case, "meta": case["meta_dir"]}


def evaluate_argv(case, *extra: str, meta: bool = True) -> list:
    return ["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
            "--match", str(case["match"]), "--workers", "0", "--quiet",
            *(["--meta-dir", str(case["meta"])] if meta else []), *extra]


# ---- the guard's implied inputs: what an option not given stands for is an input too ------------------

def test_a_report_over_a_photo_of_the_default_images_folder_is_refused(prepared, capsys):
    photo = next(p for p in sorted(prepared["images"].rglob("*")) if p.is_file())
    before = photo.read_bytes()
    status = run_command(evaluate_argv(prepared, "--report", str(photo)))
    assert_one_error(status, capsys.readouterr().err, "--report", "lies inside --images")
    assert photo.read_bytes() == before


def test_an_output_into_the_metadata_folder_of_the_environment_is_refused(prepared, monkeypatch, capsys):
    meta = prepared["meta"]
    listed = next(p for p in sorted((meta / "names").iterdir()) if "validation" in p.name)
    before = listed.read_bytes()
    monkeypatch.setenv("IMAGENETS_META_DIR", str(meta))
    status = run_command(evaluate_argv(prepared, "--output", str(listed), meta=False))
    assert_one_error(status, capsys.readouterr().err, "--output", "lies inside IMAGENETS_META_DIR")
    assert listed.read_bytes() == before


# ---- names on a page: escaped like names in a message -------------------------------------------------

def hostile_class_names(meta_dir: Path) -> str:
    """Give every class a name with a bidi override and an escape sequence (a classnames/ file is
    'wnid<TAB>name' lines); returns the first class's new name."""
    path = next((meta_dir / "classnames").iterdir())
    lines = [line.split("\t")[0] + "\t\u202eevil\x1b[2J <b>" + str(n) for n, line in
             enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines[0].split("\t")[1]


@pytest.mark.parametrize("command", ["report", "gallery"])
def test_class_names_reach_a_page_escaped(prepared, command):
    hostile_class_names(prepared["meta"])
    out = prepared["root"] / "pages"
    if command == "report":
        assert run_command(evaluate_argv(prepared, "--report", str(out / "report.html"))) == 0
        page = (out / "report.html").read_text(encoding="utf-8")
    else:
        assert run_command(["visualize", "--images", str(prepared["images"]), "--gt-dir", str(prepared["gt"]),
                            "--predict-dir", str(prepared["pred"]), "--match", str(prepared["match"]), "--mode",
                            "50", "--meta-dir", str(prepared["meta"]), "-o", str(out), "--workers", "0",
                            "--quiet"]) == 0
        page = (out / "index.html").read_text(encoding="utf-8")
    assert "\\u202eevil\\x1b[2J &lt;b&gt;" in page
    assert "\u202e" not in page and "\x1b" not in page and "[2J <b>" not in page


# ---- the readers: a FIFO nobody writes to, an empty list ------------------------------------------------

@pytest.mark.parametrize("what", ["--match", "list"])
def test_a_fifo_nobody_writes_is_one_line_not_a_hang(prepared, what):
    if what == "--match":
        fifo = prepared["root"] / "match-fifo.json"
        argv = evaluate_argv(prepared)
        argv[argv.index("--match") + 1] = str(fifo)
    else:
        fifo = next(p for p in (prepared["meta"] / "names").iterdir() if "validation" in p.name)
        fifo.unlink()
        argv = evaluate_argv(prepared)
    os.mkfifo(fifo)
    done = run_process(*argv, timeout=30)
    assert_one_error(done.returncode, done.stderr, *(["match file", str(fifo)] if what == "--match" else []))


def test_a_pipe_with_a_writer_is_read_whole(prepared):
    reader, writer = os.pipe()
    argv = evaluate_argv(prepared)
    argv[argv.index("--match") + 1] = f"/dev/fd/{reader}"
    process = subprocess.Popen([sys.executable, "-m", "imagenets", *argv], pass_fds=(reader,), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO)))
    os.close(reader)
    with os.fdopen(writer, "wb") as stream:
        stream.write(prepared["match"].read_bytes())
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


@pytest.mark.parametrize("command", ["evaluate", "match"])
def test_an_empty_validation_list_is_refused_not_scored(prepared, command, monkeypatch, capsys):
    listed = next(p for p in (prepared["meta"] / "names").iterdir() if "validation" in p.name)
    listed.write_text("")
    argv = evaluate_argv(prepared)
    if command == "match":
        argv = ["match", *argv[1:argv.index("--match")], *argv[argv.index("--match") + 2:]]
    monkeypatch.chdir(prepared["root"])
    status = run_command(argv)
    assert_one_error(status, capsys.readouterr().err, "names no image")
    assert not (prepared["root"] / "results").exists()


# ---- the metric's state and inputs: nothing it cannot have counted ---------------------------------------

def metric_state(case):
    """The state of a SegmentationMetrics over the case's images, as torch.save/torch.load give it back."""
    import torch

    from imagenets import SegmentationMetrics
    from imagenets.codec import read_mask

    metrics = SegmentationMetrics(K)
    for _image, mask in case["names"]:
        metrics.update(preds=torch.from_numpy(read_mask(case["pred"] / mask)),
                       target=torch.from_numpy(read_mask(case["gt"] / mask)))
    return metrics, metrics.state_dict()


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.update(correct=s["images"] + 6), "more Acc-correct images"),      # Acc above 100%
    (lambda s: s.update(images=s["images"] * 0), "counts but no image"),
    (lambda s: s["counts"][0, 0].add_(10 ** 6), "more I than P"),                 # an IoU above 100%
    (lambda s: s.update(counts=s["counts"].numpy().astype("uint64") + (2 ** 63)), "above"),  # would wrap
    (lambda s: s.update(images=10 ** 30), "is 10000"),
    (lambda s: s.update(images=s["counts"][0, 0, :2]), "one count was expected"),
])
def test_a_state_no_images_can_give_is_refused(case, edit, needle):
    from imagenets import SegmentationMetrics

    counted, state = metric_state(case)
    edit(state)
    metrics = SegmentationMetrics(K)
    with pytest.raises(ValueError, match=needle):
        metrics.load_state_dict(state)
    assert metrics.images == 0  # a refused state changes nothing
    metrics.load_state_dict(counted.state_dict())
    assert metrics.compute()["mIoU"] == counted.compute()["mIoU"]


@pytest.mark.parametrize("where", ["update", "state", "save_prediction"])
def test_a_tensor_without_values_is_a_type_error_naming_it(case, tmp_path, where):
    import torch

    from imagenets import SegmentationMetrics
    from imagenets.datasets import save_prediction

    empty = torch.zeros((4, 5), dtype=torch.int64, device="meta")
    with pytest.raises(TypeError, match="'meta' device"):
        if where == "update":
            SegmentationMetrics(K).update(preds=empty, target=empty)
        elif where == "state":
            _counted, state = metric_state(case)
            SegmentationMetrics(K).load_state_dict({**state, "counts": state["counts"].to("meta")})
        else:
            save_prediction(tmp_path, "n01443537/x.png", empty)


# ---- distance matching: numbers that float32 cannot carry --------------------------------------------

@pytest.mark.parametrize("temperature", ["1e-46", "1e39"])
def test_a_temperature_float32_cannot_hold_is_refused_by_the_parser(tmp_path, temperature, capsys):
    from helpers import exit_status

    status = exit_status(run_command, ["distance-matching", "--dataset", str(tmp_path), "--mode", "50", "--model",
                                       "model.pt", "--split", "validation", "--output-dir", str(tmp_path / "out"),
                                       "-T", temperature])
    assert_one_error(status, capsys.readouterr().err, "-T/--temperature", "in float32")


@pytest.mark.parametrize("features, needle", [("huge", "too large for float32"), ("meta", "'meta' device")])
def test_features_whose_cosines_cannot_be_taken_are_refused(features, needle):
    import torch

    from imagenets.errors import UserError
    from imagenets.evaluation.distance_matching.bank import check_features

    batch = torch.zeros((2, 3, 64, 80))
    out = torch.full((2, 16, 2, 3), 1e30) if features == "huge" else torch.zeros((2, 16, 2, 3), device="meta")
    with pytest.raises(UserError, match=needle):
        check_features(out, batch, "train-semi/n01443537/x.JPEG")
    check_features(torch.full((2, 16, 2, 3), 1e18), batch, "train-semi/n01443537/x.JPEG")  # large, still fine


# ---- archives written to a device or a FIFO -----------------------------------------------------------

def test_a_submission_to_dev_null_is_written_not_a_traceback(case):
    import numpy as np

    from helpers import submit
    from imagenets.codec import write_mask

    # zipfile took /dev/null's position (always 0, plus what its buffer held) for offsets: the central
    # directory's size came out negative whenever the buffer was flushed while it was written. Zips of a
    # few sizes meet that case.
    rng = np.random.default_rng(0)
    for width in range(40, 400, 30):
        noisy = case["root"] / f"noisy{width}"
        for _image, mask in case["names"]:
            write_mask(noisy / mask, rng.integers(0, K + 1, size=(30, width)))
        assert submit(case, noisy, protocol="free", output="/dev/null") == 0


def test_an_npz_through_a_link_to_dev_null_or_into_a_fifo_is_a_whole_archive(case, capsys):
    import threading

    import numpy as np

    linked, fifo, received = case["root"] / "null.npz", case["root"] / "pipe.npz", {}
    linked.symlink_to("/dev/null")
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: received.update(data=fifo.read_bytes()))
    reader.start()
    argv = ["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
            "--match", str(case["match"]), "--meta-dir", str(case["meta_dir"]), "--workers", "0", "--quiet"]
    assert run_command([*argv, "--confusion", str(linked), "--save-counts", str(fifo)]) == 0, capsys.readouterr().err
    reader.join(timeout=30)
    (case["root"] / "counts.npz").write_bytes(received["data"])
    with np.load(case["root"] / "counts.npz") as saved:
        assert saved["names"].size == len(case["names"])


# ---- a main process killed outright: its workers do not stay behind -------------------------------------

BUSY_MAIN = """
import os, sys, time
from imagenets.evaluation.engine.parallel import map_reduce

def work(items):
    return b"x" * (4 << 20)  # a large result: a worker blocks handing it over to a busy main process

def reduce(_result):
    print("busy", flush=True)
    time.sleep(120)  # killed meanwhile

map_reduce(list(range(32)), work, reduce, workers=2, quiet=True, chunk_size=1)
"""


def children_of(pid: int) -> list:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to find the workers")
def test_workers_of_a_main_process_killed_outright_end_soon(tmp_path):
    import signal
    import time

    main = subprocess.Popen([sys.executable, "-c", BUSY_MAIN], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert main.stdout.readline().strip() == "busy"
        workers = children_of(main.pid)
        assert len(workers) == 2
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.monotonic() + 15  # a worker looks every second, then has a second to clean up
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # never leave them to the machine, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert not left


# ---- score's extraction folder: a killed run's goes with the next run, a live run's stays -----------------

def left_by_a_killed_score(scratch: Path, name: str) -> Path:
    """The extraction folder a SIGKILLed ``score`` leaves in the temporary folder: a minute old."""
    folder = scratch / name
    (folder / "n01443537").mkdir(parents=True)
    (folder / "n01443537" / "ILSVRC2012_val_00000001.png").write_bytes(b"\x89PNG half")
    (folder / "method.txt").write_text("Method name: x\n")
    for path in (folder / "n01443537" / "ILSVRC2012_val_00000001.png", folder / "n01443537", folder):
        os.utime(path, (os.path.getatime(path) - 60, os.path.getmtime(path) - 60))
    return folder


def test_a_killed_scores_extraction_goes_with_the_next_score_a_live_ones_stays(case, scratch):
    import fcntl

    from helpers import score_zip, submit

    assert submit(case, case["pred"], "--match", str(case["match"])) == 0
    killed = left_by_a_killed_score(scratch, "imagenets-score-k1ll3d00")
    live = left_by_a_killed_score(scratch, "imagenets-score-l1ve0000")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as the live run holds it
    try:
        assert score_zip(case, case["root"] / "sub.zip") == 0
    finally:
        os.close(holder)
    assert not killed.exists() and live.exists()
    assert sorted(p.name for p in scratch.iterdir()) == [live.name]  # and score's own folder is gone


# ---- a list of inputs names each file once ----------------------------------------------------------------

@pytest.mark.parametrize("how", ["twice", "symlink", "hard link"])
def test_aggregate_refuses_a_run_given_twice(case, how, capsys):
    report = case["root"] / "seed0.json"
    argv = ["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
            "--match", str(case["match"]), "--meta-dir", str(case["meta_dir"]), "--workers", "0", "--quiet"]
    assert run_command([*argv, "--output", str(report)]) == 0
    again = case["root"] / "again.json"
    if how == "twice":
        again = report
    elif how == "symlink":
        again.symlink_to(report)
    else:
        os.link(report, again)
    status = run_command(["aggregate", str(report), str(again)])
    assert_one_error(status, capsys.readouterr().err, "RUN.json", "the same file")


# ---- a side file is shown only with what it belongs to ----------------------------------------------------

def test_the_report_shows_no_tie_report_of_a_replaced_match(prepared, monkeypatch):
    import re

    monkeypatch.chdir(prepared["root"])
    argv = evaluate_argv(prepared)
    match_argv = ["match", *argv[1:argv.index("--match")], *argv[argv.index("--match") + 2:], "--session-name", "m"]
    assert run_command(match_argv) == 0
    mapping = prepared["root"] / "results" / "m.json"
    argv[argv.index("--match") + 1] = str(mapping)
    assert run_command([*argv, "--report", "kept.html"]) == 0
    shutil.copy(prepared["match"], mapping)  # another mapping copied over it: its tie report is not that one's
    assert run_command([*argv, "--report", "replaced.html"]) == 0

    def ties(page: str) -> str:
        return re.search(r"match tie report</dt><dd>(.*?)</dd>", (prepared["root"] / page).read_text()).group(1)

    assert "optimum" in ties("kept.html") and "tie_break: munkres-1.1.4" in ties("kept.html")
    assert "not shown" in ties("replaced.html") and "tie_break" not in ties("replaced.html")


# ---- the metadata cache: where it cannot be written, the line says which setting -------------------------

def test_a_cache_that_cannot_be_written_names_its_setting(tmp_path, monkeypatch, capsys):
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("a file where the cache folder should be")
    monkeypatch.setenv("IMAGENETS_CACHE", str(in_the_way))
    monkeypatch.setenv("IMAGENETS_META_URL", "http://127.0.0.1:9/unreachable")  # nothing may be fetched
    status = run_command(["meta", "download", "--quiet"])
    assert_one_error(status, capsys.readouterr().err, "$IMAGENETS_CACHE", f"{in_the_way} is a file")


def test_metrics_of_no_image_say_so(capsys):
    from imagenets import SegmentationMetrics

    assert SegmentationMetrics(K).compute()["mIoU"] == 0
    assert "no image added" in capsys.readouterr().err


def test_save_prediction_takes_a_path_name_and_refuses_a_backslash(tmp_path):
    import numpy as np

    from imagenets.datasets import save_prediction

    ids = np.ones((4, 5), dtype=np.int64)
    assert save_prediction(tmp_path, Path("n01443537") / "x.png", ids) == tmp_path / "n01443537" / "x.png"
    with pytest.raises(ValueError, match="relative <wnid>/<name>.png"):
        save_prediction(tmp_path, "..\\\\x.png", ids)  # '..' on Windows


@pytest.mark.parametrize("what", ["folder", "/dev/zero"])
def test_weights_that_are_no_file_are_named_so_not_missing(tmp_path, what):
    from imagenets.errors import UserError
    from imagenets.evaluation.distance_matching.model import _read_state_dict

    with pytest.raises(UserError, match="is a folder, FIFO or device, not a checkpoint"):
        _read_state_dict(tmp_path if what == "folder" else Path(what))


# ---- a dependency installed but broken: one line naming it, as a missing one -------------------------------

@pytest.mark.parametrize("argv", [["evaluation/evaluator.py"], ["evaluation/threshold_curve.py"],
                                  ["-m", "imagenets", "evaluate"], ["-m", "imagenets", "match"]])
def test_a_dependency_that_fails_to_import_is_one_line(tmp_path, argv):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    # what a numpy built for another Python or ABI does on import
    (shadow / "numpy.py").write_text('raise ImportError("numpy.core.multiarray failed to import")\n')
    done = subprocess.run([sys.executable, *[str(REPO / a) if a.endswith(".py") else a for a in argv], "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=f"{shadow}{os.pathsep}{REPO}"))
    assert_one_error(done.returncode, done.stderr, "'numpy'", "fails to import", "multiarray failed", "pip install")


def test_a_gallery_link_reaches_its_picture_whatever_the_file_name(prepared):
    """File names from the list are shown escaped, but a link is the name itself, URL-encoded."""
    import re
    from urllib.parse import unquote

    listed = next(p for p in (prepared["meta"] / "names").iterdir() if "validation" in p.name)
    lines = listed.read_text().split("\n")
    image, mask = lines[0].split()
    wnid, stem = mask.split("/")[0], "\u202eodd#1%\x1b[1m"
    for folder in (prepared["gt"], prepared["pred"]):
        (folder / mask).rename(folder / wnid / f"{stem}.png")
    (prepared["images"] / image).rename(prepared["images"] / wnid / f"{stem}.JPEG")
    lines[0] = f"{wnid}/{stem}.JPEG {wnid}/{stem}.png"
    listed.write_text("\n".join(lines))
    out = prepared["root"] / "gallery"
    assert run_command(["visualize", "--images", str(prepared["images"]), "--gt-dir", str(prepared["gt"]),
                        "--predict-dir", str(prepared["pred"]), "--match", str(prepared["match"]), "--mode", "50",
                        "--meta-dir", str(prepared["meta"]), "-o", str(out), "--limit", "0", "--workers", "0",
                        "--quiet"]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="([^"]*)"', page))
    assert links and all((out / unquote(link)).is_file() for link in links)
    assert "\\u202eodd#1%\\x1b[1m" in page and "\u202e" not in page

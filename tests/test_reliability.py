"""Damaged environments and hostile paths: one ``error:`` line, exit status 2, nothing of the user's damaged."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from imagenets.cli import guarded, run_command
from imagenets.codec import MAX_PIXELS, open_image, write_mask
from imagenets.device import cap_workers
from imagenets.errors import UserError
from imagenets.evaluation.engine.parallel import map_reduce
from imagenets.fileio import write_json_atomic, write_text_atomic
from imagenets.walk import walk_files
from helpers import assert_one_error, base_args

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def case(eval_case):
    return eval_case


def cli(capsys, *argv) -> tuple:
    """(exit status, stderr) of ``imagenets ARGV...`` run in-process."""
    status = run_command([str(a) for a in argv])
    return status, capsys.readouterr().err


def evaluate(case, *extra):
    return ["evaluate", *base_args(case), *extra]


def make_device(path: Path, minor: int) -> Path:
    """A character device of the memory driver (3: null, 7: full) in a test folder: never the real /dev."""
    if not IS_ROOT:
        pytest.skip("creating a device node needs root")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


# ---- what we write ------------------------------------------------------------------------------

def test_writing_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real" / "report.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json_atomic(link, {"a": 1})
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temporary left


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    target.chmod(0o444)
    write_json_atomic(target, {"a": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o444 and json.loads(target.read_text()) == {"a": 1}


def test_writing_to_a_fifo_writes_into_it_and_keeps_the_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_text_atomic(fifo, "through the pipe")
    reader.join(10)
    assert received == ["through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_writing_to_a_device_keeps_the_device(tmp_path):
    null = make_device(tmp_path / "null", 3)
    write_json_atomic(null, {"a": 1})
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_a_full_disk_is_one_line_and_the_device_stays(case, capsys):
    full = make_device(case["tmp"] / "full", 7)
    status, err = cli(capsys, *evaluate(case, "--output", full))
    assert_one_error(status, err, str(full), "No space left on device")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_output_to_the_standard_output_streams_the_json(case, capfd):
    assert run_command(evaluate(case, "--output", "/proc/self/fd/1")) == 0
    assert json.loads(capfd.readouterr().out)["images"] == 8


def test_output_equal_to_the_match_file_is_refused_before_any_work(case, capsys):
    match = case["tmp"] / "m.json"
    match.write_text(json.dumps({"0": 0, **{str(i): i for i in range(1, 51)}}))
    before = match.read_bytes()
    status, err = cli(capsys, *evaluate(case, "--match", match, "--output", match))
    assert_one_error(status, err, "--output", "--match", "destroy")
    assert match.read_bytes() == before


@pytest.mark.parametrize("option", ["--output", "--plot"])
@pytest.mark.parametrize("folder", ["pred", "gt"])
def test_output_inside_an_input_folder_is_refused(case, capsys, option, folder):
    target = case[folder] / case["masks"][0]
    before = target.read_bytes()
    status, err = cli(capsys, *evaluate(case, option, target))
    assert_one_error(status, err, option, "inside")
    assert target.read_bytes() == before


@pytest.mark.parametrize("option", ["--output", "--plot"])
def test_output_that_is_a_folder_is_refused(case, capsys, option):
    status, err = cli(capsys, *evaluate(case, option, case["tmp"]))
    assert_one_error(status, err, option, "is a directory")


def test_output_under_a_file_is_refused(case, capsys):
    (case["tmp"] / "file").write_text("")
    status, err = cli(capsys, *evaluate(case, "--output", case["tmp"] / "file" / "child.json"))
    assert_one_error(status, err, "--output", "is a file, not a folder")


def test_output_where_nobody_may_write_is_refused(case, capsys):
    status, err = cli(capsys, *evaluate(case, "--output", "/proc/imagenets-test/report.json"))
    assert_one_error(status, err, "--output", "cannot write in /proc")


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_output_in_a_read_only_folder_is_refused(case, capsys):
    locked = case["tmp"] / "locked"
    locked.mkdir(mode=0o555)
    status, err = cli(capsys, *evaluate(case, "--output", locked / "report.json"))
    assert_one_error(status, err, "--output", "cannot write in")


def test_match_refuses_a_results_folder_it_cannot_create(case, capsys, monkeypatch):
    monkeypatch.chdir(case["tmp"])
    (case["tmp"] / "results").write_text("")
    status, err = cli(capsys, "match", *base_args(case))
    assert_one_error(status, err, "match file results/match.json", "is a file, not a folder")


def test_match_refuses_a_report_over_its_own_match_file(case, capsys, monkeypatch):
    monkeypatch.chdir(case["tmp"])
    status, err = cli(capsys, "match", *base_args(case), "--output", "results/match.json")
    assert_one_error(status, err, "--output", "match file")
    assert not (case["tmp"] / "results" / "match.json").exists()


def test_score_and_submission_refuse_an_output_folder(case, capsys, tmp_path):
    status, err = cli(capsys, "score", tmp_path / "sub.zip", "--gt-dir", case["gt"], "--mode", "50",
                      "--output", tmp_path)
    assert_one_error(status, err, "--output", "is a directory")
    status, err = cli(capsys, "submission", "--predict-dir", case["pred"], "--mode", "50", "--protocol", "free",
                      *(x for field in ("method-name", "train-data", "train-scheme", "networks", "link",
                                        "description") for x in (f"--{field}", "x")), "-o", tmp_path)
    assert_one_error(status, err, "--output", "is a directory")


@pytest.mark.parametrize("command", ["visualize", "convert", "apply-match"])
def test_output_dir_that_is_a_file_is_refused(case, capsys, command):
    blocker = case["tmp"] / "blocker"
    blocker.write_text("keep me")
    argv = {"visualize": ["--images", case["gt"], "--gt-dir", case["gt"], "--predict-dir", case["pred"],
                          "--mode", "50"],
            "convert": ["--to", "gray16", "--input-dir", case["gt"]],
            "apply-match": ["--predict-dir", case["pred"], "--match", case["tmp"] / "absent.json"]}[command]
    status, err = cli(capsys, command, *argv, "--output-dir", blocker)
    assert_one_error(status, err, "--output-dir", str(blocker), "is a file")
    assert blocker.read_text() == "keep me"


def test_an_os_error_that_escapes_is_one_line_naming_the_file(capsys):
    def fails():
        raise PermissionError(13, "Permission denied", "/some/file")

    assert guarded(fails) == 2
    assert capsys.readouterr().err == "error: /some/file: Permission denied\n"


def test_an_os_error_in_a_worker_job_is_one_line(tmp_path):
    def work(_chunk):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path))

    with pytest.raises(UserError, match=f"{tmp_path}: Is a directory"):
        map_reduce([1, 2], work, lambda _r: None, workers=0, quiet=True)


# ---- what we read -------------------------------------------------------------------------------

def constant_png(width: int, height: int) -> bytes:
    """A valid black RGB PNG of any size in a few hundred KB: one deflate block, fully flushed (so its
    bytes do not depend on what came before), repeated."""
    row = b"\0" * (1 + 3 * width)  # filter byte 0, then black pixels
    rows = min(height, 64)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(row * rows) + deflate.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(height, rows)
    tail = deflate.compress(row * rest) + deflate.flush(zlib.Z_FINISH)
    adler = ((len(row) * height % 65521) << 16) | 1  # Adler-32 of zeros
    stream = b"\x78\xda" + block * count + tail + struct.pack(">I", adler)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def huge_png() -> bytes:
    """A 15000x15000 PNG (225 Mpx, over Pillow's own bomb limit), built once."""
    return constant_png(15000, 15000)


def test_constant_png_is_a_real_png():
    with open_image(io.BytesIO(constant_png(70, 130))) as image:
        assert image.size == (70, 130) and image.convert("L").getextrema() == (0, 0)


@pytest.mark.parametrize("command", ["evaluate", "match", "visualize", "convert", "apply-match", "submission"])
def test_a_huge_png_pair_is_refused_by_name_before_decoding(case, capsys, huge_png, command, tmp_path):
    name = case["masks"][0]
    for folder in ("gt", "pred"):
        (case[folder] / name).write_bytes(huge_png)
    match = tmp_path / "m.json"
    match.write_text(json.dumps({str(i): i for i in range(51)}))
    common = ["--mode", "50", "--meta-dir", case["meta"], "--workers", "0", "--quiet"]
    argv = {"evaluate": evaluate(case),
            "match": ["match", *base_args(case)],
            "visualize": ["visualize", "--images", case["gt"], *base_args(case), "-o", tmp_path / "v"],
            "convert": ["convert", "--to", "gray16", "--input-dir", case["pred"], "--output-dir", tmp_path / "c",
                        "--workers", "0", "--quiet"],
            "apply-match": ["apply-match", "--predict-dir", case["pred"], "--match", match, "--output-dir",
                            tmp_path / "a", "--workers", "0", "--quiet"],
            "submission": ["submission", "--predict-dir", case["pred"], "--split", "validation", "--protocol",
                           "free", "--check-only", *(x for f in ("method-name", "train-data", "train-scheme",
                                                                  "networks", "link", "description")
                                                     for x in (f"--{f}", "x")), *common]}[command]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBomb warning either
        status, err = cli(capsys, *argv)
    if command == "submission":
        assert status == 2 and "too-large: 1" in err and "15000x15000" in err and "Traceback" not in err
    else:
        assert_one_error(status, err, name, "15000x15000", f"{MAX_PIXELS:,}")


def test_an_image_at_the_pixel_limit_opens_without_a_warning(tmp_path):
    path = tmp_path / "limit.png"
    path.write_bytes(constant_png(8000, MAX_PIXELS // 8000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_image(path) as image:
            assert image.size == (8000, 8000)


def test_a_symlink_loop_is_walked_once_with_a_warning(tmp_path, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    (tmp_path / "twin").symlink_to(tmp_path / "a" / "b")  # a second name, not a loop: walked
    assert walk_files(tmp_path) == ["a/b/x.png", "twin/x.png"]
    assert "a/b/up" in capsys.readouterr().err
    assert walk_files(tmp_path, follow_links=False) == ["a/b/up", "a/b/x.png", "twin"]


def test_convert_converts_each_mask_of_a_looping_tree_once(tmp_path, capsys):
    write_mask(tmp_path / "in" / "n1" / "m.png", np.ones((4, 5), dtype=np.int32))
    (tmp_path / "in" / "n1" / "loop").symlink_to(tmp_path / "in")
    assert run_command(["convert", "--to", "gray16", "--input-dir", str(tmp_path / "in"), "--output-dir",
                        str(tmp_path / "out"), "--workers", "0", "--quiet"]) == 0
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")] == ["n1/m.png"]
    assert "loop" in capsys.readouterr().err


def test_too_many_workers_are_capped_with_a_note(monkeypatch, capsys):
    monkeypatch.setattr("imagenets.device.usable_cpus", lambda: 2)
    assert cap_workers(1000) == 2 and "using 2" in capsys.readouterr().err
    assert cap_workers(2) == 2 and cap_workers(0) == 0 and capsys.readouterr().err == ""
    assert cap_workers(5, per_cpu=4) == 5
    with pytest.raises(UserError, match="--workers -1"):
        cap_workers(-1)


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port/x", "htp//nowhere", ""])
def test_a_bad_release_url_is_one_line(meta_dir, tmp_path, capsys, url):
    status, err = cli(capsys, "prepare", "--save-dir", tmp_path / "dest", "--mode", "50", "--steps", "annotations",
                      "--meta-dir", meta_dir, "--release-url", url, "--quiet")
    assert_one_error(status, err, "--release-url", "not a valid address")
    assert not (tmp_path / "dest").exists()


def test_save_dir_inside_imagenet_dir_is_refused(tmp_path, capsys):
    (tmp_path / "inet" / "train").mkdir(parents=True)
    status, err = cli(capsys, "prepare", "--imagenet-dir", tmp_path / "inet", "--save-dir",
                      tmp_path / "inet" / "train" / "dest", "--mode", "50")
    assert_one_error(status, err, "--save-dir", "inside --imagenet-dir")


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_unwritable_save_dir_is_refused_before_any_work(meta_dir, tmp_path, capsys, dry_run):
    (tmp_path / "file").write_text("")
    status, err = cli(capsys, "prepare", "--save-dir", tmp_path / "file" / "dest", "--mode", "50",
                      "--steps", "annotations", "--meta-dir", meta_dir, "--quiet", *dry_run)
    assert_one_error(status, err, "--save-dir", "is a file, not a folder")


# ---- processes ----------------------------------------------------------------------------------

def _shim(folder: Path, files: dict) -> dict:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return dict(os.environ, PYTHONPATH=str(folder), PYTHON=sys.executable)


@pytest.mark.parametrize("script", ["evaluation/evaluator.py", "evaluation/match.py",
                                    "datapreparation/datapreparation_val.py", "datapreparation/data_preparation.sh"])
def test_scripts_without_a_dependency_name_the_install_command(tmp_path, script):
    env = _shim(tmp_path / "shim", {"tqdm.py": "raise ModuleNotFoundError(\"No module named 'tqdm'\", name='tqdm')\n"})
    argv = (["bash", str(REPO / script), "inet", "dest", "50", "false"] if script.endswith(".sh")
            else [sys.executable, str(REPO / script), "--help"])
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "'tqdm'" in done.stderr and "pip install" in done.stderr


def test_kill_on_the_wrapper_pid_reaches_prepare(tmp_path):
    env = _shim(tmp_path / "shim", {"sitecustomize.py": "import time\ntime.sleep(60)\n"})
    wrapper = subprocess.Popen(["bash", str(REPO / "datapreparation" / "data_preparation.sh"), "inet", "dest",
                                "50", "false"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        cmdline = b""
        while b"-m\0imagenets" not in cmdline and time.monotonic() < deadline:
            cmdline = Path(f"/proc/{wrapper.pid}/cmdline").read_bytes()
            time.sleep(0.05)
        assert cmdline.split(b"\0")[:3] == [sys.executable.encode(), b"-m", b"imagenets"]
        wrapper.terminate()
        assert wrapper.wait(10) == -signal.SIGTERM
    finally:
        wrapper.kill()


CTRL_C = """
import sys, time
from pathlib import Path
from imagenets.cli import guarded
from imagenets.evaluation.engine.parallel import map_reduce

def work(chunk):
    Path(sys.argv[1], f"started-{chunk[0]}").touch()
    time.sleep(0.5)  # a long item: the pool is stopped once the items in hand are done

sys.exit(guarded(map_reduce, list(range(8)), work, lambda r: None, 2, True, "", "img", 1))
"""


def test_ctrl_c_with_workers_exits_130_with_one_line(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130, err
    assert err == "interrupted\n"


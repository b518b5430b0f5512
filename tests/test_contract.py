"""The contract every command gets from the command layer, pinned for every command at once: its paths declare a
role and one guard checks them before any work; numbers, names and files from outside are parsed by one parser
each. A command added later is walked by these tests too."""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from helpers import METHOD_ARGS, assert_one_error, base_args, first_mask, submit
from imagenets import cli
from imagenets.codec import read_mask, write_mask

REPO = Path(__file__).resolve().parents[1]
#: Metavars that name a file or folder (``FILE.json``, ``DIR``, ``DEST/ImageNetS{K}``, ``MODEL``...).
PATH_METAVAR = re.compile(r"FILE|DIR|DEST|OUT\b|IMAGENET|MODEL|\.[a-z]+\b")


def command_parsers():
    for name in sorted(cli.all_commands()):
        command = cli.load_command(name)
        yield name, command.build_parser(f"imagenets {name}")


def path_like(action: argparse.Action) -> bool:
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    return action.type in (Path,) or getattr(action.type, "__name__", "") == "user_path" or bool(
        PATH_METAVAR.search(metavar))


def test_every_path_option_of_every_command_declares_its_role():
    from imagenets.flags import ROLES, parser_actions

    undeclared, walked = [], 0
    for name, parser in command_parsers():
        for action in parser_actions(parser):
            if path_like(action):
                walked += 1
                if getattr(action, "path_role", None) not in ROLES:
                    undeclared.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert walked > 40 and undeclared == [], f"path options without a role (use imagenets.flags): {undeclared}"


def test_every_number_option_is_parsed_by_the_one_parser():
    from imagenets.flags import parser_actions

    raw = [f"{name} {'/'.join(action.option_strings)}" for name, parser in command_parsers()
           for action in parser_actions(parser) if action.type in (int, float)]
    assert raw == [], f"use imagenets.flags.integer/real: {raw}"


def _entry_points():
    """``python FILE`` for the scripts a clone runs by path, ``python -m MODULE`` for the other ``__main__``s."""
    for path in sorted(p for folder in ("imagenets", "evaluation", "datapreparation")
                       for p in (REPO / folder).rglob("*.py") if 'if __name__ == "__main__"' in p.read_text()):
        rel = path.relative_to(REPO)
        if "sys.path[0] =" in path.read_text():
            yield str(rel), [str(path)]
        else:
            parts = rel.with_suffix("").parts
            yield str(rel), ["-m", ".".join(parts if parts[0] == "imagenets" else ("imagenets",) + parts)]


@pytest.mark.parametrize("argv", [argv for _, argv in _entry_points()], ids=[rel for rel, _ in _entry_points()])
def test_every_entry_point_on_a_python_without_the_dependencies_says_so_in_one_line(argv, tmp_path):
    # -S: no site-packages, so no numpy, Pillow, tqdm or torch; the clone itself is on PYTHONPATH
    done = subprocess.run([sys.executable, "-S", *argv, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "needs the Python package" in done.stderr and "pip install" in done.stderr


# ---- the one guard: outputs never reach an input, by a link or a hard link ----------------------------

def test_an_output_hard_linked_to_an_input_file_is_refused(eval_case, capsys):
    mask = eval_case["gt"] / eval_case["masks"][0]
    linked = eval_case["tmp"] / "report.json"
    os.link(mask, linked)
    before = mask.read_bytes()
    status = cli.main(["evaluate", *base_args(eval_case), "--output", str(linked)])
    assert_one_error(status, capsys.readouterr().err, "--output", "lies inside --gt-dir")
    assert mask.read_bytes() == before


def test_an_output_folder_holding_a_link_into_the_inputs_is_refused(case, capsys):
    out = case["root"] / "matched"
    wnid = first_mask(case).split("/")[0]
    out.mkdir()
    (out / wnid).symlink_to(case["pred"] / wnid)  # writing out/<wnid>/x.png would overwrite the prediction
    before = (case["pred"] / first_mask(case)).read_bytes()
    status = cli.main(["apply-match", "--predict-dir", str(case["pred"]), "--match", str(case["match"]),
                       "--output-dir", str(out), "--workers", "0", "--quiet"])
    assert_one_error(status, capsys.readouterr().err, "--output-dir", "a link to", "--predict-dir")
    assert (case["pred"] / first_mask(case)).read_bytes() == before


# ---- a killed run's temporaries: removed by the next run, never a live run's ------------------------------

WRITER = """
import sys, time
from imagenets.fileio import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a PNG")
    print("writing", flush=True)
    time.sleep(60)
"""

SLOW_APPLY = """
import sys, time
from imagenets import cli
from imagenets.fileio import atomic_path
import imagenets.evaluation.protocols.apply_match as apply_match

def slow_write(path, ids):
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"half a PNG")
        print("writing", flush=True)
        time.sleep(60)

apply_match.write_mask = slow_write
sys.exit(cli.main(sys.argv[1:]))
"""


def _started(script: str, *argv: str) -> subprocess.Popen:
    """A Python process running ``script`` with ``argv``, once it printed that it is writing."""
    process = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert process.stdout.readline().strip() == "writing", process.stderr.read()
    return process


def _temporaries(folder: Path):
    return sorted(folder.rglob("*.tmp"))


def _age(paths, seconds: float = 60.0) -> None:
    old = time.time() - seconds
    for path in paths:
        os.utime(path, (old, old))


def apply_argv(case, out: Path):
    return ["apply-match", "--predict-dir", str(case["pred"]), "--match", str(case["match"]), "--output-dir",
            str(out), "--workers", "0", "--quiet"]


def test_a_killed_runs_temporaries_go_with_the_next_run_and_submission_accepts_the_folder(case, capsys):
    from imagenets.fileio import TEMP_GRACE_S

    out = case["root"] / "matched"
    assert cli.main(apply_argv(case, out)) == 0
    killed = _started(WRITER, str(out / first_mask(case)))
    killed.kill()
    killed.wait()
    left = _temporaries(out)
    assert len(left) == 1 and left[0].name.startswith("." + Path(first_mask(case)).name)
    _age(left, TEMP_GRACE_S + 1)  # a rerun a moment later (typing it takes longer than that)
    assert cli.main(apply_argv(case, out)) == 0
    assert _temporaries(out) == []
    assert submit(case, out, output="sub.zip") == 0


def test_a_live_writers_temporary_is_spared(case):
    out = case["root"] / "matched"
    assert cli.main(apply_argv(case, out)) == 0
    alive = _started(WRITER, str(out / first_mask(case)))
    try:
        _age(_temporaries(out), 3600.0)  # old, but its writer holds it
        assert cli.main(apply_argv(case, out)) == 0
        assert len(_temporaries(out)) == 1
    finally:
        alive.kill()
        alive.wait()


def test_sigterm_during_apply_match_exits_143_and_leaves_no_temporary(case):
    out = case["root"] / "matched"
    run = _started(SLOW_APPLY, *apply_argv(case, out))
    run.send_signal(signal.SIGTERM)
    assert run.wait(30) == 128 + signal.SIGTERM
    assert _temporaries(out) == []


# ---- JSON from outside: capped, strict, never a traceback ------------------------------------------------

@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"1": ' * 3000 + "1" + "}" * 3000, '{"0": NaN}'],
                         ids=["deep-array", "deep-object", "NaN"])
def test_a_hostile_match_file_is_one_line(eval_case, capsys, text):
    match = eval_case["tmp"] / "match.json"
    match.write_text(text)
    status = cli.main(["evaluate", *base_args(eval_case), "--match", str(match)])
    assert_one_error(status, capsys.readouterr().err, "match file", str(match))


def _run_small(*argv: str) -> subprocess.CompletedProcess:
    """``imagenets ARGV`` in a process with 3 GiB of address space: a command that reads an endless file
    whole (as 680aef0 did) ends in MemoryError there, not in the machine's swap."""
    def small_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run([sys.executable, "-m", "imagenets", *argv], capture_output=True, text=True, timeout=60,
                          preexec_fn=small_memory, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_an_endless_match_file_is_refused_without_reading_it_whole(eval_case):
    done = _run_small("evaluate", *base_args(eval_case), "--match", "/dev/zero")
    assert_one_error(done.returncode, done.stderr, "/dev/zero", "larger than")


# ---- untrusted names in messages, and the lines around them ------------------------------------------

def official_shape_zip(case, method: str, match: bool = False) -> Path:
    """A submission zip made as the official tools make it (``shutil.make_archive`` over the split folder)."""
    folder = case["root"] / "zipped"
    for _image, mask in case["names"]:
        (folder / mask).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(case["pred"] / mask, folder / mask)
    (folder / "method.txt").write_text(method)
    if match:
        shutil.copy(case["match"], folder / "match.json")
    return Path(shutil.make_archive(str(case["root"] / "sub"), "zip", root_dir=folder))


def test_a_zip_entry_name_cannot_forge_a_line_or_reorder_it(case, capsys):
    zip_path = official_shape_zip(case, "Method name: M")
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr("n01443537/x\nerror: forged \u202egnp.png", b"x")
    status = cli.main(["score", str(zip_path), "--gt-dir", str(case["gt"]), "--mode", "50", "--split", "validation",
                       "--meta-dir", str(case["meta_dir"]), "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert_one_error(status, err)
    assert "x\\nerror: forged \\u202egnp.png" in err and "\u202e" not in err


def test_a_refusal_after_a_progress_bar_starts_its_own_line(case, capsys):
    mask = first_mask(case)
    ids = read_mask(case["pred"] / mask)
    ids[0, 0] = 700
    write_mask(case["pred"] / mask, ids)
    assert submit(case, case["pred"], quiet=False, protocol="free") == 2
    lines = capsys.readouterr().err.split("\n")
    header = [line for line in lines if "is not a valid" in line]
    assert header and header[0].startswith(str(case["pred"])), header
    assert lines[-2].startswith("error: ")


def test_an_output_that_is_a_block_device_is_refused(eval_case, capsys):
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    disk = eval_case["tmp"] / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 200))  # a loop device node: never opened here
    status = cli.main(["evaluate", *base_args(eval_case), "--output", str(disk)])
    assert_one_error(status, capsys.readouterr().err, "--output", "block device")


def test_visualize_may_write_beside_the_inputs_it_reads(case):
    before = {path: path.read_bytes() for path in case["pred"].rglob("*.png")}
    assert cli.main(["visualize", "--images", str(case["images"] / "validation"), "--gt-dir", str(case["gt"]),
                     "--predict-dir", str(case["pred"]), "--match", str(case["match"]), "--mode", "50",
                     "--meta-dir", str(case["meta_dir"]), "--output-dir", str(case["root"]), "--limit", "2",
                     "--workers", "0", "--quiet"]) == 0
    assert (case["root"] / "index.html").is_file() and (case["root"] / "pictures").is_dir()
    assert {path: path.read_bytes() for path in case["pred"].rglob("*.png")} == before


def test_names_from_a_zips_method_txt_are_escaped_in_the_heading(case, capsys):
    zip_path = official_shape_zip(case, "Method name: \x1b[2J\u202eM\nTraining data: d\nTraining scheme: s\n"
                                        "Networks: n\nPaper/Project link: null\nMethod description: x", match=True)
    assert cli.main(["score", str(zip_path), "--gt-dir", str(case["gt"]), "--mode", "50", "--split", "validation",
                     "--meta-dir", str(case["meta_dir"]), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "method \\x1b[2J\\u202eM" in out


def test_a_worker_killed_from_outside_is_one_line():
    from imagenets.errors import UserError
    from imagenets.evaluation.engine.parallel import map_reduce

    def work(_chunk):
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does

    with pytest.raises(UserError, match="a worker process ended abruptly"):
        map_reduce(list(range(4)), work, lambda _result: None, workers=1, quiet=True)


@pytest.mark.parametrize("what", ["/dev/zero", "fifo"])
def test_a_zip_that_is_no_regular_file_is_refused_without_reading_it(case, what):
    if what == "fifo":
        what = str(case["root"] / "sub.zip")
        os.mkfifo(what)

    done = _run_small("score", what, "--gt-dir", str(case["gt"]), "--mode", "50", "--split", "validation",
                      "--meta-dir", str(case["meta_dir"]), "--quiet")  # zipfile read /dev/zero to its end
    assert_one_error(done.returncode, done.stderr, what, "not a regular file")


@pytest.mark.parametrize("command", ["apply-match", "submission", "convert", "threshold-curve"])
def test_a_fifo_among_the_inputs_is_one_line_not_a_hang(case, command):
    mask = case["pred"] / first_mask(case)
    fifo = mask.with_suffix(".npy") if command == "threshold-curve" else mask
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    out = case["root"] / "out"
    argv = {"apply-match": ["--predict-dir", case["pred"], "--match", case["match"], "--output-dir", out],
            "submission": ["--predict-dir", case["pred"], "--mode", "50", "--split", "validation", "--protocol",
                           "free", *METHOD_ARGS, "-o", out / "sub.zip", "--meta-dir", case["meta_dir"]],
            "convert": ["--to", "gray16", "--input-dir", case["pred"], "--output-dir", out],
            "threshold-curve": ["--predict-dir", case["pred"], "--scores-dir", case["pred"], "--gt-dir", case["gt"],
                                "--mode", "50", "--match", case["match"], "--meta-dir", case["meta_dir"]]}[command]
    done = _run_small(command, *map(str, argv), "--workers", "0", "--quiet")
    assert_one_error(done.returncode, done.stderr, *([] if command == "submission" else [str(fifo)]))
    assert not (out / "sub.zip").exists()

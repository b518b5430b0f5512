"""Metadata: the official lists, class names, sources (--meta-dir, environment, cache) and `meta path`."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest

from imagenets import cli, digests, metadata
from imagenets.errors import UserError
from imagenets.metadata import Metadata, cache_dir, load_metadata, names_from_constant, read_data_py
from imagenets.subsets import SUBSETS
from helpers import METHOD_ARGS, assert_one_error, cut_in_half, official_data_py, read_class_names


def read_classnames(meta_dir: Path, k: int) -> dict:
    text = (meta_dir / f"classnames/ImageNetS_classnames_im{k}.txt").read_text(encoding="utf-8")
    return dict(line.split("\t", 1) for line in text.splitlines() if line)


def copy_lists(meta_dir: Path, dest: Path, *, ks=(50,), classnames: bool = False) -> Path:
    rels = [rel for k in ks for rel in SUBSETS[k].list_files]
    rels += [f"classnames/ImageNetS_classnames_im{k}.txt" for k in ks if classnames]
    for rel in rels:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(meta_dir / rel, dest / rel)
    return dest


@pytest.mark.parametrize("k", sorted(SUBSETS))
def test_official_lists_have_the_official_counts(meta_dir, k):
    subset, meta = SUBSETS[k], load_metadata(meta_dir=meta_dir)
    categories = meta.categories(k)
    assert len(categories) == k and categories == sorted(set(categories))
    assert len(meta.validation_names(k)) == subset.count("validation")
    assert len(meta.train_semi_names(k)) == subset.count("train-semi")
    for split in ("validation", "test", "train-semi"):
        assert len(meta.split_images(subset, split)) == subset.count(split)
    assert len(meta.mapping(subset, "test")) == subset.count("test")
    image, mask = meta.validation_names(k)[0]
    assert image.endswith(".JPEG") and mask == image[:-len(".JPEG")] + ".png"


@pytest.mark.parametrize("k", sorted(SUBSETS))
def test_class_names_line_up_with_wnids(meta_dir, k):
    meta = load_metadata(meta_dir=meta_dir)
    table = read_classnames(meta_dir, k)
    assert meta.class_names(k) == [table[wnid] for wnid in meta.categories(k)]
    assert meta.class_ids(k)[meta.categories(k)[0]] == 1


def test_option_wins_over_environment_which_wins_over_cache(meta_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENETS_META_DIR", str(meta_dir))
    assert load_metadata().source == "IMAGENETS_META_DIR"
    other = copy_lists(meta_dir, tmp_path)
    meta = load_metadata(meta_dir=other)
    assert (meta.root, meta.source) == (other, "--meta-dir")


def test_missing_list_names_the_file_and_the_fix(meta_dir, tmp_path):
    copy_lists(meta_dir, tmp_path)
    (tmp_path / SUBSETS[50].train_semi_names_file).unlink()
    meta = load_metadata(meta_dir=tmp_path)
    assert len(meta.validation_names(50)) == 752
    with pytest.raises(UserError, match=r"ImageNetSemi_im50_train\.txt not found.*--meta-dir.*unset it"):
        meta.train_semi_names(50)
    with pytest.raises(UserError, match="is not a directory"):
        load_metadata(meta_dir=tmp_path / "absent")


def test_lists_tolerate_crlf_and_a_final_newline_and_are_sorted(meta_dir, tmp_path):
    wnids = read_classnames(meta_dir, 50)
    (tmp_path / "categories").mkdir()
    (tmp_path / SUBSETS[50].categories_file).write_bytes(
        ("\r\n".join(reversed(list(wnids))) + "\r\n").encode())
    (tmp_path / "names").mkdir()
    (tmp_path / SUBSETS[50].validation_names_file).write_bytes(b"a/x.JPEG a/x.png\r\nb/y.JPEG b/y.png\r\n")
    meta = Metadata(tmp_path)
    assert meta.categories(50) == sorted(wnids)
    assert meta.validation_names("ImageNetS50") == [("a/x.JPEG", "a/x.png"), ("b/y.JPEG", "b/y.png")]


def test_malformed_lists_are_user_errors(meta_dir, tmp_path):
    (tmp_path / "categories").mkdir()
    (tmp_path / SUBSETS[50].categories_file).write_text("n01\nn02")
    (tmp_path / "mapping").mkdir()
    (tmp_path / SUBSETS[50].mapping_file("test")).write_text("a/x.JPEG\nb/y.JPEG b/y.JPEG")
    meta = Metadata(tmp_path)
    with pytest.raises(UserError, match="2 distinct wnids, ImageNetS50 has 50"):
        meta.categories(50)
    with pytest.raises(UserError, match="line 1 has 1 fields"):
        meta.split_images(50, "test")
    with pytest.raises(UserError, match="no mapping list for split 'train'"):
        meta.mapping(50, "train")


def write_data_py(directory: Path, body: str) -> None:
    (directory / "data.py").write_text('raise SystemExit("data.py was executed")\n' + body, encoding="utf-8")


def test_data_py_wins_over_classnames_and_is_never_executed(meta_dir, tmp_path):
    copy_lists(meta_dir, tmp_path, ks=sorted(SUBSETS), classnames=True)
    names = [f"name {i}" for i in range(50)]
    write_data_py(tmp_path, f"classes_50: list = {tuple(names)!r}\nclasses_300 = make()\n")
    meta = load_metadata(meta_dir=tmp_path)
    assert meta.class_names(50) == names
    with pytest.raises(UserError, match="classes_300 in .*data.py is not a list, dict or string"):
        meta.class_names(300)
    with pytest.raises(UserError, match="defines no classes_919"):
        meta.class_names(919)


def test_data_py_that_does_not_parse_is_named(meta_dir, tmp_path):
    copy_lists(meta_dir, tmp_path)
    write_data_py(tmp_path, "classes_50 = [\n")
    with pytest.raises(UserError, match=r"cannot parse .*data\.py"):
        load_metadata(meta_dir=tmp_path).class_names(50)


def test_official_data_py_shape_gives_the_classnames_of_every_subset(meta_dir, tmp_path):
    copy_lists(meta_dir, tmp_path, ks=sorted(SUBSETS))
    names = {k: read_class_names(meta_dir, k) for k in sorted(SUBSETS)}
    (tmp_path / "data.py").write_text(official_data_py(names), encoding="utf-8")
    meta = load_metadata(meta_dir=tmp_path)
    for k in sorted(SUBSETS):
        assert meta.class_names_file(k) == tmp_path / "data.py"
        assert meta.class_names(k) == names[k]


HAND_WRITTEN_DATA_PY = """import torch
from torchvision.datasets import ImageFolder
from munkres import Munkres


class EvalDataset(ImageFolder):
    def __init__(self, pred_root, label_root, name_list, match=None):
        super(EvalDataset, self).__init__(label_root)
        self.classes_50 = "goldfish, tiger shark, jack-o'-lantern"
        self.classes_300 = "tench, goldfish, tiger shark"
        self.classes_919 = "tench, goldfish, great white shark"
        self.classes_50 = ['background'] + self.classes_50.split(', ')
        self.classes_300 = ['background'] + self.classes_300.split(', ')
        self.classes_919 = ['background'] + self.classes_919.split(', ')
        self.classes_919 = ['rebound', 'later', 'literal']
"""


def test_attribute_strings_in_evaldataset_init_are_read_and_rebinding_ignored(tmp_path):
    (tmp_path / "data.py").write_text(HAND_WRITTEN_DATA_PY, encoding="utf-8")
    found = read_data_py(tmp_path / "data.py")
    assert found == {"classes_50": "goldfish, tiger shark, jack-o'-lantern",
                     "classes_300": "tench, goldfish, tiger shark",
                     "classes_919": "tench, goldfish, great white shark"}
    assert names_from_constant(found["classes_50"], ["n1", "n2", "n3"], "classes_50") == [
        "goldfish", "tiger shark", "jack-o'-lantern"]


def test_first_literal_in_source_order_wins_between_constant_and_attribute(tmp_path):
    (tmp_path / "data.py").write_text(
        "classes_50 = make()\nclass A:\n    def f(self):\n        self.classes_50 = 'x, y'\n"
        "classes_50 = 'late, literal'\nclasses_300 = ['a']\nclass B:\n    classes_300 = 'inner'\n",
        encoding="utf-8")
    assert read_data_py(tmp_path / "data.py") == {"classes_50": "x, y", "classes_300": ["a"]}


@pytest.mark.parametrize("value", [
    ["a", "b", "c"], ("a", "b", "c"), {"n3": "c", "n1": "a", "n2": "b"}, [("n1", "a"), ("n2", "b"), ("n3", "c")],
    "a\nb\nc\n", "a, b, c",
])
def test_every_accepted_shape_of_class_names(value):
    assert names_from_constant(value, ["n1", "n2", "n3"], "classes_3 in data.py") == ["a", "b", "c"]


@pytest.mark.parametrize("value", [["a", "b"], {"n1": "a"}, "a; b; c", 3, None])
def test_wrong_class_names_name_data_py(value):
    with pytest.raises(UserError, match="classes_3 in data.py"):
        names_from_constant(value, ["n1", "n2", "n3"], "classes_3 in data.py")


def test_no_class_names_fall_back_to_wnids_with_one_warning(meta_dir, tmp_path, capsys):
    meta = load_metadata(meta_dir=copy_lists(meta_dir, tmp_path))
    assert meta.class_names(50) == meta.categories(50)
    assert meta.class_names(50) == meta.categories(50)
    assert capsys.readouterr().err.count("warning:") == 1


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data"


def test_no_network_and_no_cache_is_one_error_line(monkeypatch, capsys):
    monkeypatch.setenv("IMAGENETS_META_URL", closed_port_url())
    assert cli.main(["meta", "download", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "--meta-dir DIR" in err[0] and "IMAGENETS_META_DIR" in err[0] and "`imagenets meta download`" in err[0]
    with pytest.raises(UserError, match="--meta-dir DIR"):
        load_metadata(quiet=True)


def test_meta_path_prints_the_source(meta_dir, monkeypatch, capsys):
    assert cli.main(["meta", "path", "--meta-dir", str(meta_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(meta_dir) and "source: --meta-dir" in out
    monkeypatch.setenv("IMAGENETS_META_DIR", str(meta_dir))
    assert cli.main(["meta", "path", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "IMAGENETS_META_DIR" and report["subsets"] == {"50": True, "300": True, "919": True}


def test_meta_path_with_an_empty_cache_exits_2(capsys):
    assert cli.main(["meta", "path"]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[:2] == [str(cache_dir()), "source: cache"]
    assert "incomplete, 16 of 16 files missing" in captured.out
    assert "imagenets meta download" in captured.err


def copy_into_cache(meta_dir: Path, monkeypatch) -> None:
    """The 15 official lists and a data.py of the official shape, pinned, placed as a finished cache."""
    for rel in digests.LIST_SHA256:
        (cache_dir() / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(meta_dir / rel, cache_dir() / rel)
    text = official_data_py({k: read_class_names(meta_dir, k) for k in sorted(SUBSETS)})
    (cache_dir() / "data.py").write_text(text, encoding="utf-8")
    monkeypatch.setattr(digests, "DATA_PY_SHA256", hashlib.sha256(text.encode()).hexdigest())


def test_meta_path_reports_a_complete_cache(meta_dir, monkeypatch, capsys):
    copy_into_cache(meta_dir, monkeypatch)
    assert cli.main(["meta", "path"]) == 0
    out = capsys.readouterr().out
    assert "source: cache" in out and f"cache: {cache_dir()}: complete" in out


def test_meta_path_reports_a_cached_list_cut_in_half_as_not_verified(meta_dir, monkeypatch, capsys):
    copy_into_cache(meta_dir, monkeypatch)
    assert cli.main(["meta", "path", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cache_complete"] is True
    rel = SUBSETS[50].validation_names_file
    cut_in_half(cache_dir() / rel)
    assert cli.main(["meta", "path", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["cache_complete"] is False and report["cache_changed"] == [rel]
    assert report["cache_missing"] == 0 and report["usable"] is False
    assert cli.main(["meta", "path"]) == 2
    out = capsys.readouterr().out
    assert f"incomplete, 1 of 16 files not verified ({rel}: not the pinned SHA-256)" in out


# ---- lists from outside: paths stay inside, digests say whether they are the official ones --------------

VALIDATION = SUBSETS[50].validation_names_file
TEST_MAPPING = SUBSETS[50].mapping_file("test")


def _replace_first_line(path: Path, line: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join([line] + lines[1:]), encoding="utf-8")


@pytest.mark.parametrize("dst", ["../../../../outside/n01443537/ILSVRC2012_test_00000001.JPEG",
                                 "{tmp}/absolute/ILSVRC2012_test_00000001.JPEG",
                                 "C:/imagenets/ILSVRC2012_test_00000001.JPEG",
                                 "n01443537/../../../ILSVRC2012_test_00000001.JPEG"])
def test_prepare_refuses_a_list_whose_destination_leaves_the_save_dir(meta_dir, inet50, tmp_path, capsys, dst):
    lists = copy_lists(meta_dir, tmp_path / "meta")
    src = (lists / TEST_MAPPING).read_text().split("\n")[0].split()[0]
    _replace_first_line(lists / TEST_MAPPING, f"{src} {dst.format(tmp=tmp_path)}")
    dest = tmp_path / "work" / "dest"
    status = cli.main(["prepare", "--imagenet-dir", str(inet50.root), "--save-dir", str(dest), "--mode", "50",
                       "--steps", "test", "--meta-dir", str(lists), "--quiet"])
    assert_one_error(status, capsys.readouterr().err, TEST_MAPPING, "line 1", "is unsafe",
                     "must be relative and stay inside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta"]  # nothing written, inside or outside


@pytest.mark.parametrize("command", ["evaluate", "verify", "submission", "score"])
def test_every_command_refuses_a_list_holding_an_unsafe_path(case, capsys, command):
    _replace_first_line(case["meta_dir"] / VALIDATION,
                        "n01443537/ILSVRC2012_val_00000001.JPEG ../../n01443537/ILSVRC2012_val_00000001.png")
    common = ["--mode", "50", "--meta-dir", str(case["meta_dir"]), "--quiet"]
    (case["root"] / "ImageNetS50").mkdir()  # what verify looks for
    argv = {"evaluate": ["--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--match",
                         str(case["match"])],
            "verify": [str(case["root"])],
            "submission": ["--predict-dir", str(case["pred"]), "--split", "validation", "--protocol", "free",
                           *METHOD_ARGS, "-o", str(case["root"] / "sub.zip")],
            "score": [str(case["root"] / "absent.zip"), "--gt-dir", str(case["gt"]), "--split", "validation"]}
    assert_one_error(cli.main([command, *argv[command], *common]), capsys.readouterr().err, VALIDATION,
                     "is unsafe (a '..' component)")
    assert not (case["root"] / "sub.zip").exists()


def test_a_category_that_is_not_a_plain_name_is_refused(meta_dir, tmp_path):
    lists = copy_lists(meta_dir, tmp_path)
    _replace_first_line(lists / SUBSETS[50].categories_file, "../n01443537")
    with pytest.raises(UserError, match="is unsafe"):
        load_metadata(meta_dir=lists).categories(50)


def test_a_list_that_is_not_the_official_one_is_used_with_one_warning_and_recorded(case, capsys, monkeypatch):
    monkeypatch.setattr(metadata, "_WARNED", set())  # the fixture read the lists already
    out = case["root"] / "eval.json"
    argv = ["evaluate", "--predict-dir", str(case["pred"]), "--gt-dir", str(case["gt"]), "--mode", "50",
            "--match", str(case["match"]), "--workers", "0", "--quiet", "--output", str(out)]
    for how in ("--meta-dir", "IMAGENETS_META_DIR"):
        if how == "--meta-dir":
            status = cli.main(argv + ["--meta-dir", str(case["meta_dir"])])
        else:
            monkeypatch.setenv("IMAGENETS_META_DIR", str(case["meta_dir"]))
            status = cli.main(argv)
        assert status == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
        if how == "--meta-dir":  # said once per folder and process
            assert len(warnings) == 1, warnings
            images = len(case["names"])
            assert VALIDATION in warnings[0] and how in warnings[0]
            assert f"({images} images; the official one has 752)" in warnings[0]
        assert json.loads(out.read_text())["official_lists"] is False


def test_a_list_edited_at_the_same_size_is_not_official(meta_dir, tmp_path):
    lists = copy_lists(meta_dir, tmp_path)
    text = (lists / VALIDATION).read_text()
    first, second = text.split("\n")[:2]
    (lists / VALIDATION).write_text(text.replace(first, "\0", 1).replace(second, first, 1).replace("\0", second, 1))
    meta = load_metadata(meta_dir=lists)
    assert len(meta.validation_names(50)) == 752 and not meta.official
    assert load_metadata(meta_dir=meta_dir).validation_names(50) and load_metadata(meta_dir=meta_dir).official


def test_the_official_lists_evaluate_without_a_warning_and_say_so(golden_dir, meta_dir, tmp_path, capsys):
    case = golden_dir / "eval50"
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--predict-dir", str(case / "pred"), "--gt-dir", str(case / "gt"), "--mode", "50",
                     "--meta-dir", str(meta_dir), "--workers", "2", "--quiet", "--output", str(out)]) == 0
    assert "official" not in capsys.readouterr().err
    assert json.loads(out.read_text())["official_lists"] is True


def test_a_data_py_too_deep_for_the_parser_is_one_error(meta_dir, tmp_path):
    lists = copy_lists(meta_dir, tmp_path)
    names = {50: read_class_names(meta_dir, 50)}
    (lists / "data.py").write_text(official_data_py(names) + "\nweights = " + "+".join(["1"] * 300_000) + "\n")
    with pytest.raises(UserError, match="nests too deeply"):
        load_metadata(meta_dir=lists).class_names(50)

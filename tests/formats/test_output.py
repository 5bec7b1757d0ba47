"""--overwrite only replaces what visionloop wrote; outputs are built beside and swapped in (issue 11, item 1)."""

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.demo import synthetic
from visionloop.formats import read, write
from visionloop.formats.output import MARKER, OutputError, atomic_output

runner = CliRunner()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) → SHA-256 of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write(synthetic.shapes(4, folder=root / "render"), root / "coco", format="coco", classes=synthetic.classes())
    return root / "coco"


@pytest.fixture
def project(tmp_path, shapes):
    proj = tmp_path / "P"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = runner.invoke(app, ["import", str(shapes), "-p", str(proj)])
    assert r.exit_code == 0, r.output
    return proj


def _refused(r, *words):
    """CliRunner skips `main()`: a user error is the VisionLoopError it would print as one line."""
    assert r.exit_code == 1 and isinstance(r.exception, VisionLoopError), (r.output, r.exception)
    text = str(r.exception)
    assert "\n" not in text
    for w in words:
        assert w in text, text


def test_export_over_the_project_is_refused_and_changes_nothing(project):
    before = snapshot(project)
    r = runner.invoke(app, ["export", str(project), "-f", "coco", "-p", str(project), "--overwrite"])
    _refused(r, "refusing to replace it")
    assert snapshot(project) == before
    assert sorted(p.name for p in project.parent.iterdir()) == ["P"]  # no partial output left beside it


def test_export_into_the_current_folder_is_refused(project, monkeypatch):
    before = snapshot(project)
    monkeypatch.chdir(project)
    r = runner.invoke(app, ["export", ".", "-f", "yolo", "--overwrite"])
    _refused(r, "refusing to replace it")
    assert snapshot(project) == before


def test_export_over_a_parent_of_the_project_is_refused(project):
    (project.parent / "notes.txt").write_text("mine")
    before = snapshot(project.parent)
    r = runner.invoke(app, ["export", str(project.parent), "-f", "yolo", "-p", str(project), "--overwrite"])
    _refused(r, "refusing to replace it")
    assert snapshot(project.parent) == before


def test_convert_over_its_source_is_refused(shapes, tmp_path):
    import shutil

    src = tmp_path / "SRC"
    shutil.copytree(shapes, src)
    (src / "my-notes.txt").write_text("not a dataset file")
    before = snapshot(src)
    r = runner.invoke(app, ["convert", str(src), str(src), "--to", "coco", "--overwrite"])
    _refused(r, "input of this command")
    assert snapshot(src) == before
    # the annotation file as the source, its folder as the output: the same
    ann = src / "train" / "_annotations.coco.json"
    r = runner.invoke(app, ["convert", str(ann), str(src / "train"), "--to", "yolo", "--overwrite"])
    _refused(r, "input of this command")
    assert snapshot(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SRC"]


def test_overwrite_refuses_a_folder_visionloop_did_not_write(shapes, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    before = snapshot(mine)
    r = runner.invoke(app, ["convert", str(shapes), str(mine), "--to", "yolo", "--overwrite"])
    _refused(r, "not written by visionloop", MARKER)
    assert snapshot(mine) == before
    (mine / "visionloop.yaml").write_text("x")  # even with a (forged) marker, a project is never replaced
    (mine / MARKER).write_text("{}")
    r = runner.invoke(app, ["convert", str(shapes), str(mine), "--to", "yolo", "--overwrite"])
    _refused(r, "is a visionloop project")


def test_overwrite_replaces_its_own_output_and_marks_it(shapes, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["convert", str(shapes), str(out), "--to", "coco"]).exit_code == 0
    marker = json.loads((out / MARKER).read_text())
    assert (marker["tool"], marker["format"]) == ("visionloop", "coco")
    r = runner.invoke(app, ["convert", str(shapes), str(out), "--to", "coco"])
    _refused(r, "output exists and is not empty", "--overwrite")
    r = runner.invoke(app, ["convert", str(shapes), str(out), "--to", "yolo", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert (out / "data.yaml").is_file() and not (out / "_annotations.coco.json").exists()
    assert json.loads((out / MARKER).read_text())["format"] == "yolo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it
    assert sum(len(s.annotations) for s in read(out)) == sum(len(s.annotations) for s in read(shapes))


def test_a_failed_overwrite_leaves_the_old_output_intact(shapes, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["convert", str(shapes), str(out), "--to", "coco"]).exit_code == 0
    before = snapshot(out)
    # VOC cannot hold the polygons: --strict fails midway, after the new output was partly written
    r = runner.invoke(app, ["convert", str(shapes), str(out), "--to", "voc", "--strict", "--overwrite"])
    _refused(r, "would be")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupted_write_leaves_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt), atomic_output(out, format="coco") as tmp:
        (tmp / "half.json").write_text("{")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_empty_existing_folder_is_filled_in_place(shapes, tmp_path, monkeypatch):
    out = tmp_path / "empty"
    out.mkdir()
    inode = out.stat().st_ino
    monkeypatch.chdir(out)  # the current folder may be written when it is empty: it is not replaced
    assert runner.invoke(app, ["convert", str(shapes), ".", "--to", "coco"]).exit_code == 0
    assert out.stat().st_ino == inode and (out / "train" / "_annotations.coco.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_home_and_root_are_never_replaced(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / MARKER).write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(OutputError, match="home folder"), atomic_output(home, format="coco", overwrite=True):
        pass
    with pytest.raises(OutputError, match="root folder"), atomic_output(Path("/"), format="coco", overwrite=True):
        pass
    assert sorted(p.name for p in home.iterdir()) == [MARKER]


def test_version_export_zip_overwrite_needs_the_marker(tmp_path):
    from visionloop.formats.output import written_by_visionloop

    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("thesis.tex", "mine")
    assert not written_by_visionloop(z)
    with pytest.raises(OutputError, match="not written by visionloop"), \
            atomic_output(z, format="coco", overwrite=True, zip=True):
        pass
    z.unlink()
    with atomic_output(z, format="coco", zip=True) as tmp:
        (tmp / "x.json").write_text("{}")
    assert written_by_visionloop(z) and sorted(zipfile.ZipFile(z).namelist()) == [MARKER, "x.json"]
    with atomic_output(z, format="yolo", overwrite=True, zip=True) as tmp:
        (tmp / "y.txt").write_text("")
    assert sorted(zipfile.ZipFile(z).namelist()) == [MARKER, "y.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def _dead_token() -> str:
    import subprocess
    import sys

    from visionloop.core.owner import _host

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return f"{_host()}-{p.pid}-0badc0de"


def test_leftovers_of_a_killed_run_are_cleared_by_the_next(tmp_path):
    from visionloop.core.owner import owner_token

    out = tmp_path / "out"
    dead = _dead_token()
    (tmp_path / f".out.partial-{dead}").mkdir()
    (tmp_path / f".out.partial-{dead}" / "half.txt").write_text("x")
    live = tmp_path / f".out.partial-{owner_token()}"  # a run still going (this process): left alone
    live.mkdir()
    # a swap cut short after the old output was moved aside: it comes back in place
    (tmp_path / f".out.replaced-{dead}").mkdir()
    (tmp_path / f".out.replaced-{dead}" / MARKER).write_text("{}")
    (tmp_path / f".out.replaced-{dead}" / "old.json").write_text("{}")
    with pytest.raises(OutputError, match="output exists"):  # the old output is back: not overwritten silently
        with atomic_output(out, format="coco"):
            pass
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "old.json"]
    (tmp_path / f".out.partial-{dead}").mkdir()
    with atomic_output(out, format="coco", overwrite=True) as tmp:
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")) == sorted(
            [live.name, tmp.name])
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out"])

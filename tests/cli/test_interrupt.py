"""Ctrl-C and SIGTERM stop a command with exit 130 / 143 and one line saying what was kept (issue 11, item 4).

Each run is a real process whose one patched function (`tests/cli/blocking_run.py`) writes a file when first
called and then blocks, so the signal always lands mid-run, whatever the machine's speed; the signal goes to
the whole process group, as a terminal's Ctrl-C does.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.demo import synthetic
from visionloop.formats import write

HOOK = Path(__file__).with_name("blocking_run.py")
runner = CliRunner()


def interrupt(tmp_path: Path, sig: signal.Signals, target: str, *args: str) -> subprocess.CompletedProcess:
    started = tmp_path / f"started-{time.monotonic_ns()}"
    p = subprocess.Popen([sys.executable, str(HOOK), target, str(started), "--", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    while not started.exists():
        if p.poll() is not None:
            pytest.fail(f"ended before it started: {p.returncode} {p.communicate()}")
        time.sleep(0.02)
    os.killpg(p.pid, sig)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write(synthetic.shapes(6, folder=root / "render"), root / "coco", format="coco", classes=synthetic.classes())
    return root / "coco"


def _stats(proj):
    r = runner.invoke(app, ["stats", "-p", str(proj), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize(("sig", "code", "how"), [(signal.SIGINT, 130, "interrupted (Ctrl-C)"),
                                                  (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_import_interrupted_exits_with_the_signal_and_changes_nothing(shapes, tmp_path, sig, code, how):
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    r = interrupt(tmp_path, sig, "visionloop.formats.checks:probe", "import", str(shapes), "-p", str(proj))
    assert r.returncode == code, r
    assert r.stderr.strip() == f"{how}: the import was stopped; the project is unchanged (an import lands whole " \
                               "or not at all)"
    assert r.stdout == "" and "Traceback" not in r.stderr
    s = _stats(proj)
    assert (s["images"], s["annotations"], s["batches"]) == (0, 0, 0)


def test_convert_interrupted_leaves_no_output(shapes, tmp_path):
    out = tmp_path / "out"
    r = interrupt(tmp_path, signal.SIGINT, "visionloop.formats.yolo:place_image", "convert", str(shapes), str(out),
                  "--to", "yolo")
    assert r.returncode == 130 and "the conversion was stopped; nothing was written" in r.stderr, r
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_export_interrupted_keeps_the_output_it_would_replace(shapes, tmp_path):
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    assert runner.invoke(app, ["import", str(shapes), "-p", str(proj)]).exit_code == 0
    out = tmp_path / "out"
    assert runner.invoke(app, ["export", str(out), "-f", "coco", "-p", str(proj)]).exit_code == 0
    before = snapshot(out)
    r = interrupt(tmp_path, signal.SIGTERM, "visionloop.formats.yolo:place_image", "export", str(out), "-f", "yolo",
                  "--overwrite", "-p", str(proj))
    assert r.returncode == 143 and "terminated (SIGTERM): the export was stopped; nothing was written" in r.stderr, r
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_version_create_interrupted_keeps_its_work_and_resumes(shapes, tmp_path):
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    assert runner.invoke(app, ["import", str(shapes), "-p", str(proj)]).exit_code == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text("schema: 1\nsplit: {ratios: {train: 0.5, valid: 0.5, test: 0}}\n"
                      "preprocess:\n  resize: {width: 32, height: 32}\n")
    r = interrupt(tmp_path, signal.SIGINT, "visionloop.versions.generate:_Writer.commit", "version", "create",
                  "--recipe", str(recipe), "-p", str(proj), "--workers", "0")
    assert r.returncode == 130, r
    assert r.stderr.strip() == ("interrupted (Ctrl-C): version generation was stopped (6 of 6 images committed by "
                                "this run, kept); run the same command again to resume")
    listed = json.loads(runner.invoke(app, ["version", "list", "-p", str(proj), "--json"]).stdout)
    assert [(v["status"], v["progress"]) for v in listed] == [("generating", {"done": 6, "total": 6})]
    r = runner.invoke(app, ["version", "create", "--recipe", str(recipe), "-p", str(proj), "--workers", "0",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert (json.loads(r.stdout)["status"], json.loads(r.stdout)["counts"]["images"]) == ("ready", 6)

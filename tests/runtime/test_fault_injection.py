"""Fault injection: import, export, convert and version create are killed at random points (SIGKILL or SIGINT),
20 times each. After each kill: the project opens and passes SQLite's integrity check, no staged blob files
or worker processes are left, and re-running the command gives exactly what an uninterrupted run gives
(totals, version digest, output files), with no partial output beside it (issue 11)."""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from visionloop.store import Store

from .procs import alive, descendants, gone_within

RUNS = 20
RECIPE = "schema: 1\nseed: 3\npreprocess: {resize: {width: 96, height: 72}}\naugment: {multiplier: 3, flip: {horizontal: true}}\n"


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "visionloop.cli.main", *args]


def _run(args: list[str]) -> float:
    t = time.monotonic()
    r = subprocess.run(_cli(args), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return time.monotonic() - t


def _kill_at(args: list[str], delay: float, sig: int) -> set[int]:
    """Start the command, signal it after `delay` s; the worker processes it had then."""
    proc = subprocess.Popen(_cli(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= {d for d in descendants(proc.pid) if alive(d)}
        time.sleep(0.01)
    if proc.poll() is None:
        workers |= {d for d in descendants(proc.pid) if alive(d)}
        proc.send_signal(sig)
    proc.wait(timeout=120)
    return workers


def _check_store(root: Path) -> None:
    with Store.open(root) as store:  # opening clears what killed imports staged
        with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":  # PostgreSQL (VISIONLOOP_TEST_DATABASE) checks keys as it writes
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
                assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    staging = root / "blobs" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _version_digest(root: Path) -> tuple:
    with Store.open(root) as store, store.engine.connect() as conn:
        return tuple(conn.execute(text("SELECT status, content_digest FROM version ORDER BY id")).all())


def _counts(root: Path) -> tuple[int, int, int]:
    with Store.open(root) as store:
        s = store.stats()
        return s.images, s.annotations, s.batches


@pytest.fixture(scope="module")
def data(voc_subset, tmp_path_factory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("fault") / "voc", range(1, 17))


def _kills(seed: int, duration: float):
    rng = random.Random(seed)
    for k in range(RUNS):
        yield k, rng.uniform(0.05, duration * 1.1), (signal.SIGKILL if k % 2 == 0 else signal.SIGINT)


def test_import(data, tmp_path):
    ref = tmp_path / "ref"
    Store.init(ref).close()
    duration = _run(["import", str(data), "-p", str(ref)])
    want = _counts(ref)
    for k, delay, sig in _kills(1, duration):
        root = tmp_path / f"p{k}"
        Store.init(root).close()
        workers = _kill_at(["import", str(data), "-p", str(root)], delay, sig)
        assert gone_within(workers, 2.0) == []
        _check_store(root)
        _run(["import", str(data), "-p", str(root)])
        assert _counts(root) == want, (k, delay, sig)
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def project(data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fault-project") / "p"
    Store.init(root).close()
    _run(["import", str(data), "-p", str(root)])
    return root


def test_version_create(project, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    ref = tmp_path / "ref"
    shutil.copytree(project, ref)
    duration = _run(["version", "create", "-r", str(recipe), "-p", str(ref), "--workers", "2"])
    want = _version_digest(ref)
    assert want[0][0] == "ready"
    for k, delay, sig in _kills(2, duration):
        root = tmp_path / f"p{k}"
        shutil.copytree(project, root)
        workers = _kill_at(["version", "create", "-r", str(recipe), "-p", str(root), "--workers", "2"], delay, sig)
        assert gone_within(workers, 2.0) == []
        _check_store(root)
        _run(["version", "create", "-r", str(recipe), "-p", str(root), "--workers", "2"])  # resumes
        assert _version_digest(root) == want, (k, delay, sig)
        shutil.rmtree(root)


@pytest.mark.parametrize("command", ["export", "convert"])
def test_export_and_convert(command, project, data, tmp_path):
    def args(out: Path) -> list[str]:
        if command == "export":
            return ["export", str(out), "-f", "coco", "-p", str(project)]
        return ["convert", str(data), str(out), "--to", "yolo"]

    ref = tmp_path / "ref"
    duration = _run(args(ref))
    want = _tree(ref)
    for k, delay, sig in _kills(3 if command == "export" else 4, duration):
        out = tmp_path / f"out{k}"
        workers = _kill_at(args(out), delay, sig)
        assert gone_within(workers, 2.0) == []
        if out.exists():  # the run got to the end before the signal: a whole output, never a partial one
            assert _tree(out) == want
            shutil.rmtree(out)
        _run(args(out))
        assert _tree(out) == want, (k, delay, sig)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f".out{k}.")) == []
        if command == "export":
            _check_store(project)

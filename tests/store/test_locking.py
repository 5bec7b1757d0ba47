"""A second writer waits for the first (with a notice naming it) instead of a "database is locked" traceback,
and past the configurable limit fails with one line naming the process that holds the project (issue 11, 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from visionloop.store import Store

pytestmark = pytest.mark.skipif(bool(os.environ.get("VISIONLOOP_TEST_DATABASE")),
                                reason="SQLite's lock; PostgreSQL's is in tests/store/test_team_mode.py")

HOLD = """
import sqlite3, sys, time, pathlib
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
release = pathlib.Path(sys.argv[2])
while not release.exists():
    time.sleep(0.05)
db.execute("COMMIT")
"""


@pytest.fixture()
def held(tmp_path):
    root = tmp_path / "p"
    Store.init(root).close()
    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root / "visionloop.db"), str(release)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield root, release, holder
    release.touch()
    holder.wait(timeout=30)


def _visionloop(args: list[str], timeout: str) -> subprocess.Popen:
    env = {**os.environ, "VISIONLOOP_LOCK_TIMEOUT": timeout}
    return subprocess.Popen([sys.executable, "-m", "visionloop.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_a_writer_waits_with_a_notice_then_lands(held, raccoon, tmp_path):
    root, release, holder = held
    proc = _visionloop(["import", str(raccoon), "-p", str(root)], "120")
    err = ""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + 90
    while "waiting for another visionloop process" not in err and time.monotonic() < deadline:
        try:
            err += os.read(fd, 65536).decode(errors="replace")
        except BlockingIOError:
            pass
        assert proc.poll() is None, err
        time.sleep(0.05)
    assert f"pid {holder.pid}" in err
    release.touch()
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 0, err + rest
    assert "200 images added" in out


def test_past_the_limit_one_line_names_the_holder(held, raccoon):
    root, _, holder = held
    proc = _visionloop(["import", str(raccoon), "-p", str(root)], "0.5")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and f"held by pid {holder.pid}" in lines[0]
    assert "VISIONLOOP_LOCK_TIMEOUT" in lines[0] and "Traceback" not in err


def test_staging_left_by_a_killed_import_is_removed_on_open(tmp_path):
    root = tmp_path / "p"
    Store.init(root).close()
    staging = root / "blobs" / ".staging"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = __import__("visionloop.core.owner", fromlist=["_host"])._host()
    (staging / f"{host}-{dead.pid}-0123abcd").mkdir(parents=True)
    (staging / f"{host}-{dead.pid}-0123abcd" / ("a" * 64)).write_bytes(b"x")
    (staging / f"{host}-{os.getpid()}-89abcdef").mkdir()  # a live import's: kept
    (staging / "elsewhere-123-00000000").mkdir()  # another host's: kept
    Store.open(root).close()
    assert sorted(p.name for p in staging.iterdir()) == sorted([f"{host}-{os.getpid()}-89abcdef",
                                                               "elsewhere-123-00000000"])


def test_cli_main_module_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "visionloop.cli.main", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("visionloop ")


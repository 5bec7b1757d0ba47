"""Killing `version create`, `convert` (in parts) or `health` with SIGKILL leaves no worker process alive after
2 s: every worker watches its parent (runtime.pool.watch_parent)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from visionloop.ingest import import_dataset
from visionloop.store import Store

from .procs import gone_within, wait_for_descendants

#: run the CLI with a module constant lowered first, so that a small dataset takes the parallel path
CLI = ("import sys, importlib; m, k, v = sys.argv[1:4]; "
       "m == '-' or setattr(importlib.import_module(m), k, int(v)); "
       "sys.argv = ['visionloop'] + sys.argv[4:]; from visionloop.cli.main import main; main()")


def _kill_when_workers_run(args: list[str], n: int, cwd: Path) -> tuple[set[int], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        workers = wait_for_descendants(proc.pid, n)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return workers, gone_within(workers, 2.0)


@pytest.fixture(scope="module")
def project(raccoon, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("orphans") / "p"
    with Store.init(root) as store:
        import_dataset(store, raccoon)
    return root


def test_version_create(project, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("schema: 1\naugment: {multiplier: 6, flip: {horizontal: true}, rotate: {degrees: 10}}\n")
    workers, left = _kill_when_workers_run(
        ["-", "-", "-", "version", "create", "-r", str(recipe), "-p", str(project), "--workers", "2"], 2, tmp_path)
    assert len(workers) >= 2 and left == []


def test_health(project, tmp_path):
    workers, left = _kill_when_workers_run(
        ["visionloop.health.imagehash", "POOL_MIN", "1", "health", "-p", str(project)], 2, tmp_path)
    assert len(workers) >= 2 and left == []


def test_convert_in_parts(tmp_path):
    n = 20000
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, n + 1)],
           "annotations": [{"id": k, "image_id": 1 + k // 10, "category_id": 1 + k % 3, "bbox": [10, 20, 30, 40],
                            "area": 1200, "iscrowd": 0} for k in range(10 * n)],
           "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}
    src = tmp_path / "ann.json"
    src.write_bytes(orjson.dumps(doc))
    workers, left = _kill_when_workers_run(
        ["visionloop.formats.coco", "PART_MIN_BYTES", "0", "convert", str(src), str(tmp_path / "out"),
         "--to", "yolo", "--images", "none", "--workers", "2"], 2, tmp_path)
    assert len(workers) >= 2 and left == []

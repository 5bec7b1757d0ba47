"""Structure from motion (pycolmap) on the first eight lund photos, SIFT on 1024 px images, one thread."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from visionloop.cli.main import app

runner = CliRunner()
NAMES = [f"{i:02d}.jpg" for i in range(1, 9)]


def test_sfm_registers_and_georegisters(lund, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for n in NAMES:
        shutil.copy(lund / "images" / n, images / n)
    out = tmp_path / "sfm"
    r = runner.invoke(app, ["geo", "sfm", "--images", str(images), "--out", str(out), "--max-image-size", "1024",
                            "--max-features", "4000", "--threads", "1", "--neighbors", "7", "--matching", "exhaustive", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    # 7 of the 8 (SIFT at 1 024 px, 4 000 features, one thread, seed 0); the whole of lund: bench/sfm.py
    assert res["registered"] == 7 and len(res["unregistered"]) == 1, res
    assert res["mean_reprojection_px"] < 1.0
    assert res["georegistered"] and res["gps_error_max_m"] < 15
    cams = json.loads((out / "cameras.geojson").read_text())
    assert sorted(f["properties"]["name"] for f in cams["features"]) == sorted(set(NAMES) - set(res["unregistered"]))
    assert {p.name for p in (out / "model").iterdir()} >= {"cameras.txt", "images.txt", "points3D.txt"}
    points = sum(1 for line in (out / "model" / "points3D.txt").read_text().splitlines() if not line.startswith("#"))
    assert points == res["points3d"] > 100
    assert (out / "points.ply").read_bytes().startswith(b"ply")


def test_sfm_never_replaces_a_folder_it_did_not_write(lund, tmp_path):
    """--out naming the photos' own folder, or a folder of the user's, is refused and left byte for byte."""
    images = tmp_path / "images"
    images.mkdir()
    for n in NAMES[:2]:
        shutil.copy(lund / "images" / n, images / n)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    for out, why in ((images, "is an input of this command"), (mine, "was not written by visionloop")):
        before = sorted(p.name for p in out.iterdir())
        r = runner.invoke(app, ["geo", "sfm", "--images", str(images), "--out", str(out), "--threads", "1"])
        assert r.exit_code == 1 and why in str(r.exception), r.output
        assert sorted(p.name for p in out.iterdir()) == before
    assert (mine / "todo.txt").read_text() == "keep me"
    assert all((images / n).stat().st_size == (lund / "images" / n).stat().st_size for n in NAMES[:2])

"""GPS points, DOP, sidecars, sequences, GeoJSON and the HTML map, on the lund street photos."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.core.errors import VisionLoopError
from visionloop.geo.track import apply_sidecar, distance_m, geojson, map_html, read_folder, sequences, to_enu

runner = CliRunner()


def _exif_gps(path):
    """Independent reading with PIL: (lat, lon, alt, dop) from the GPS IFD."""
    ifd = Image.open(path).getexif().get_ifd(0x8825)
    d = lambda v: float(v[0]) + float(v[1]) / 60 + float(v[2]) / 3600  # noqa: E731
    lat = d(ifd[2]) * (-1 if ifd[1] == "S" else 1)
    lon = d(ifd[4]) * (-1 if ifd[3] == "W" else 1)
    return lat, lon, float(ifd[6]), float(ifd[11])


def test_lund_points_match_exif_and_form_one_sequence(lund):
    points = read_folder(lund / "images")
    assert [p.name for p in points] == [f"{i:02d}.jpg" for i in range(1, 30)]
    for p in points:
        lat, lon, alt, dop = _exif_gps(lund / "images" / p.name)
        assert (p.lat, p.lon, p.alt, p.dop) == pytest.approx((lat, lon, alt, dop), abs=1e-12)
        assert p.source == "exif" and p.time is None and p.heading is None
    assert points[0].lat == pytest.approx(55 + 41 / 60 + 53.4 / 3600)
    assert points[0].dop == 10.0
    seqs = sequences(points)
    assert [len(s) for s in seqs] == [29]
    # a 5 m step limit cuts the track wherever two photos are more than 5 m apart
    gaps = sum(distance_m(a, b) > 5 for a, b in zip(points, points[1:], strict=False))
    assert len(sequences(points, max_step_m=5)) == gaps + 1 and gaps > 0


def test_geojson_points_and_line(lund):
    points = read_folder(lund / "images")
    fc = geojson(points)
    pts = [f for f in fc["features"] if f["geometry"]["type"] == "Point"]
    lines = [f for f in fc["features"] if f["geometry"]["type"] == "LineString"]
    assert len(pts) == 29 and len(lines) == 1
    lat, lon, alt, dop = _exif_gps(lund / "images" / "17.jpg")
    p17 = next(f for f in pts if f["properties"]["name"] == "17.jpg")
    assert p17["geometry"]["coordinates"] == pytest.approx([lon, lat, alt])
    assert p17["properties"]["sequence"] == 0 and p17["properties"]["dop"] == dop == 5.0
    assert len(lines[0]["geometry"]["coordinates"]) == 29
    assert lines[0]["properties"]["length_m"] == pytest.approx(
        sum(distance_m(a, b) for a, b in zip(points, points[1:], strict=False)), abs=0.01)
    html = map_html(fc)
    assert "http://" not in html and "https://" not in html and "<canvas" in html
    assert json.dumps(fc, separators=(",", ":")) in html


def test_enu_round_trip():
    from visionloop.geo.track import from_enu

    origin = (55.698, 13.195, 37.0)
    e, n, u = to_enu(55.699, 13.196, 40.0, origin)
    assert n == pytest.approx(111.3, abs=0.5) and e == pytest.approx(62.8, abs=0.5)
    assert from_enu(e, n, u, origin) == pytest.approx((55.699, 13.196, 40.0), abs=1e-9)


def _stripped(lund, tmp_path, names):
    """Copies of lund photos with their EXIF removed (pixels re-encoded), a DateTimeOriginal on some."""
    folder = tmp_path / "noexif"
    folder.mkdir()
    for i, n in enumerate(names):
        im = Image.open(lund / "images" / n)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = f"2024:05:01 10:00:{i * 10:02d}"
        im.save(folder / n, exif=exif.tobytes())
    return folder


def test_sidecar_csv_and_gpx(lund, tmp_path):
    folder = _stripped(lund, tmp_path, ["01.jpg", "02.jpg", "03.jpg"])
    points = read_folder(folder)
    assert [p.located for p in points] == [False] * 3
    assert [p.time for p in points] == ["2024-05-01T10:00:00", "2024-05-01T10:00:10", "2024-05-01T10:00:20"]
    csv = tmp_path / "gps.csv"
    csv.write_text("name,lat,lon,alt,dop\n01.jpg,55.1,13.1,30,4\n03.jpg,55.3,13.3,,\n")
    filled = apply_sidecar(points, csv)
    assert [(p.lat, p.lon, p.alt, p.dop, p.source) for p in filled] == [
        (55.1, 13.1, 30.0, 4.0, "sidecar"), (None, None, None, None, "none"), (55.3, 13.3, None, None, "sidecar")]
    gpx = tmp_path / "track.gpx"
    gpx.write_text('<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                   '<trkpt lat="55.0" lon="13.0"><ele>10</ele><time>2024-05-01T10:00:00Z</time></trkpt>'
                   '<trkpt lat="55.002" lon="13.004"><ele>20</ele><time>2024-05-01T10:00:20Z</time></trkpt>'
                   '</trkseg></trk></gpx>')
    filled = apply_sidecar(points, gpx)
    assert [v for p in filled for v in (p.lat, p.lon, p.alt)] == pytest.approx(
        [55.0, 13.0, 10.0, 55.001, 13.002, 15.0, 55.002, 13.004, 20.0])
    # photos 10 s and ~160 m apart: cut by the default 50 m step; with no step limit a 60 s gap keeps one
    # sequence, a 5 s gap cuts every photo
    assert [len(s) for s in sequences(filled)] == [1, 1, 1]
    assert [len(s) for s in sequences(filled, max_step_m=1e6)] == [3]
    assert [len(s) for s in sequences(filled, max_gap_s=5, max_step_m=1e6)] == [1, 1, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,lat\n")
    with pytest.raises(VisionLoopError, match="lacks column"):
        apply_sidecar(points, bad)


def test_cli_on_a_project(lund, tmp_path):
    proj = tmp_path / "p"
    assert runner.invoke(app, ["init", str(proj)]).exit_code == 0
    images = tmp_path / "lund"
    shutil.copytree(lund / "images", images / "street")  # a classification-folders layout: one class
    r = runner.invoke(app, ["import", str(images), "-p", str(proj)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["geo", "stats", "-p", str(proj), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["images"], data["located"], data["with_dop"]) == (29, 29, 29)
    assert [(s["images"], s["first"], s["last"]) for s in data["sequences"]] == [(29, "street/01.jpg", "street/29.jpg")]
    out = tmp_path / "lund.geojson"
    r = runner.invoke(app, ["geo", "geojson", str(out), "-p", str(proj), "--json"])
    assert json.loads(r.output) == {"out": str(out), "points": 29, "lines": 1}
    html = tmp_path / "lund.html"
    r = runner.invoke(app, ["map", str(html), "-p", str(proj), "--json"])
    assert json.loads(r.output)["points"] == 29 and html.read_text().startswith("<!doctype html>")

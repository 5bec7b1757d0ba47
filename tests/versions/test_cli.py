"""`visionloop version …` through Typer's CliRunner (the sub-app alone, as cli/main.py will mount it)."""

import json

import cv2
from typer.testing import CliRunner

from visionloop.cli.version import app

from .conftest import new_project, raccoon_subset

runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_list_show_diff_preview_export(raccoon, tmp_path):
    store = new_project(tmp_path / "p", raccoon_subset(raccoon, tmp_path / "voc", ["raccoon-1", "raccoon-2",
                                                                                    "raccoon-3", "raccoon-4"]))
    store.close()
    proj = str(tmp_path / "p")
    (tmp_path / "a.yaml").write_text("schema: 1\nsplit: {ratios: {train: 0.5, valid: 0.5, test: 0}}\n"
                                     "preprocess:\n  resize: {width: 96, height: 64}\n"
                                     "augment: {multiplier: 2, flip: {horizontal: true}}\n")
    (tmp_path / "b.yaml").write_text("schema: 1\nsplit: {ratios: {train: 0.5, valid: 0.5, test: 0}}\n"
                                     "preprocess:\n  resize: {width: 96, height: 64}\n")
    v1 = _json(runner.invoke(app, ["create", "--recipe", str(tmp_path / "a.yaml"), "-p", proj, "--json",
                                   "--workers", "0"]))
    assert (v1["name"], v1["status"], v1["counts"]["images"]) == ("v1", "ready", 6)  # 2 train × 2 + 2 valid
    v2 = _json(runner.invoke(app, ["create", "-r", str(tmp_path / "b.yaml"), "--name", "small", "--parent", "v1",
                                   "-p", proj, "--json", "--workers", "0"]))
    assert (v2["name"], v2["parent"], v2["counts"]["images"]) == ("small", "v1", 4)
    listed = _json(runner.invoke(app, ["list", "-p", proj, "--json"]))
    assert [v["name"] for v in listed] == ["v1", "small"]
    shown = _json(runner.invoke(app, ["show", "latest", "-p", proj, "--json"]))
    assert shown["name"] == "small" and shown["recipe"]["preprocess"]["resize"]["width"] == 96
    d = _json(runner.invoke(app, ["diff", "v1", "small", "-p", proj, "--json"]))
    assert d["images"]["removed"] == 2 and d["images"]["added"] == 0
    assert [c["field"] for c in d["recipe"]] == ["augment"]
    p = _json(runner.invoke(app, ["preview", "v1", "--out", str(tmp_path / "g.png"), "-n", "4", "-p", proj,
                                  "--json"]))
    assert cv2.imread(p["path"]).shape == (512, 512, 3)
    e = _json(runner.invoke(app, ["export", "v1", str(tmp_path / "y"), "--format", "yolo", "-p", proj, "--json"]))
    assert e["images"] == 6 and (tmp_path / "y" / "data.yaml").is_file()
    z = _json(runner.invoke(app, ["export", "small", str(tmp_path / "c"), "-f", "coco", "--zip", "-p", proj,
                                  "--json"]))
    assert z["path"].endswith("c.zip") and (tmp_path / "c.zip").is_file()
    text = runner.invoke(app, ["list", "-p", proj])
    assert text.exit_code == 0 and "small" in text.stdout
    human = runner.invoke(app, ["diff", "v1", "small", "-p", proj])
    assert "2 removed" in human.stdout


def test_bad_recipe_is_a_user_error(tmp_path, raccoon):
    from visionloop.store import Store
    from visionloop.versions import RecipeError

    Store.init(tmp_path / "p").close()
    (tmp_path / "r.yaml").write_text("schema: 1\naugment:\n  rotate: {degrees: -3}\n")
    result = runner.invoke(app, ["create", "-r", str(tmp_path / "r.yaml"), "-p", str(tmp_path / "p")])
    assert result.exit_code != 0
    assert isinstance(result.exception, RecipeError)  # cli/main.py turns this into one red line
    assert "augment.rotate.degrees, line 3" in str(result.exception)

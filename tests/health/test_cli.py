"""`visionloop health` and `visionloop fix` through Typer's CliRunner, on a tiny app that registers them
exactly as cli/main.py will, plus the HTML report."""

from __future__ import annotations

import base64
import json
import re

import typer
from typer.testing import CliRunner

from visionloop.cli import health as health_cmds

app = typer.Typer()
app.command("health")(health_cmds.health)
app.command("fix")(health_cmds.fix)
runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_health_json_and_tables_on_raccoon(raccoon_project):
    doc = _json(runner.invoke(app, ["health", "-p", str(raccoon_project), "--json"]))
    assert (doc["counts"]["images"], doc["counts"]["annotations"], doc["counts"]["classes"]) == (200, 217, 1)
    assert doc["duplicates"]["exact"]["pairs"] == 4
    text = runner.invoke(app, ["health", "-p", str(raccoon_project)])
    assert text.exit_code == 0, text.output
    assert "200 images (196 distinct files), 217 annotations, 1 classes" in text.stdout
    assert "conflicting_duplicates" in text.stdout and "only class" in text.stdout


def test_health_html_is_self_contained(defective, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["health", "-p", str(defective.project), "--html", str(out), "--json"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing loaded from elsewhere
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) == 6  # balance, dimensions, objects, sides, relative, heatmaps
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    thumbs = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert len(thumbs) == 2 * (5 + 1 + 16)  # every pair (5 exact, 1 same-pixels, 16 near), side by side
    assert "copy-raccoon-11.jpg" in page and "different splits" in page and "class_name_variants" in page


def test_fix_cli_dry_run_fix_and_undo(defective_copy):
    p = str(defective_copy)
    dry = _json(runner.invoke(app, ["fix", "-p", p, "--dry-run", "--json"]))
    assert dry["batch"] is None and dry["dry_run"] and dry["counts"]["annotations_clipped"] == 5
    text = runner.invoke(app, ["fix", "-p", p, "--dry-run"])
    assert "Dry run, nothing changed" in text.stdout and "clip (" in text.stdout
    done = runner.invoke(app, ["fix", "-p", p])
    assert done.exit_code == 0, done.output
    batch = int(re.search(r"Fixed as batch (\d+)", done.stdout).group(1))
    assert f"visionloop fix --undo {batch}" in done.stdout
    assert _json(runner.invoke(app, ["health", "-p", p, "--json"]))["counts"]["classes"] == 1
    undone = runner.invoke(app, ["fix", "-p", p, "--undo", str(batch)])
    assert undone.exit_code == 0 and f"Undid fix batch {batch}" in undone.stdout
    assert _json(runner.invoke(app, ["health", "-p", p, "--json"]))["counts"]["classes"] == 2
    again = runner.invoke(app, ["fix", "-p", p, "--undo", str(batch)])
    assert again.exit_code != 0 and "already undone" in str(again.exception)

"""`visionloop evaluate` on plain COCO files, with no project."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from visionloop.cli.main import app

from .test_coco import pycoco
from .test_errors import hand_made

runner = CliRunner()


def _files(tmp_path, gt, preds):
    g, p = tmp_path / "instances.json", tmp_path / "results.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(preds))
    return str(g), str(p)


def test_evaluate_json_and_plots(tmp_path, raccoon_gt, raccoon_preds):
    g, p = _files(tmp_path, raccoon_gt, raccoon_preds["segm"])
    res = runner.invoke(app, ["evaluate", "--predictions", p, "--ground-truth", g, "--plots",
                              str(tmp_path / "plots"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ev = pycoco(raccoon_gt, raccoon_preds["segm"], "segm")
    assert out["metrics"]["iou_type"] == "segm"
    assert abs(out["metrics"]["map"] - ev.stats[0]) < 1e-9 and abs(out["metrics"]["map50"] - ev.stats[1]) < 1e-9
    assert [c["name"] for c in out["metrics"]["per_class"]] == ["raccoon", "dog", "cat"]
    assert out["confusion"]["classes"] == ["raccoon", "dog", "cat", "background"]
    assert set(out["tide"]["counts"]) == {"classification", "localization", "both", "duplicate", "background",
                                          "missed"}
    assert abs(out["tide"]["base"] - ev.stats[1]) < 1e-9  # dAP baseline: mAP50 of the masks
    assert len(out["events"]) == out["tide"]["false_positives"] + out["tide"]["false_negatives"]
    for name in ("pr_curve.png", "confusion_matrix.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_tables(tmp_path):
    gt, preds = hand_made()
    g, p = _files(tmp_path, gt, preds)
    res = runner.invoke(app, ["evaluate", "--predictions", p, "--ground-truth", g])
    assert res.exit_code == 0, res.output
    for words in ("COCO metrics", "mAP@.50", "0.1947", "Per class", "localization", "missed", "background"):
        assert words in res.stdout


def test_bad_prediction_is_one_line_and_exit_1(tmp_path):
    gt, preds = hand_made()
    preds[4]["image_id"] = 404
    g, p = _files(tmp_path, gt, preds)
    proc = subprocess.run([sys.executable, "-m", "visionloop.cli.main", "evaluate", "--predictions", p,
                           "--ground-truth", g], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{p} ([4]): image_id 404 is not an image of the ground truth" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1

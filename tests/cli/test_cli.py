"""The `visionloop` command, run in-process with Typer's CliRunner and once as a real process."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from visionloop.cli.main import app

runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_init_import_stats_export(tmp_path, raccoon):
    proj = tmp_path / "p"
    assert _json(runner.invoke(app, ["init", str(proj), "--json"]))["project"] == str(proj)
    rep = _json(runner.invoke(app, ["import", str(raccoon), "-p", str(proj), "--json"]))
    assert (rep["format"], rep["images_added"], rep["annotations_added"]) == ("voc", 200, 217)
    stats = _json(runner.invoke(app, ["stats", "-p", str(proj), "--json"]))
    assert (stats["images"], stats["annotations"], stats["classes"]) == (200, 217, 1)
    out = _json(runner.invoke(app, ["export", str(tmp_path / "y"), "-f", "yolo", "-p", str(proj), "--json"]))
    assert out["images"] == 200 and out["annotations"] == {"box": 217}
    assert (tmp_path / "y" / "data.yaml").is_file()
    text = runner.invoke(app, ["stats", "-p", str(proj)])
    assert "200 images" in text.stdout and "raccoon" in text.stdout


def test_convert_needs_no_project_and_formats_lists(tmp_path, raccoon):
    out = _json(runner.invoke(app, ["convert", str(raccoon), str(tmp_path / "c"), "--to", "coco", "--json"]))
    assert out["images"] == 200 and out["annotations"] == {"box": 217}
    doc = json.loads((tmp_path / "c" / "_annotations.coco.json").read_text())
    assert len(doc["images"]) == 200 and len(doc["annotations"]) == 217
    assert len({a["id"] for a in doc["annotations"]}) == 217
    names = {f["name"] for f in _json(runner.invoke(app, ["formats", "--json"]))}
    assert {"coco", "voc", "yolo", "darknet", "folders"} <= names


def test_user_error_is_one_line_and_exit_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "visionloop.cli.main", "stats", "-p", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "not a visionloop project" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_demo_runs_every_stage(tmp_path):
    steps = _json(runner.invoke(app, ["demo", "--workdir", str(tmp_path), "--images", "16", "--train-seconds", "0",
                                      "--json"]))
    names = [s["step"] for s in steps]
    assert names[:11] == ["render", "init", "import", "re-import", "stats", "health", "export coco", "export yolo",
                          "export voc", "convert", "version"]
    assert names[11:] == ["gallery", "train", "export", "evaluate", "predict", "serve", "select"]
    assert " ".join(d["text"] for d in steps[11]["prediction"]["detections"]) == "LOT 4711 EXP 2027"
    train, export, evaluate, predict = steps[12:16]
    assert train["epochs"] == 1 and train["stopped"] == "time"  # one epoch, then the budget (0 s) stops it
    assert train["model"]["status"] == "ready" and train["model"]["classes"] == ["square", "triangle", "disc"]
    assert export["format"] == "onnx" and max(export["parity"]["max_abs_diff"].values()) < 0.05
    assert [p["file_name"] for p in predict["predictions"]] == ["shape_0013.jpg", "shape_0014.jpg", "shape_0015.jpg"]
    # evaluated on the version's held-out split; the confusion's rows hold every ground-truth object once
    assert evaluate["model"] == "shapes-detector" and evaluate["split"] in ("test", "valid") and evaluate["images"] > 0
    matrix = evaluate["confusion"]["matrix"]
    assert sum(map(sum, matrix[:-1])) == evaluate["tide"]["true_positives"] + evaluate["tide"]["false_negatives"]
    served = steps[16]["response"]
    assert served["model"]["model"] == "shapes-detector" and served["images"][0]["name"] == "shape_0015.jpg"
    # the server ran the same model on the same image as the local predictor
    local = [(d["class"], round(d["score"], 3)) for d in predict["predictions"][2]["detections"]]
    remote = [(p["class"], round(p["confidence"], 3)) for p in served["images"][0]["predictions"]]
    assert remote == local
    imp = steps[2]
    assert imp["images_added"] == 16
    assert steps[3]["images_unchanged"] == 16
    assert steps[6]["reimport"]["annotations_added"] == imp["annotations_added"]
    assert steps[5]["fix_dry_run"] == {} or sum(steps[5]["fix_dry_run"].values()) == 0  # synthetic data is clean
    select = steps[17]
    assert select["tag"] == "demo-relabel" and select["candidates"] == 16 and len(select["picked"]) == 5
    scores = [p["score"] for p in select["picked"]]
    assert scores == sorted(scores, reverse=True)  # most uncertain first


def test_root_version_flag_and_health_dataset_version_do_not_clash():
    import visionloop

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"visionloop {visionloop.__version__}"
    r = CliRunner().invoke(app, ["health", "--help"])
    assert "--dataset-version" in r.output and "--version" not in r.output.replace("--dataset-version", "")

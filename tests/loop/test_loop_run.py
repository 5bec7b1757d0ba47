"""`visionloop loop run` against a REAL Label Studio (the fixture of test_labelstudio.py): select 3 unlabelled
raccoon photos, send them, wait (no labels yet), label them through Label Studio's API, then continue: pull →
version (the model's recipe) → train (its hyper-parameters) → compare. The run is interrupted once after the
version (a failing train) and continues from there."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from typer.testing import CliRunner

from visionloop.cli.loop import stages
from visionloop.cli.main import app
from visionloop.core.geometry import Box
from visionloop.core.sample import Source
from visionloop.ingest import import_dataset
from visionloop.loop.run import continue_run, load_run
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.versions import create_version, version_samples

from .test_labelstudio import EMAIL, RACCOON, SPLIT, TOKEN, label_studio  # noqa: F401 (the server fixture)

LABELLED = [f"raccoon-{i}" for i in range(1, 13)]
UNLABELLED = [f"raccoon-{i}" for i in range(50, 56)]


@pytest.fixture
def project(tmp_path):
    from visionloop.train import train

    voc = tmp_path / "voc"
    (voc / "images").mkdir(parents=True)
    (voc / "annotations").mkdir()
    for n in LABELLED:
        shutil.copy(RACCOON / "images" / f"{n}.jpg", voc / "images")
        shutil.copy(RACCOON / "annotations" / f"{n}.xml", voc / "annotations")
    new = tmp_path / "new"
    new.mkdir()
    for n in UNLABELLED:
        shutil.copy(RACCOON / "images" / f"{n}.jpg", new)
    store = Store.init(tmp_path / "project")
    import_dataset(store, voc, format="voc")
    import_dataset(store, new, format="unlabelled")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det")
    yield store, version
    store.close()


def _cli(*args: str) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"], env={"LABEL_STUDIO_API_KEY": TOKEN})
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_loop_run_through_label_studio(label_studio, project):  # noqa: F811
    store, version = project
    root = str(store.root)
    start = _cli("loop", "run", "--model", "det", "--label-studio", label_studio, "--budget", "3", "--strategy",
                 "entropy", "-p", root)
    run_id = start["run"]
    assert (start["step"], start["done_now"], start["images"], start["tasks"]) == ("sent", ["selected", "sent"], 3, 3)
    assert start["waiting"].startswith("labels")

    # ---- no labels yet: continuing pulls nothing and waits
    again = _cli("loop", "run", "--continue", "-p", root)
    assert (again["run"], again["step"], again["done_now"]) == (run_id, "sent", [])
    assert "none of the 3 tasks" in again["waiting"]

    # ---- the labeller draws one box on each task (its position from the task's id, so each differs)
    ls = httpx.Client(base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    tasks = ls.get(f"/api/projects/{start['ls_project']}/export",
                   params={"exportType": "JSON", "download_all_tasks": "true"}).json()
    assert len(tasks) == 3
    drawn = {}
    for k, t in enumerate(tasks):
        row = next(im for im in store.samples() if im.image.sha256 == t["data"]["vl_sha256"])
        W, H = row.image.width, row.image.height
        x0, y0 = 10.0 + 5 * k, 20.0
        drawn[row.image.file_name] = (x0, y0, x0 + 100, y0 + 80)
        a = ls.post(f"/api/tasks/{t['id']}/annotations", json={"lead_time": 1.0, "result": [
            {"id": f"r{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": W, "original_height": H, "image_rotation": 0,
             "value": {"x": x0 / W * 100, "y": y0 / H * 100, "width": 100 / W * 100, "height": 80 / H * 100,
                       "rotation": 0, "rectanglelabels": ["raccoon"]}}]})
        assert a.status_code == 201, a.text

    # ---- an interrupted continue: pulled and versioned, then the train fails
    def broken_train(*a, **kw):
        raise KeyboardInterrupt

    broken = stages()
    broken.train = broken_train
    with pytest.raises(KeyboardInterrupt):
        continue_run(store, None, api_key=TOKEN, stages=broken)
    state = load_run(store, run_id).state
    assert state["step"] == "versioned" and state["labelled"] == 3 and state["changed"] == 3
    v2 = state["version"]
    assert v2 != version

    # ---- continue: train (the model's recipe) and compare, from the version already made
    done = _cli("loop", "run", "--continue", "-p", root)
    assert (done["run"], done["step"], done["done_now"], done["version"]) == (run_id, "compared",
                                                                             ["trained", "compared"], v2)
    old, new = registry.get(store, "det"), registry.get(store, done["new_model"])
    assert new.name == f"det-loop{run_id}" and new.version == v2
    for k in ("epochs", "imgsz", "batch", "lr", "weight_decay", "seed", "zoom", "zoom_off", "weights"):
        assert new.hyper[k] == old.hyper[k], k
    in_v2 = {s.image.file_name: s for s in version_samples(store, v2)}
    assert len(in_v2) == 15  # the 12 labelled + the 3 labelled now; the 3 nobody labelled stay out
    assert sorted(f for f in in_v2 if f.rsplit("/", 1)[-1][:-4] in UNLABELLED) == sorted(drawn)
    for f, (x0, y0, x1, y1) in drawn.items():
        (a,) = in_v2[f].annotations
        assert a.source is Source.HUMAN and a.label == "raccoon" and a.attributes["labelled_by"] == EMAIL
        assert (a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1) == pytest.approx((x0, y0, x1, y1),
                                                                                             abs=1e-6)
        assert isinstance(a.geometry, Box)
    cmp = done["comparison"]
    assert (cmp["older"]["model"], cmp["newer"]["model"], cmp["version"], cmp["split"]) == \
        ("det", new.name, v2, "valid")
    assert [m["metric"] for m in cmp["metrics"]][:2] == ["map", "map50"]
    for m in cmp["metrics"]:
        assert m["delta"] is None or m["delta"] == pytest.approx(m["newer"] - m["older"])
    status = _cli("loop", "status", "-p", root)
    assert [(r["run"], r["step"], r["new_model"]) for r in status] == [(run_id, "compared", new.name)]

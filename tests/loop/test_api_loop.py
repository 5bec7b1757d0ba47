"""The loop on raccoon through the HTTP API: serve a detector with prediction logging, send images, check the
sampling caps exactly, select the 10 most uncertain logged images (scored from the log), export them as Label
Studio tasks, correct two as a labeller would (the JSON edited), import them back, and undo."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from typer.testing import CliRunner
from vl_testdata import DATASETS  # $VISIONLOOP_DATASETS or ../shared/datasets (tests/vl_testdata.py)

from visionloop.cli.main import app
from visionloop.core.geometry import Box
from visionloop.core.sample import Source
from visionloop.ingest import import_dataset, import_samples, undo_batch
from visionloop.loop.labelstudio import export_tasks, pull_from_file
from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer
from visionloop.serve.settings import LogRules
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store import prediction_log as plog
from visionloop.store import tags as tag_store
from visionloop.versions import create_version

ROOT = Path(__file__).resolve().parents[2]
RACCOON = DATASETS / "raccoon"
SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}
TRAIN = [f"raccoon-{i}" for i in range(1, 13)]
SERVED = [f"raccoon-{i}" for i in range(20, 38)]  # 18 photos the project does not hold
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()
EMAIL = "labeller@example.com"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from visionloop.train import train

    root = tmp_path_factory.mktemp("api-loop")
    voc = root / "voc"
    (voc / "images").mkdir(parents=True)
    (voc / "annotations").mkdir()
    for n in TRAIN:
        shutil.copy(RACCOON / "images" / f"{n}.jpg", voc / "images")
        shutil.copy(RACCOON / "annotations" / f"{n}.xml", voc / "annotations")
    with Store.init(root / "project") as store:
        import_dataset(store, voc, format="voc")
        version = create_version(store, SPLIT, workers=0).name
        train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det")
    return root / "project"


def _entropy_max(confs: list[float]) -> float:
    """The oracle: binary entropy (nats) of each box's score, the image's max; 0 without boxes."""
    out = 0.0
    for s in confs:
        s = min(max(s, 0.0), 1.0)
        h = -sum(p * np.log(p) for p in (s, 1 - s) if p > 0)
        out = max(out, float(h))
    return out


def _labels(store: Store) -> dict[str, list]:
    return {s.image.file_name: list(s.annotations) for s in store.samples()}


def test_loop_through_the_api(project, tmp_path):
    rules = {"det": LogRules(per_minute=10, per_hour=14)}
    with Store.open(project) as st0:
        det_id = registry.get(st0, "det").id
    clock = Clock()
    answers: list[dict] = []
    with BackgroundServer(project, Settings(refresh_s=0, log_predictions=rules, log_embedder="off")) as s, \
            httpx.Client(base_url=s.url, timeout=60) as c:
        s.service.predlog.clock = clock

        def send(names: list[str]) -> None:
            for n in names:
                r = c.post("/v1/models/det/predict", files=[("files", (f"{n}.jpg", (RACCOON / "images" /
                                                                                      f"{n}.jpg").read_bytes()))],
                           params={"confidence": 0.01, "max_detections": 3})
                assert r.status_code == 200, r.text
                answers.append(r.json()["images"][0])

        send(SERVED[:12])   # minute 0: 10 logged, 2 over the minute limit
        clock.t += 60
        send(SERVED[12:])   # minute 1: 4 logged (14 this hour), 2 over the hour limit
        deadline = time.monotonic() + 30
        while s.service.predlog.pending:
            assert time.monotonic() < deadline, "the prediction log did not drain"
            time.sleep(0.01)
        reg = s.service.metrics.registry
        labels = {"model": "det", "version": str(det_id)}
        assert reg.get_sample_value("visionloop_prediction_log_written_total", labels) == 14
        assert reg.get_sample_value("visionloop_prediction_log_skipped_total", {**labels, "reason": "limit"}) == 4

    logged_names = [f"{n}.jpg" for n in SERVED[:10] + SERVED[12:16]]
    store = Store.open(project)
    try:
        rows = plog.query(store)
        assert [r.image_name for r in rows] == logged_names
        assert [int(r.created_at.timestamp() - T0) for r in rows] == [0] * 10 + [60] * 4
        by_name = {a["name"]: a for a in answers}
        for r in rows:
            assert r.predictions == by_name[r.image_name]["predictions"]
            assert store.blobs.get(r.image_sha256) == (RACCOON / "images" / r.image_name).read_bytes()
        before = _labels(store)
        assert len(before) == 12

        # ---- select the 10 most uncertain logged images, scored from the log (same model: no inference)
        r = CliRunner().invoke(app, ["select", "--from", "predictions", "--model", "det", "--budget", "10",
                                     "--strategy", "entropy", "--conf", "0.01", "--tag", "loop1", "-p",
                                     str(project), "--json"])
        assert r.exit_code == 0, r.output
        sel = json.loads(r.stdout)
        oracle = sorted(rows, key=lambda x: (-_entropy_max([p["confidence"] for p in x.predictions
                                                             if p["confidence"] >= 0.01]), x.id))[:10]
        assert [p["log_id"] for p in sel["picked"]] == [x.id for x in oracle]
        assert (sel["logged"], sel["candidates"], sel["in_project"], sel["rescored"], sel["tag"]) == \
            (14, 14, 0, 0, "loop1")
        assert {p["scored_from"] for p in sel["picked"]} == {"log"}
        assert len({p["score"] for p in sel["picked"]}) > 5  # the ranking is not a tie among equals
        for p, x in zip(sel["picked"], oracle, strict=True):
            assert p["score"] == pytest.approx(_entropy_max([q["confidence"] for q in x.predictions]), abs=1e-6)
        select_batch = sel["batch_id"]
        det = registry.get(store, "det")
        tagged = [im for im in tag_store.images(store) if "loop1" in im.tags]
        assert sorted(im.file_name for im in tagged) == sorted(f"predictions/{x.id}-{x.image_name}" for x in oracle)
        after_select = _labels(store)
        for x in oracle:  # the logged boxes became source=model pre-labels, exactly
            anns = after_select[f"predictions/{x.id}-{x.image_name}"]
            assert [(a.label, a.source, a.confidence, a.attributes["model_version"]) for a in anns] == \
                [(p["class"], Source.MODEL, pytest.approx(p["confidence"]), f"det#{det.id}") for p in x.predictions]
            assert [a.geometry for a in anns] == [Box(p["box"]["x0"], p["box"]["y0"], p["box"]["x1"], p["box"]["y1"])
                                                  for p in x.predictions]
        assert sum(len(after_select[f"predictions/{x.id}-{x.image_name}"]) for x in oracle) == sel["boxes"]

        # ---- Label Studio tasks (JSON) of the tag, pre-labelled with the logged predictions
        out = tmp_path / "tasks.json"
        rep = export_tasks(store, out, tag="loop1")
        assert (rep.images, rep.predictions, rep.labels) == (10, sel["boxes"], 0)
        tasks = orjson.loads(out.read_bytes())
        assert len(tasks) == 10
        for t in tasks:
            (pred,) = t["predictions"]
            assert pred["model_version"] == f"det#{det.id}"
            assert len(pred["result"]) == len(after_select[t["data"]["vl_file_name"]])

        # ---- the labeller corrects two: one accepts the first box moved 10 px right, one draws a new box
        with_boxes = [t for t in tasks if t["predictions"][0]["result"]]
        moved_t, drawn_t = with_boxes[0], with_boxes[1]
        rect = json.loads(json.dumps(moved_t["predictions"][0]["result"][0]))
        rect["value"]["x"] += 10 / rect["original_width"] * 100
        moved_t["annotations"] = [{"id": 1, "completed_by": EMAIL, "updated_at": "2026-12-06T10:00:00Z",
                                   "result": [rect], "was_cancelled": False}]
        W, H = drawn_t["predictions"][0]["result"][0]["original_width"], \
            drawn_t["predictions"][0]["result"][0]["original_height"]
        drawn_t["annotations"] = [{"id": 2, "completed_by": EMAIL, "updated_at": "2026-12-06T10:01:00Z",
                                   "was_cancelled": False, "result": [
                                       {"id": "n1", "type": "rectanglelabels", "from_name": "label",
                                        "to_name": "image", "original_width": W, "original_height": H,
                                        "image_rotation": 0,
                                        "value": {"x": 20 / W * 100, "y": 30 / H * 100, "width": 40 / W * 100,
                                                  "height": 50 / H * 100, "rotation": 0,
                                                  "rectanglelabels": ["raccoon"]}}]}]
        edited = tmp_path / "tasks-labelled.json"
        edited.write_bytes(orjson.dumps(tasks))

        pulled = pull_from_file(store, edited, importer=import_samples)
        assert (pulled.tasks, pulled.tasks_labelled, pulled.images_changed, pulled.images_unchanged) == (10, 2, 2, 0)
        assert (pulled.added, pulled.deleted, pulled.modified) == (2, 0, 0)
        assert pulled.skipped == {"no submitted annotation yet": 8} and pulled.annotators == {EMAIL: 2}
        moved_file, drawn_file = moved_t["data"]["vl_file_name"], drawn_t["data"]["vl_file_name"]
        assert pulled.prelabels_replaced == len(after_select[moved_file]) + len(after_select[drawn_file])
        after = _labels(store)
        for f in after:
            if f not in (moved_file, drawn_file):
                assert after[f] == after_select[f], f
        (new,) = after[moved_file]
        old = after_select[moved_file][0].geometry
        assert new.source is Source.HUMAN and new.label == "raccoon" and new.attributes["labelled_by"] == EMAIL
        assert (new.geometry.x0, new.geometry.y0, new.geometry.x1, new.geometry.y1) == \
            pytest.approx((old.x0 + 10, old.y0, old.x1 + 10, old.y1), abs=1e-6)
        (drawn,) = after[drawn_file]
        assert drawn.source is Source.HUMAN and drawn.label == "raccoon"
        assert (drawn.geometry.x0, drawn.geometry.y0, drawn.geometry.x1, drawn.geometry.y1) == \
            pytest.approx((20, 30, 60, 80), abs=1e-6)

        # ---- undo: the labels first, then the selection's import
        undo_batch(store, pulled.batch_id)
        assert _labels(store) == after_select
        undo_batch(store, select_batch)
        assert _labels(store) == before
        assert not [im for im in tag_store.images(store) if "loop1" in im.tags]
    finally:
        store.close()


def test_select_from_log_filters_and_box_budget(project, tmp_path):
    """Rows written straight to the log: --class, --since/--until, --budget-boxes and a row of another model
    (re-scored by running the asked model), each exactly."""
    from visionloop.loop.from_log import select_from_log

    work = shutil.copytree(project, tmp_path / "p")
    with Store.open(work) as store:
        det = registry.get(store, "det")

        def box(c: float) -> dict:
            return {"box": {"x0": 10.0, "y0": 10.0, "x1": 50.0, "y1": 60.0}, "class": "raccoon", "class_id": 0,
                    "confidence": c}

        t = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
        specs = [  # (image, predictions, minutes after t, model id)
            ("raccoon-40", [box(0.5), box(0.9)], 0, det.id),      # entropy max ln 2 (0.5): first
            ("raccoon-41", [box(0.4)] * 3, 1, det.id),             # 3 boxes, second
            ("raccoon-42", [box(0.2)], 2, det.id),                 # third
            ("raccoon-43", [], 3, det.id),                         # no prediction: not of class raccoon
            ("raccoon-44", [box(0.45)], 90, det.id),               # outside --until
            ("raccoon-45", [box(0.3)], 4, det.id + 100),           # another model: re-scored
        ]
        entries = [plog.LogEntry(created_at=t.replace(minute=m) if m < 60 else t.replace(hour=10, minute=m - 60),
                                 model="det", model_name="det", model_version=v, task="detect",
                                 image=(RACCOON / "images" / f"{n}.jpg").read_bytes(), width=100, height=100,
                                 predictions=p, image_name=f"{n}.jpg") for n, p, m, v in specs]
        plog.append(store, entries)
        sel = select_from_log(store, "det", budget_boxes=5, strategy="entropy", class_name="raccoon",
                              since=t, until=t.replace(minute=30), conf=0.1, save=False)
        assert (sel.logged, sel.candidates, sel.rescored) == (4, 4, 1)
        # raccoon-40 (2 boxes) + raccoon-41 (3 boxes) = 5; the next would go over
        assert [p.file_name.split("-", 1)[1] for p in sel.picked] == ["raccoon-40.jpg", "raccoon-41.jpg"]
        assert [p.boxes for p in sel.picked] == [2, 3] and sel.boxes == 5
        assert sel.picked[0].score == pytest.approx(np.log(2), abs=1e-9)
        rescored = select_from_log(store, "det", budget=10, strategy="entropy", since=t,
                                   until=t.replace(minute=30), save=False)
        assert {p.file_name.split("-", 1)[1]: p.scored_from for p in rescored.picked}["raccoon-45.jpg"] == "model"
        assert len(rescored.picked) == 5 and rescored.rescored == 1
        with pytest.raises(Exception, match="needs --budget or --budget-boxes"):
            select_from_log(store, "det", save=False)

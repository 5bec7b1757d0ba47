"""The labelling round trip against a REAL Label Studio server (the `label-studio` package on loopback, SQLite).

Label Studio pins Django and much else, so it lives in its own virtual environment, `.ci/ls-venv`, which
`.ci/label_studio.sh` makes (`.ci/run` calls it); VISIONLOOP_LABEL_STUDIO may name another `label-studio`
executable. Without one the tests here skip, saying so.

The labeller is played with plain HTTP calls (httpx), not with visionloop's client: annotations are made
from the task's `visionloop labels` prediction as Label Studio's UI does when a labeller accepts it, one box
moved, one box deleted and one added, then submitted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from vl_services import free_port, stop_group
from vl_testdata import DATASETS  # $VISIONLOOP_DATASETS or ../shared/datasets (tests/vl_testdata.py)

from visionloop.cli.main import app
from visionloop.core.geometry import Box
from visionloop.core.sample import Source
from visionloop.ingest import import_dataset, import_samples, undo_batch
from visionloop.loop.labelstudio import (
    LABELS_VERSION,
    LabelStudioError,
    pull_from_label_studio,
    send_to_label_studio,
)
from visionloop.store import Store
from visionloop.store import models as registry
from visionloop.store import tags as tag_store
from visionloop.versions import create_version, version_samples

ROOT = Path(__file__).resolve().parents[2]
RACCOON = DATASETS / "raccoon"
LS_BIN = Path(os.environ.get("VISIONLOOP_LABEL_STUDIO") or ROOT / ".ci" / "ls-venv" / "bin" / "label-studio")
EMAIL, PASSWORD, TOKEN = "labeller@example.com", "visionloop-test", "vl-test-token-0123456789"
SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}
# 12 raccoon photos, the first 10 sent; raccoon-12 holds two boxes (one is deleted and one added there)
NAMES = [f"raccoon-{i}" for i in (1, 12, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)]
SENT = [f"{n}.jpg" for n in NAMES[:10]]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio server on loopback with one user whose legacy token is TOKEN; stopped after the module."""
    if not LS_BIN.exists():
        pytest.skip(f"Label Studio is not installed at {LS_BIN}: run `bash .ci/label_studio.sh` (.ci/run does)")
    data = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "COLLECT_ANALYTICS": "false",
           "LATEST_VERSION_CHECK": "false"}
    log = open(data / "server.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port",
                             str(port), "--data-dir", str(data), "--username", EMAIL, "--password", PASSWORD,
                             "--user-token", TOKEN, "--enable-legacy-api-token", "--log-level", "WARNING"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # migrations on a slow shared machine; not a timing assertion
        while True:
            if proc.poll() is not None:
                pytest.fail(f"label-studio exited with {proc.returncode}:\n{(data / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/projects", headers={"Authorization": f"Token {TOKEN}"},
                             timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"label-studio did not answer in 600 s:\n{(data / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"\nLabel Studio answered after {time.perf_counter() - t0:.1f} s")
        yield url
    finally:
        stop_group(proc)  # label-studio and its children
        log.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """12 raccoon photos with their VOC boxes, a version and a detector trained for 2 steps."""
    from visionloop.train import train

    root = tmp_path_factory.mktemp("relabel")
    voc = root / "voc"
    (voc / "images").mkdir(parents=True)
    (voc / "annotations").mkdir()
    for n in NAMES:
        shutil.copy(RACCOON / "images" / f"{n}.jpg", voc / "images")
        shutil.copy(RACCOON / "annotations" / f"{n}.xml", voc / "annotations")
    store = Store.init(root / "project")
    import_dataset(store, voc, format="voc")
    version = create_version(store, SPLIT, workers=0).name
    train(store, version, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det")
    picked = [r.id for r in tag_store.images(store) if r.file_name.rsplit("/", 1)[-1] in SENT]
    assert len(picked) == 10
    batch, tag = tag_store.add_tag(store, picked, "relabel", source="test")
    assert batch is not None and tag == "relabel"
    yield store, version
    store.close()


def _labels(store: Store) -> dict[str, list]:
    """file name → its annotations (the whole Annotation objects), as stored."""
    return {s.image.file_name.rsplit("/", 1)[-1]: list(s.annotations) for s in store.samples()}


def test_round_trip_through_label_studio(label_studio, project):
    store, version = project
    ls = httpx.Client(base_url=label_studio, headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    rows = tag_store.images(store)
    assert len(rows) == 12
    sent_files = SENT
    before = _labels(store)
    assert [len(before[f]) for f in sent_files] == [1, 2, 1, 1, 1, 1, 1, 1, 1, 1]

    # ---- send: the CLI, its key from the environment
    r = CliRunner().invoke(app, ["label", "send", "--to", "label-studio", "--url", label_studio, "--tag", "relabel",
                                 "--model", "det", "--conf", "0.0", "--project-title", "raccoons", "-p",
                                 str(store.root), "--json"], env={"LABEL_STUDIO_API_KEY": TOKEN})
    assert r.exit_code == 0, r.output
    sent = json.loads(r.stdout)
    assert (sent["images"], sent["tasks_created"], sent["tasks_already_there"], sent["project_created"]) == \
        (10, 10, 0, True)
    assert sent["labels"] == 11 and sent["model"] == f"det#{registry.get(store, 'det').id}"
    pid = sent["ls_project"]
    proj = ls.get(f"/api/projects/{pid}").json()
    assert proj["title"] == "raccoons"
    assert '<RectangleLabels name="label" toName="image">' in proj["label_config"]
    assert 'value="raccoon"' in proj["label_config"]

    tasks = ls.get(f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"}).json()
    assert len(tasks) == 10
    by_file = {t["data"]["vl_file_name"].rsplit("/", 1)[-1]: t for t in tasks}
    for t in tasks:  # the export names a task's predictions by id
        t["predictions"] = ls.get("/api/predictions", params={"task": t["id"]}).json()
    assert sorted(by_file) == sorted(sent_files)
    for t in tasks:  # the image is the stored one, byte for byte, served by Label Studio
        row = next(x for x in rows if x.id == t["data"]["vl_image"])
        assert row.sha256 == t["data"]["vl_sha256"]
        got = ls.get(t["data"]["image"])
        assert got.status_code == 200 and got.content == store.blobs.get(row.sha256)
    # pre-labels: the model's (every detection above 0.0, with its score) and the current labels
    model_regions = sum(len(p["result"]) for t in tasks for p in t["predictions"]
                        if p["model_version"] != LABELS_VERSION)
    assert model_regions == sent["predictions"] and model_regions > 0
    for t in tasks:
        kinds = sorted(p["model_version"] for p in t["predictions"])
        assert kinds == sorted([LABELS_VERSION, sent["model"]]) or kinds == [LABELS_VERSION]

    # ---- sending again adds nothing (same project by title)
    again = send_to_label_studio(store, label_studio, TOKEN, tag="relabel", project_title="raccoons")
    assert (again.ls_project, again.tasks_created, again.tasks_already_there, again.project_created) == \
        (pid, 0, 10, False)

    # ---- the labeller: accept the current labels everywhere, move one box, delete one and add one
    def labels_result(t):
        (p,) = [p for p in t["predictions"] if p["model_version"] == LABELS_VERSION]
        return json.loads(json.dumps(p["result"]))

    moved_file, edited_file = "raccoon-1.jpg", "raccoon-12.jpg"
    for f, t in by_file.items():
        result = labels_result(t)
        if f == moved_file:
            (rect,) = [x for x in result if x["type"] == "rectanglelabels"]
            rect["value"]["x"] += 10 / rect["original_width"] * 100  # 10 px to the right
            rect["value"]["y"] -= 5 / rect["original_height"] * 100  # 5 px up
        if f == edited_file:
            rects = [x for x in result if x["type"] == "rectanglelabels"]
            assert len(rects) == 2
            gone = rects[1]["id"]
            result = [x for x in result if x["id"] != gone]  # the region and its per-region attributes
            W, H = rects[0]["original_width"], rects[0]["original_height"]
            result.append({"id": "new1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                           "original_width": W, "original_height": H, "image_rotation": 0,
                           "value": {"x": 20 / W * 100, "y": 30 / H * 100, "width": 40 / W * 100,
                                     "height": 50 / H * 100, "rotation": 0, "rectanglelabels": ["raccoon"]}})
        a = ls.post(f"/api/tasks/{t['id']}/annotations", json={"result": result, "lead_time": 1.5})
        assert a.status_code == 201, a.text

    # ---- pull through the ordinary import: one batch
    r = CliRunner().invoke(app, ["label", "pull", "--from", "label-studio", "--url", label_studio, "--api-key",
                                 TOKEN, "--ls-project", str(pid), "-p", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    pulled = json.loads(r.stdout)
    assert (pulled["tasks"], pulled["tasks_labelled"], pulled["images_changed"], pulled["images_unchanged"]) == \
        (10, 10, 2, 8)
    assert (pulled["added"], pulled["deleted"], pulled["modified"]) == (1, 1, 1)
    assert pulled["annotators"] == {EMAIL: 10} and pulled["skipped"] == {}
    batch_id = pulled["batch_id"]
    assert batch_id is not None
    after = _labels(store)
    assert len(after) == 12  # no image added: every task found its image
    for f in after:
        if f not in (moved_file, edited_file):
            assert after[f] == before[f], f  # the very same annotations (source, attributes)
    (old,) = before[moved_file]
    (new,) = after[moved_file]
    assert isinstance(new.geometry, Box) and new.label == "raccoon" and new.source is Source.HUMAN
    assert new.geometry.x0 == pytest.approx(old.geometry.x0 + 10, abs=1e-6)
    assert new.geometry.x1 == pytest.approx(old.geometry.x1 + 10, abs=1e-6)
    assert new.geometry.y0 == pytest.approx(old.geometry.y0 - 5, abs=1e-6)
    assert new.geometry.y1 == pytest.approx(old.geometry.y1 - 5, abs=1e-6)
    assert new.attributes["labelled_by"] == EMAIL and new.attributes["labelled_at"].endswith("+00:00")
    assert {k: v for k, v in new.attributes.items() if k not in ("labelled_by", "labelled_at")} == old.attributes
    kept, added = after[edited_file]
    assert kept == before[edited_file][0]
    assert added.source is Source.HUMAN and added.attributes["labelled_by"] == EMAIL
    assert (added.geometry.x0, added.geometry.y0, added.geometry.x1, added.geometry.y1) == \
        pytest.approx((20, 30, 60, 80), abs=1e-6)
    with store.session() as s:
        from visionloop.store.schema import BatchRow

        row = s.get(BatchRow, batch_id)
        assert row.kind == "import" and row.format == "labelstudio"
        assert row.summary["label_studio"]["annotators"] == {EMAIL: 10}

    # ---- pulling again changes nothing
    again = pull_from_label_studio(store, label_studio, TOKEN, pid, importer=import_samples)
    assert (again.images_changed, again.batch_id) == (0, None)

    # ---- undo restores the labels exactly; redo by pulling again
    undo_batch(store, batch_id)
    assert _labels(store) == before
    redo = pull_from_label_studio(store, label_studio, TOKEN, pid, importer=import_samples)
    assert (redo.images_changed, redo.added, redo.deleted, redo.modified) == (2, 1, 1, 1)
    assert _labels(store) == after

    # ---- a version of the relabelled project, a brief retrain, and the comparison
    from visionloop.evaluate.model import compare_models
    from visionloop.train import train

    v2 = create_version(store, SPLIT, workers=0)
    assert v2.name != version
    train(store, v2.name, task="detect", epochs=1, max_steps=2, imgsz=64, batch=4, name="det2")
    cmp = compare_models(store, "det", "det2", v2.name, "valid")
    assert (cmp.older.model, cmp.newer.model, cmp.newer.version, cmp.newer.split) == ("det", "det2", v2.name, "valid")
    in_v2 = {s.image.file_name.rsplit("/", 1)[-1]: s for s in version_samples(store, v2.name)}
    assert len(in_v2) == 12
    assert [a.geometry for a in in_v2[moved_file].annotations] == [new.geometry]  # the relabelled box is trained on
    assert [a.geometry for a in in_v2[edited_file].annotations] == [kept.geometry, added.geometry]
    n_valid = sum(1 for s in in_v2.values() if s.split == "valid")
    assert cmp.older.images == cmp.newer.images == n_valid > 0
    assert [name for name, *_ in cmp.rows] == ["map", "map50", "map75", "map_small", "map_medium", "map_large",
                                               "ar100", "false_positives", "false_negatives"]
    for _, a, b, d in cmp.rows:
        assert d is None or d == pytest.approx(b - a)


def test_cvat_task_of_the_selection(project, tmp_path):
    """`label send --to cvat`: a CVAT for images 1.1 task folder with the selection; read back by datumaro
    (an independent CVAT reader): without a model, the images' current labels, box for box."""
    store, _ = project
    out = tmp_path / "cvat"
    r = CliRunner().invoke(app, ["label", "send", "--to", "cvat", "--out", str(out), "--tag", "relabel", "-p",
                                 str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert (rep["tool"], rep["images"], rep["labels"], rep["predictions"]) == ("cvat", 10, 11, 0)
    import datumaro as dm

    ds = dm.Dataset.import_from(str(out), "cvat")
    got = {Path(item.id).name: sorted((round(a.points[0], 2), round(a.points[1], 2), round(a.points[2], 2),
                                       round(a.points[3], 2)) for a in item.annotations) for item in ds}
    want = {}
    for s in store.samples():
        f = s.image.file_name.rsplit("/", 1)[-1]
        if f in SENT:
            want[Path(f).stem] = sorted((round(a.geometry.x0, 2), round(a.geometry.y0, 2), round(a.geometry.x1, 2),
                                         round(a.geometry.y1, 2)) for a in s.annotations)
    assert {Path(k).stem: v for k, v in got.items()} == want
    # a second send refuses the folder it would replace
    r = CliRunner().invoke(app, ["label", "send", "--to", "cvat", "--out", str(out), "--tag", "relabel", "-p",
                                 str(store.root)])
    assert r.exit_code == 1 and "output exists and is not empty" in str(r.exception)


def test_a_wrong_key_is_one_clear_line(label_studio, project):
    store, _ = project
    r = CliRunner().invoke(app, ["label", "pull", "--url", label_studio, "--api-key", "not-the-token",
                                 "--ls-project", "1", "-p", str(store.root)])
    assert r.exit_code == 1 and isinstance(r.exception, LabelStudioError)
    assert "Label Studio refused the API key (401 on GET /api/projects/1/export)" in str(r.exception)
    assert "\n" not in r.exception.message

"""The evaluations pages: the list, one evaluation's metrics, PR curves (inline SVG from the stored COCO
precision array), confusion matrix with its background row and column, and the TIDE breakdown."""

from __future__ import annotations

import re
from collections import Counter

import httpx

from visionloop.store import Store
from visionloop.store import evaluations as evals
from visionloop.store import models as registry
from visionloop.web import views


def _stored(web_project):
    with Store.open(web_project) as store:
        ev = evals.latest(store, model_id=registry.get(store, "det-a").id)
        events = evals.events(store, ev.id)
    return ev, events


def test_evaluations_list_and_models_link(server, web_project):
    ev, events = _stored(web_project)
    with httpx.Client(base_url=server.url) as c:
        listing = c.get("/v1/ui/evaluations").json()["evaluations"]
        assert [(e["id"], e["model"], e["split"], e["events"]) for e in listing] == \
            [(ev.id, "det-a", "valid", len(events))]
        assert listing[0]["summary"]["map50"] == ev.metrics["metrics"]["map50"]
        html = c.get("/evaluations").text
        assert html.count("<tr data-evaluation=") == 1
        row = re.search(rf'<tr data-evaluation="{ev.id}">.*?</tr>', html, re.S).group(0)
        assert f'href="/evaluations/{ev.id}"' in row and f">{len(events)}</a>" in row
        assert f'<td class="map50">{ev.metrics["metrics"]["map50"]:.3f}</td>' in row
        models = c.get("/models").text
        assert f'<a class="evaluation" href="/evaluations/{ev.id}">evaluation {ev.id}</a>' in models
        assert f"errors on {ev.version}/valid" in models  # was blank: the template read a missing field
        assert c.get("/evaluations/9999").status_code == 404
        assert c.get("/v1/ui/evaluations/9999").status_code == 404


def test_evaluation_page_pr_confusion_tide(server, web_project):
    ev, events = _stored(web_project)
    m = ev.metrics
    curve = m["pr_curve"]
    with httpx.Client(base_url=server.url) as c:
        twin = c.get(f"/v1/ui/evaluations/{ev.id}").json()
        html = c.get(f"/evaluations/{ev.id}").text
    # PR: one polyline per class with ground truth, plus the mean; points are (recall, 1 - precision) scaled
    defined = [k for k in curve["classes"] if k["precision"] is not None]
    assert len(curve["recall"]) == 101 and defined
    lines = re.findall(r'<polyline class="curve[^"]*" data-class="([^"]+)" data-ap="([^"]+)" points="([^"]+)"', html)
    assert [n for n, _, _ in lines] == [k["name"] for k in defined] + ["all classes"]
    for (_, ap, pts), k in zip(lines, defined, strict=False):
        assert ap == f"{k['ap']:.4f}"
        xy = [tuple(map(float, p.split(","))) for p in pts.split()]
        assert len(xy) == 101
        assert xy == [(round(r * views.PR_W, 1), round((1 - p) * views.PR_H, 1))
                      for r, p in zip(curve["recall"], k["precision"], strict=True)]
    assert lines[-1][1] == f"{sum(curve['mean']) / 101:.4f}"
    # the AP the curve is drawn from is the per-class AP50 COCO reported (IoU 0.5)
    ap50 = {p["name"]: p["ap50"] for p in m["metrics"]["per_class"]}
    assert all(abs(k["ap"] - ap50[k["name"]]) < 1e-9 for k in defined)
    # confusion: classes + background, every cell on the page; a class's row holds each of its ground truths
    conf = m["confusion"]
    names = conf["classes"]
    assert names[-1] == "background" and len(conf["matrix"]) == len(names) == len(m["metrics"]["per_class"]) + 1
    for i, row in enumerate(conf["matrix"]):
        for j, v in enumerate(row):
            assert re.search(rf'<tr data-gt="{names[i]}">.*?<td data-pred="{names[j]}"[^>]*>{v}</td>', html, re.S)
    gts = {p["name"]: p["ground_truth"] for p in m["metrics"]["per_class"]}
    assert twin["confusion"]["row_totals"][:-1] == [gts[n] for n in names[:-1]]
    assert twin["confusion"]["matrix"][-1][-1] == 0
    # TIDE: the counts are the stored error events' (false positives by type; missed false negatives)
    fp = Counter(e.error for e in events if e.kind == "false_positive")
    missed = sum(1 for e in events if e.kind == "false_negative" and e.error == "missed")
    tide = m["tide"]
    assert tide["false_positives"] == sum(fp.values())
    for err in ("classification", "localization", "both", "duplicate", "background"):
        assert re.search(rf'<tr data-error="{err}">.*?<td class="count">{fp.get(err, 0)}</td>', html, re.S)
    assert re.search(rf'<tr data-error="missed">.*?<td class="count">{missed}</td>', html, re.S)
    assert re.search(rf'<tr data-error="false_positives">.*?<td class="count">{sum(fp.values())}</td>', html, re.S)
    assert [r["error"] for r in twin["tide"]["rows"]] == ["classification", "localization", "both", "duplicate",
                                                          "background", "missed"]
    assert f'<tr data-metric="map50"><td>map50</td><td class="v">{m["metrics"]["map50"]:.4f}</td>' in html


def test_classification_evaluation_renders_its_confusion(monkeypatch):
    """A classifier's evaluation (no PR curve, no TIDE): per-class precision/recall and its K×K confusion."""
    import numpy as np
    from starlette.requests import Request

    from visionloop.evaluate.classification import classification_metrics
    from visionloop.store.evaluations import EvaluationInfo
    from visionloop.web.routes import templates

    truth = np.array([0, 0, 1, 1, 1, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 2, 2]]  # one cat called dog, one dog called bird
    metrics = {"classification": classification_metrics(truth, scores, ["cat", "dog", "bird"]).to_json()}
    info = EvaluationInfo(7, 1, "cls-a", 1, "v1", "valid", "classify", metrics, {}, 6, 2, "0", "2026-01-01T00:00:00")
    monkeypatch.setattr(views.evals, "get", lambda store, i: info)
    monkeypatch.setattr(views, "classes", lambda store: [])
    d = views.evaluation(None, 7)
    assert d["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]] and d["pr"] is None and d["tide"] is None
    assert d["confusion"]["row_totals"] == [2, 3, 1] and d["confusion"]["col_totals"] == [1, 3, 2]
    req = Request({"type": "http", "method": "GET", "path": "/evaluations/7", "headers": [], "query_string": b""})
    html = templates.get_template("evaluation.html").render(d=d, csrf="x", flash=None, request=req)
    assert re.search(r'<tr data-gt="dog">.*?<td data-pred="bird"[^>]*>1</td>', html, re.S)
    assert re.search(r'<tr data-class="cat"><td>cat</td><td>1.000</td><td>0.500</td>', html)
    assert 'id="pr"' not in html and 'id="pr-missing"' not in html and 'id="tide"' not in html


def test_evaluation_stored_before_pr_curves_says_so(web_project, monkeypatch):
    from dataclasses import replace

    from starlette.requests import Request

    from visionloop.web.routes import templates

    ev, _ = _stored(web_project)
    old = replace(ev, metrics={k: v for k, v in ev.metrics.items() if k != "pr_curve"})
    monkeypatch.setattr(views.evals, "get", lambda store, i: old)
    with Store.open(web_project) as store:
        d = views.evaluation(store, ev.id)
    req = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})
    html = templates.get_template("evaluation.html").render(d=d, csrf="x", flash=None, request=req)
    assert d["pr"] is None and 'id="pr-missing"' in html and f"visionloop evaluate {ev.model}" in html
    assert 'id="confusion"' in html and 'id="tide"' in html


def test_two_evaluations_side_by_side(web_project, tmp_path):
    """/evaluations-compare: metrics with deltas and the images with more errors in the newer evaluation,
    counted independently here from the stored error events."""
    import shutil

    import pytest
    from starlette.requests import Request

    from visionloop.core.errors import VisionLoopError
    from visionloop.evaluate.model import evaluate_model
    from visionloop.web.routes import templates

    project = shutil.copytree(web_project, tmp_path / "project")
    with Store.open(project) as store:
        from visionloop.train import train

        first = evals.latest(store, model_id=registry.get(store, "det-a").id)

        version = registry.get(store, "det-a").version  # a second model on the same version
        train(store, version, task="detect", epochs=4, imgsz=64, batch=4, lr=3e-3, name="det-b", export=True)
        second = evals.get(store, evaluate_model(store, "det-b", split="valid", score_threshold=0.5).evaluation_id)
        d = views.evaluations_compare(store, second.id, first.id)  # the order given does not matter

        def errors(ev, floor):
            n = Counter()
            for e in evals.events(store, ev.id):
                if e.kind == "false_positive" and e.score is not None and e.score < floor:
                    continue
                n[e.image_id] += 1
            return n

        before, after = errors(first, 0.5), errors(second, 0.5)  # the newer evaluation's floor
        train_eval = evals.get(store, evaluate_model(store, "det-a", split="train").evaluation_id)
        with pytest.raises(VisionLoopError, match=f"evaluation {first.id} is on .*/valid and {train_eval.id} on .*/train"):
            views.evaluations_compare(store, first.id, train_eval.id)
    assert d["older"]["evaluation_id"] == first.id and d["newer"]["evaluation_id"] == second.id
    assert d["min_score"] == 0.5 and (d["worse"] or d["better"])  # (here: 3 worse, 2 better)
    worse = sorted((i for i in after if after[i] > before.get(i, 0)), key=lambda i: (before.get(i, 0) - after[i], i))
    assert [w["image_id"] for w in d["worse"]] == worse
    assert d["better"] == sum(1 for i in before if before[i] > after.get(i, 0))
    m = {r["metric"]: r for r in d["metrics"]}
    assert m["map50"]["older"] == first.metrics["metrics"]["map50"]
    assert m["map50"]["delta"] == pytest.approx(m["map50"]["newer"] - m["map50"]["older"])
    req = Request({"type": "http", "method": "GET", "path": "/evaluations-compare", "headers": [], "query_string": b""})
    html = templates.get_template("evaluations_compare.html").render(d=d, csrf="x", flash=None, request=req)
    assert f'<a href="/evaluations/{first.id}">det-a</a>' in html and f'<a href="/evaluations/{second.id}">det-b</a>' in html
    assert html.count('<tr data-image="') == len(worse)
    assert re.search(r'<tr data-metric="map50"><td>map50</td>', html)


def test_compare_route_needs_two_ids(server):
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/v1/ui/evaluations-compare", params={"a": "1"})
        assert r.status_code == 400 and "two evaluation ids" in r.json()["message"]
        assert c.get("/evaluations-compare", params={"a": "1", "b": "x"}).status_code == 400

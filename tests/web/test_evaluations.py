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

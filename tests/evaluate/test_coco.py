"""COCO metrics equal pycocotools (the independent oracle) to 1e-9; inputs are validated."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from visionloop.core.errors import FormatError
from visionloop.evaluate import coco_metrics, load_inputs

from .conftest import octagon


def pycoco(gt, preds, iou_type):
    g = COCO()
    g.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        g.createIndex()
        d = g.loadRes(copy.deepcopy(preds))
        ev = COCOeval(g, d, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def per_class_oracle(ev):
    p, r = ev.eval["precision"], ev.eval["recall"]
    out = []
    for k in range(p.shape[2]):
        s = p[:, :, k, 0, -1]
        out.append((float(np.mean(s[s > -1])), float(np.mean(s[0][s[0] > -1])), float(np.mean(s[5][s[5] > -1])),
                    float(np.mean(r[:, k, 0, -1]))))
    return out


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_equal_to_pycocotools(raccoon_gt, raccoon_preds, kind):
    preds = raccoon_preds[kind]
    ours = coco_metrics(copy.deepcopy(raccoon_gt), preds)  # iou type from the results: segm when masks
    assert ours.iou_type == kind
    ev = pycoco(raccoon_gt, preds, kind)
    assert np.allclose(ours.stats, ev.stats, atol=1e-9, rtol=0)
    assert ours.map == pytest.approx(ev.stats[0], abs=1e-9) and ours.map50 == pytest.approx(ev.stats[1], abs=1e-9)
    oracle = per_class_oracle(ev)
    assert [c.name for c in ours.per_class] == ["raccoon", "dog", "cat"]
    for c, (ap, ap50, ap75, ar) in zip(ours.per_class, oracle, strict=True):
        assert (c.ap, c.ap50, c.ap75, c.ar100) == pytest.approx((ap, ap50, ap75, ar), abs=1e-9)
    assert np.allclose(ours.precision, ev.eval["precision"], atol=1e-9, rtol=0)
    # the fixture is not trivial: every category has errors, crowd regions exist, metrics are mid-range
    assert 0.2 < ours.map50 < 0.95 and ours.map < ours.map50
    assert (ours.images, ours.ground_truth, ours.predictions) == (200, 217, len(preds))
    assert sum(a["iscrowd"] for a in raccoon_gt["annotations"]) == 20


def test_inputs_not_mutated(raccoon_gt, raccoon_preds):
    gt, preds = copy.deepcopy(raccoon_gt), copy.deepcopy(raccoon_preds["bbox"])
    coco_metrics(gt, preds)
    assert gt == raccoon_gt and preds == raccoon_preds["bbox"]


def test_files_and_polygon_predictions(tmp_path, raccoon_gt, raccoon_preds):
    gt_path, pred_path = tmp_path / "instances.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(raccoon_gt))
    pred_path.write_text(json.dumps(raccoon_preds["bbox"]))
    from_files = coco_metrics(gt_path, pred_path)
    assert from_files.stats == coco_metrics(raccoon_gt, raccoon_preds["bbox"]).stats
    # polygon mask results (pycocotools only takes RLE) are converted with the image's size
    im = raccoon_gt["images"][0]
    a = next(a for a in raccoon_gt["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"])
    poly = [{"image_id": im["id"], "category_id": a["category_id"], "score": 0.9,
             "segmentation": [octagon(*a["bbox"])]}]
    rle = load_inputs(raccoon_gt, poly, iou_type="segm").predictions[0]["segmentation"]
    assert rle["size"] == [im["height"], im["width"]] and isinstance(rle["counts"], str | bytes)
    assert coco_metrics(raccoon_gt, poly).stats == pytest.approx(
        pycoco(raccoon_gt, [dict(poly[0], segmentation=rle)], "segm").stats, abs=1e-12)


def test_empty_predictions_and_class_without_ground_truth(raccoon_gt):
    gt = copy.deepcopy(raccoon_gt)
    gt["categories"].append({"id": 42, "name": "unused"})
    m = coco_metrics(gt, [])
    assert m.map == 0.0 and m.predictions == 0
    assert m.per_class[-1].name == "unused" and m.per_class[-1].ap is None and m.per_class[-1].ground_truth == 0
    assert m.to_json()["per_class"][-1]["ap"] is None


@pytest.mark.parametrize("bad, where, words", [
    ({"image_id": 99999, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, "[2]", "image_id 99999"),
    ({"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.5}, "[2]", "category_id 3"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 2, -3, 4], "score": 0.5}, "[2]", "bbox"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}, "[2]", "no 'score'"),
    ({"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}, "[2]", "score 'high'"),
    ("not a dict", "[2]", "not an object"),
])
def test_bad_prediction_names_file_and_element(tmp_path, raccoon_gt, bad, where, words):
    good = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}
    path = tmp_path / "results.json"
    path.write_text(json.dumps([good, good, bad]))
    with pytest.raises(FormatError) as e:
        coco_metrics(raccoon_gt, path)
    assert e.value.path == str(path) and e.value.where == where and words in e.value.message
    assert "\n" not in str(e.value) and e.value.hint


def test_bad_ground_truth(tmp_path, raccoon_gt):
    gt = copy.deepcopy(raccoon_gt)
    gt["annotations"][5]["image_id"] = 777
    with pytest.raises(FormatError, match=r"annotations\[5\].*image_id 777"):
        coco_metrics(gt, [])
    gt = copy.deepcopy(raccoon_gt)
    gt["annotations"][3]["id"] = gt["annotations"][2]["id"]
    with pytest.raises(FormatError, match=r"annotations\[3\].*duplicate"):
        coco_metrics(gt, [])
    with pytest.raises(FormatError, match="not a COCO dataset"):
        coco_metrics([], [])
    with pytest.raises(FormatError, match="not a results list"):
        coco_metrics(raccoon_gt, raccoon_gt)
    missing = tmp_path / "nope.json"
    with pytest.raises(FormatError, match="not found"):
        coco_metrics(missing, [])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(FormatError, match="not valid JSON") as e:
        coco_metrics(broken, [])
    assert e.value.path == str(broken)

"""TIDE categories on a hand-made case with exact counts, dAP against pycocotools on hand-fixed inputs,
error events, and the detection confusion matrix with exact counts."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from visionloop.evaluate import ErrorType, analyse_errors, detection_confusion, load_inputs
from visionloop.evaluate.errors import EventKind

from .test_coco import pycoco

A, B = 1, 2
BOX = [0.0, 0.0, 10.0, 10.0]
NARROW = [0.0, 0.0, 10.0, 4.0]  # IoU 0.4 with BOX
FAR = [50.0, 50.0, 10.0, 10.0]  # IoU 0 with BOX


def hand_made():
    """Nine 100×100 images, one situation each (image id: what happens)."""
    images = [{"id": i, "file_name": f"img{i}.jpg", "width": 100, "height": 100} for i in range(1, 10)]
    gts = [(1, A, BOX), (2, A, BOX), (3, A, BOX), (4, A, BOX), (5, A, BOX), (6, A, BOX), (8, A, BOX)]
    anns = [{"id": 10 + img, "image_id": img, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
            for img, c, b in gts]
    anns.append({"id": 19, "image_id": 9, "category_id": A, "bbox": [0.0, 0.0, 50.0, 50.0], "area": 2500.0,
                 "iscrowd": 1})
    gt = {"images": images, "categories": [{"id": A, "name": "a"}, {"id": B, "name": "b"}], "annotations": anns}
    preds = [
        {"image_id": 1, "category_id": A, "bbox": BOX, "score": 0.95},  # 0: true positive
        {"image_id": 1, "category_id": A, "bbox": BOX, "score": 0.90},  # 1: duplicate
        {"image_id": 2, "category_id": B, "bbox": BOX, "score": 0.85},  # 2: classification
        {"image_id": 3, "category_id": A, "bbox": NARROW, "score": 0.80},  # 3: localization
        {"image_id": 4, "category_id": B, "bbox": NARROW, "score": 0.75},  # 4: both (gt 14 missed)
        {"image_id": 5, "category_id": A, "bbox": FAR, "score": 0.70},  # 5: background (gt 15 missed)
        {"image_id": 7, "category_id": A, "bbox": BOX, "score": 0.65},  # 6: background (no ground truth)
        {"image_id": 8, "category_id": A, "bbox": BOX, "score": 0.10},  # 7: true positive
        {"image_id": 9, "category_id": A, "bbox": [10.0, 10.0, 10.0, 10.0], "score": 0.5},  # 8: on a crowd
    ]  # image 6: gt 16 missed, no prediction
    return gt, preds


def map50(gt, preds):
    return float(pycoco(gt, preds, "bbox").stats[1])


def test_tide_counts_and_events():
    gt, preds = hand_made()
    res = analyse_errors(load_inputs(gt, preds))
    t = res.tide
    assert {k.value: v for k, v in t.counts.items()} == {
        "classification": 1, "localization": 1, "both": 1, "duplicate": 1, "background": 2, "missed": 3}
    assert (t.true_positives, t.false_positives, t.false_negatives) == (2, 6, 5)
    fp = {e.prediction: e for e in res.events if e.kind is EventKind.FALSE_POSITIVE}
    assert {i: e.error.value for i, e in fp.items()} == {
        1: "duplicate", 2: "classification", 3: "localization", 4: "both", 5: "background", 6: "background"}
    assert (fp[2].gt_id, fp[2].gt_category_id, fp[2].iou, fp[2].category, fp[2].score) == (12, A, 1.0, "b", 0.85)
    assert (fp[3].gt_id, fp[3].iou, fp[3].bbox, fp[3].file_name) == (13, pytest.approx(0.4), tuple(NARROW), "img3.jpg")
    assert (fp[1].gt_id, fp[1].iou) == (11, 1.0)
    assert (fp[5].gt_id, fp[5].iou) == (None, 0.0) and (fp[6].gt_id, fp[6].image_id) == (None, 7)
    fn = {e.gt_id: e for e in res.events if e.kind is EventKind.FALSE_NEGATIVE}
    assert {g: (e.error.value, e.prediction) for g, e in fn.items()} == {
        12: ("classification", 2), 13: ("localization", 3), 14: ("missed", None), 15: ("missed", None),
        16: ("missed", None)}
    assert fn[16].bbox == tuple(BOX) and fn[16].score is None and fn[16].category == "a"
    assert all(e.image_id != 9 for e in res.events)  # the prediction on the crowd region is ignored
    assert res.to_json()["events"][0]["kind"] in {"false_positive", "false_negative"}


def test_tide_delta_equals_pycocotools_on_hand_fixed_inputs():
    gt, preds = hand_made()
    t = analyse_errors(load_inputs(gt, preds)).tide
    base = map50(gt, preds)
    assert t.base == pytest.approx(base, abs=1e-12)

    def without(*idx):
        return [p for i, p in enumerate(preds) if i not in idx]

    fixed_cls = copy.deepcopy(preds)
    fixed_cls[2] = {"image_id": 2, "category_id": A, "bbox": BOX, "score": 0.85}
    fixed_loc = copy.deepcopy(preds)
    fixed_loc[3] = {"image_id": 3, "category_id": A, "bbox": BOX, "score": 0.80}
    gt_missed = copy.deepcopy(gt)
    gt_missed["annotations"] = [a for a in gt["annotations"] if a["id"] not in (14, 15, 16)]
    gt_fn = copy.deepcopy(gt)
    gt_fn["annotations"] = [a for a in gt["annotations"] if a["id"] not in (12, 13, 14, 15, 16)]
    expected = {
        ErrorType.CLASSIFICATION: map50(gt, fixed_cls),
        ErrorType.LOCALIZATION: map50(gt, fixed_loc),
        ErrorType.BOTH: map50(gt, without(4)),
        ErrorType.DUPLICATE: map50(gt, without(1)),
        ErrorType.BACKGROUND: map50(gt, without(5, 6)),
        ErrorType.MISSED: map50(gt_missed, preds),
    }
    for kind, value in expected.items():
        assert t.delta[kind] == pytest.approx(value - base, abs=1e-12), kind
        # each fix helps here (the errors score above the last true positive), except `both`: that prediction
        # is of class b, which has no ground truth and so no AP
        assert (t.delta[kind] == 0) if kind is ErrorType.BOTH else (t.delta[kind] > 0), kind
    assert t.false_positive_delta == pytest.approx(map50(gt, without(1, 2, 3, 4, 5, 6)) - base, abs=1e-12)
    assert t.false_negative_delta == pytest.approx(map50(gt_fn, preds) - base, abs=1e-12)
    # class b has no ground truth: mAP50 is class a's AP alone; 2 of 7 found, the first at precision 1
    # (recall thresholds 0–0.14), the second after 4 false positives at 2/6 (thresholds 0.15–0.28)
    assert base == pytest.approx((15 * 1.0 + 14 * 2 / 6) / 101, abs=1e-12)


def test_best_prediction_recovers_a_ground_truth_once():
    """Two localization errors on one ground truth: the higher-scoring one is fixed, the other removed."""
    gt, _ = hand_made()
    preds = [{"image_id": 3, "category_id": A, "bbox": NARROW, "score": 0.8},
             {"image_id": 3, "category_id": A, "bbox": [0.0, 0.0, 4.0, 10.0], "score": 0.9}]
    res = analyse_errors(load_inputs(gt, preds))
    assert res.tide.counts[ErrorType.LOCALIZATION] == 2 and res.tide.counts[ErrorType.MISSED] == 6
    fn13 = next(e for e in res.events if e.gt_id == 13 and e.kind is EventKind.FALSE_NEGATIVE)
    assert (fn13.error, fn13.prediction) == (ErrorType.LOCALIZATION, 1)
    fixed = [{"image_id": 3, "category_id": A, "bbox": BOX, "score": 0.9}]
    assert res.tide.delta[ErrorType.LOCALIZATION] == pytest.approx(map50(gt, fixed) - map50(gt, preds), abs=1e-12)


def test_confusion_matrix_exact_counts():
    gt, preds = hand_made()
    inputs = load_inputs(gt, preds)
    cm = detection_confusion(inputs, iou_threshold=0.5, score_threshold=0.0)
    assert cm.classes == ["a", "b", "background"]
    # rows: truth a, b, background; columns: predicted a, b, background
    assert cm.matrix.tolist() == [[2, 1, 4], [0, 0, 0], [4, 1, 0]]
    cm = detection_confusion(inputs, iou_threshold=0.5, score_threshold=0.75)
    assert cm.matrix.tolist() == [[1, 1, 5], [0, 0, 0], [2, 1, 0]]
    cm = detection_confusion(inputs, iou_threshold=0.3, score_threshold=0.0)  # NARROW pairs at IoU 0.4
    assert cm.matrix.tolist() == [[3, 2, 2], [0, 0, 0], [3, 0, 0]]
    assert cm.to_json()["rows"] == "ground truth" and np.asarray(cm.to_json()["matrix"]).sum() == cm.matrix.sum()


def test_errors_on_raccoon_partition_everything(raccoon_gt, raccoon_preds):
    """Every false positive and false negative is an event, consistent with COCO's matching at 0.5."""
    inputs = load_inputs(copy.deepcopy(raccoon_gt), raccoon_preds["bbox"])
    res = analyse_errors(inputs)
    t = res.tide
    ev = pycoco(raccoon_gt, raccoon_preds["bbox"], "bbox")
    tp = fp = 0
    for e in ev.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        matched, ignored = e["dtMatches"][0] > 0, e["dtIgnore"][0].astype(bool)
        tp += int((matched & ~ignored).sum())
        fp += int((~matched & ~ignored).sum())
    n_gt = sum(1 for a in raccoon_gt["annotations"] if not a["iscrowd"])
    assert (t.true_positives, t.false_positives, t.false_negatives) == (tp, fp, n_gt - tp)
    assert sum(e.kind is EventKind.FALSE_POSITIVE for e in res.events) == fp
    assert sum(e.kind is EventKind.FALSE_NEGATIVE for e in res.events) == n_gt - tp
    assert sum(v for k, v in t.counts.items() if k is not ErrorType.MISSED) == fp
    assert all(v > 0 for v in t.counts.values())
    assert t.base == pytest.approx(ev.stats[1], abs=1e-9)

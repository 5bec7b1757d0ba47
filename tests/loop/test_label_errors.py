"""Label-error detection: each kind on hand-made boxes (scores computed by hand), then raccoon with injected
errors against a simulated good model's out-of-sample predictions (each injected image must rank in the top 10 %)."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.loop.label_errors import ImageLabels, Kind, calibrated, calibration, rank_images, score_image

CAT = [0.0, 0.0, 100.0, 100.0]


def one(gt, gl, pb, pl, ps):
    return score_image(np.asarray(gt, float), gl, np.asarray(pb, float), pl, np.asarray(ps, float))


def test_agreeing_box_scores_low_on_every_kind():
    f = one([CAT], ["cat"], [[0, 0, 100, 90]], ["cat"], [0.9])
    assert len(f) == 1
    # misplaced 0.9 * (1 - 0.9) = 0.09, swapped 0, spurious 1 - 0.9 = 0.1: the largest is the finding
    assert (f[0].kind, f[0].annotation, f[0].prediction) == (Kind.SPURIOUS, 0, None)
    assert f[0].score == pytest.approx(0.1)
    assert f[0].iou == pytest.approx(0.9)


def test_missing_box_is_the_unexplained_confident_prediction():
    f = one([CAT], ["cat"], [[0, 0, 100, 100], [200, 200, 300, 260]], ["cat", "dog"], [0.95, 0.8])
    assert (f[0].kind, f[0].annotation, f[0].prediction, f[0].iou) == (Kind.MISSING, None, 1, 0.0)
    assert f[0].score == pytest.approx(0.8)
    assert (f[1].kind, f[1].score) == (Kind.SPURIOUS, pytest.approx(0.05))


def test_missing_on_an_image_without_annotations():
    f = one(np.zeros((0, 4)), [], [[10, 10, 50, 50]], ["cat"], [0.7])
    assert [(x.kind, x.prediction, x.score) for x in f] == [(Kind.MISSING, 0, pytest.approx(0.7))]


def test_misplaced_box_shifted_by_half_its_width():
    # annotation shifted right by 50: IoU with the object = 50*100 / 150*100 = 1/3
    f = one([[50, 0, 150, 100]], ["cat"], [CAT], ["cat"], [0.9])
    assert [(x.kind, x.annotation, x.prediction) for x in f] == [(Kind.MISPLACED, 0, 0)]
    assert f[0].score == pytest.approx(0.9 * (1 - 1 / 3))
    assert f[0].iou == pytest.approx(1 / 3)


def test_swapped_class():
    f = one([CAT], ["dog"], [[0, 0, 100, 90]], ["cat"], [0.9])
    assert [(x.kind, x.annotation, x.prediction) for x in f] == [(Kind.SWAPPED, 0, 0)]
    assert f[0].score == pytest.approx(0.9 * 0.9)


def test_swap_is_weighed_against_the_own_class():
    # the model says cat (0.9) and dog (0.3) on a box labelled dog: swapped = 0.9*0.9 - 0.3*1.0
    f = one([CAT], ["dog"], [[0, 0, 100, 90], CAT], ["cat", "dog"], [0.9, 0.3])
    assert (f[0].kind, f[0].prediction) == (Kind.SWAPPED, 0)
    assert f[0].score == pytest.approx(0.81 - 0.3)
    assert len(f) == 1  # both predictions are the annotation's partners: no missing box


def test_spurious_box_with_no_prediction_near():
    f = one([CAT, [300, 300, 350, 350]], ["cat", "cat"], [CAT, [320, 320, 400, 400]], ["cat", "cat"], [0.9, 0.04])
    assert (f[0].kind, f[0].annotation, f[0].prediction) == (Kind.SPURIOUS, 1, None)
    assert f[0].score == pytest.approx(1 - 0.04)
    # the faint box touches the annotation (IoU 900 / 8000 > OVERLAP), so it is its partner, not a missing box
    assert f[0].iou == pytest.approx(900 / 8000)
    assert [(x.kind, x.annotation, x.prediction) for x in f[1:]] == [(Kind.SPURIOUS, 0, None)]


def test_second_object_next_to_an_annotation_is_missing_not_explained():
    # a second cat overlaps the annotated one a little (IoU 0.2 > OVERLAP): it is not the annotation's partner
    second = [66.66666666666667, 0, 166.66666666666669, 100]
    f = one([CAT], ["cat"], [CAT, second], ["cat", "cat"], [0.9, 0.8])
    assert (f[0].kind, f[0].prediction) == (Kind.MISSING, 1)
    assert f[0].score == pytest.approx(0.8 * (1 - 0.2))


def test_rank_images_orders_by_worst_finding_then_sum_then_id():
    def im(i, gt, gl, pb, pl, ps):
        return ImageLabels(i, f"{i}.jpg", np.asarray(gt, float).reshape(-1, 4), gl, list(range(10 * i, 10 * i + len(gl))),
                           np.asarray(pb, float).reshape(-1, 4), pl, np.asarray(ps, float))

    ranked = rank_images(calibrate=False, images=[
        im(1, [CAT], ["cat"], [CAT], ["cat"], [1.0]),  # clean: 0
        im(2, [CAT], ["dog"], [CAT], ["cat"], [0.9]),  # swapped 0.9
        im(3, [CAT], ["cat"], [CAT, [200, 200, 300, 300]], ["cat", "cat"], [0.6, 0.5]),  # spurious 0.4, missing 0.5
        im(4, [], [], [], [], []),  # nothing: 0
    ])
    assert [r.image_id for r in ranked] == [2, 3, 1, 4]
    top = ranked[0].findings[0]
    assert (top.kind, top.annotation_id, top.label, top.fix_label, top.fix) == ("swapped", 20, "dog", "cat",
                                                                                "change the class to cat")
    assert ranked[1].findings[0].fix == "add the box (cat at 200, 200, 300, 300)"
    assert ranked[2].findings == []  # a perfect match scores 0 < MIN_FINDING


def test_duplicate_prediction_is_not_a_missing_box():
    # the second cat box overlaps the first prediction at IoU 0.8: a duplicate, whatever its IoU with the annotation
    f = one([CAT], ["cat"], [CAT, [0, 0, 100, 80], [0, 0, 100, 45]], ["cat", "cat", "dog"], [0.9, 0.6, 0.5])
    assert [(x.kind, x.prediction) for x in f] == [(Kind.MISSING, 2), (Kind.SPURIOUS, None)]
    assert f[0].score == pytest.approx(0.5 * (1 - 0.45))


def test_calibration_is_the_median_confirmed_score_per_class():
    def im(i, gt, gl, pb, pl, ps):
        return ImageLabels(i, f"{i}.jpg", np.asarray(gt, float).reshape(-1, 4), gl, list(range(len(gl))),
                           np.asarray(pb, float).reshape(-1, 4), pl, np.asarray(ps, float))

    images = [im(1, [CAT], ["cat"], [CAT, CAT], ["cat", "cat"], [0.4, 0.6]),  # best confirming: 0.6
              im(2, [CAT], ["cat"], [[0, 0, 100, 40]], ["cat"], [0.9]),  # IoU 0.4: confirms nothing
              im(3, [CAT], ["cat"], [[0, 0, 100, 60]], ["cat"], [0.3]),  # IoU 0.6: 0.3
              im(4, [CAT], ["cat"], [CAT], ["dog"], [0.8]),  # another class: confirms nothing
              im(5, [CAT], ["dog"], [CAT], ["dog"], [0.5])]
    scale = calibration(images)
    assert scale == {"cat": pytest.approx(0.45), "dog": pytest.approx(0.5)}
    assert calibrated(np.asarray([0.3, 0.9, 0.25, 0.7]), ["cat", "cat", "dog", "bird"], scale).tolist() == \
        pytest.approx([0.3 / 0.45, 1.0, 0.5, 0.7])
    # ranked with the calibration: image 3's box scored 0.3 is a typical confirmed box for this model (0.3 / 0.45)
    ranked = {r.image_id: r for r in rank_images(images)}
    assert ranked[3].findings[0].kind == "spurious"
    assert ranked[3].score == pytest.approx(1 - 0.3 / 0.45)


# -- raccoon: a simulated good model against injected errors -------------------------------------------------------
PER_KIND = 4


def _iou(a, b) -> float:
    from visionloop.core.geometry import box_iou_matrix

    return float(box_iou_matrix(np.asarray([a], float), np.asarray([b], float))[0, 0])


@pytest.fixture(scope="module")
def raccoon_case(raccoon, tmp_path_factory):
    """Raccoon imported with the ordinary ingest; a two-class variant (each box `a` or `b`, seeded); a good
    model's out-of-sample predictions simulated from these ORIGINAL labels (each box jittered by up to 3 px,
    scores 0.8-0.99, plus 30 seeded false positives scoring 0.05-0.3); then errors injected into the labels,
    PER_KIND images each: a box removed, a box shifted by half its width and height (clipped to the image;
    only where that leaves IoU <= 0.5 with the object), a box's class swapped, a box added where no box is."""
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.store import tags as tag_store

    store = Store.init(tmp_path_factory.mktemp("le") / "project")
    import_dataset(store, raccoon)
    images = tag_store.images(store)
    boxes = tag_store.boxes(store, [im.id for im in images])
    size = {s.image.file_name: (s.image.width, s.image.height) for s in store.samples()}
    store.close()
    assert len(images) == 200 and sum(len(b) for b in boxes.values()) == 217
    rng = np.random.default_rng(0)
    labels = {im.id: [["a", "b"][int(rng.integers(2))] for _ in boxes[im.id]] for im in images}
    inputs = {}
    for im in images:
        gt = np.asarray([b.box for b in boxes[im.id]], float).reshape(-1, 4)
        pb = gt + rng.uniform(-3, 3, gt.shape)
        pl = list(labels[im.id])
        ps = rng.uniform(0.8, 0.99, len(gt))
        inputs[im.id] = ImageLabels(im.id, im.file_name, gt.copy(), list(labels[im.id]), [b.id for b in boxes[im.id]],
                                    pb, pl, ps, im.sha256)
    for i in rng.choice([im.id for im in images], 30, replace=False).tolist():  # faint false positives
        w, h = size[inputs[i].file_name]
        x0, y0 = rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.7)
        x = inputs[i]
        x.pred_boxes = np.vstack([x.pred_boxes, [x0, y0, x0 + w * 0.2, y0 + h * 0.2]])
        x.pred_labels.append(["a", "b"][int(rng.integers(2))])
        x.pred_scores = np.append(x.pred_scores, rng.uniform(0.05, 0.3))
    truth = {}  # image id -> (kind, annotation id or None, the box the fix must name)
    order = rng.permutation([im.id for im in images]).tolist()
    for kind in ("missing", "misplaced", "swapped", "spurious"):
        n = 0
        while n < PER_KIND:
            i = order.pop()
            x = inputs[i]
            w, h = size[x.file_name]
            if kind == "spurious":
                bw, bh = w * 0.2, h * 0.2
                spots = [[x0, y0, x0 + bw, y0 + bh] for x0 in np.linspace(0, w - bw, 9) for y0 in np.linspace(0, h - bh, 9)]
                free = [s for s in spots if all(_iou(s, b) == 0 for b in x.boxes)
                        and all(_iou(s, b) == 0 for b in x.pred_boxes)]
                if not free:
                    continue
                x.boxes = np.vstack([x.boxes, free[int(rng.integers(len(free)))]])
                x.labels.append("a")
                x.annotation_ids.append(-i)  # a new annotation
                truth[i] = (kind, -i, None)
            else:
                if not len(x.boxes):
                    continue
                k = int(rng.integers(len(x.boxes)))
                aid = x.annotation_ids[k]
                if kind == "missing":
                    truth[i] = (kind, None, x.pred_boxes[k].tolist())
                    x.boxes = np.delete(x.boxes, k, axis=0)
                    del x.labels[k], x.annotation_ids[k]
                elif kind == "swapped":
                    x.labels[k] = "b" if x.labels[k] == "a" else "a"
                    truth[i] = (kind, aid, x.pred_boxes[k].tolist())
                else:
                    b = x.boxes[k]
                    dx, dy = (b[2] - b[0]) / 2, (b[3] - b[1]) / 2
                    sx = 1 if b[2] + dx <= w else -1
                    sy = 1 if b[3] + dy <= h else -1
                    moved = np.clip(b + [sx * dx, sy * dy, sx * dx, sy * dy], 0, [w, h, w, h])
                    if _iou(moved, b) > 0.5:
                        continue
                    x.boxes[k] = moved
                    truth[i] = (kind, aid, x.pred_boxes[k].tolist())
            n += 1
    return list(inputs.values()), truth


def test_raccoon_injected_errors_rank_in_the_top_ten_percent(raccoon_case):
    inputs, truth = raccoon_case
    ranked = rank_images(inputs)
    assert len(ranked) == 200 and len(truth) == 4 * PER_KIND
    top = [r.image_id for r in ranked[:20]]  # the top 10 %
    for kind in ("missing", "misplaced", "swapped", "spurious"):
        ids = sorted(i for i, t in truth.items() if t[0] == kind)
        assert len(ids) == PER_KIND
        assert set(ids) <= set(top), (kind, ids, top)
    injected = [r for r in ranked if r.image_id in truth]
    clean = [r for r in ranked if r.image_id not in truth]
    assert max(r.score for r in clean) < min(r.score for r in injected)
    assert set(r.image_id for r in ranked[:len(truth)]) == set(truth)


def test_raccoon_findings_name_the_kind_the_annotation_and_the_fix(raccoon_case):
    inputs, truth = raccoon_case
    by_id = {r.image_id: r for r in rank_images(inputs)}
    for i, (kind, aid, fix_box) in truth.items():
        f = by_id[i].findings[0]
        assert (f.kind, f.annotation_id) == (kind, aid), (i, f)
        if fix_box is None:
            assert f.fix_box is None and f.fix == "delete the box"
        else:
            assert f.fix_box == pytest.approx(fix_box)
        if kind == "swapped":
            assert f.fix_label == ("b" if f.label == "a" else "a")


def test_each_fold_model_is_calibrated_on_its_own_images():
    def im(i, fold, score):  # one confirmed cat, and a faint one nobody labelled
        return ImageLabels(i, f"{i}.jpg", np.asarray([CAT], float), ["cat"], [i],
                           np.asarray([CAT, [200, 200, 300, 300]], float), ["cat", "cat"],
                           np.asarray([score, score / 2]), fold=fold)

    ranked = {r.image_id: r for r in rank_images([im(1, 1, 0.4), im(2, 1, 0.4), im(3, 2, 0.8), im(4, 2, 0.8)])}
    # fold 1's model confirms at 0.4, fold 2's at 0.8: each faint box is half its model's confirmed score
    assert {i: r.kind for i, r in ranked.items()} == {i: "missing" for i in (1, 2, 3, 4)}
    assert [ranked[i].score for i in (1, 2, 3, 4)] == pytest.approx([0.5] * 4)
    # one model (no folds): one calibration, the median 0.6 of both confirmed scores
    joint = {r.image_id: r.score for r in rank_images([im(1, None, 0.4), im(3, None, 0.8)])}
    assert joint == {1: pytest.approx(0.2 / 0.6), 3: pytest.approx(0.4 / 0.6)}

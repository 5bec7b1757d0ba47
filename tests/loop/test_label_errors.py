"""Label-error detection: each kind on hand-made boxes (scores computed by hand), then raccoon with injected
errors against a simulated good model's out-of-sample predictions (each injected image must rank in the top 10 %)."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.loop.label_errors import ImageLabels, Kind, rank_images, score_image

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

    ranked = rank_images([
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

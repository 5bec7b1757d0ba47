"""Classification and semantic-segmentation metrics: exact values on hand-made labels."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.core.errors import VisionLoopError
from visionloop.evaluate import (
    SemanticConfusion,
    classification_metrics,
    multilabel_metrics,
    semantic_metrics,
)


def test_single_label():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["cat", "dog", "fox"])
    assert m.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.accuracy == pytest.approx(4 / 6)
    got = [(c.name, c.precision, c.recall, c.f1, c.support) for c in m.per_class]
    assert got == [("cat", 0.5, 0.5, 0.5, 2), ("dog", pytest.approx(2 / 3), 1.0, pytest.approx(0.8), 2),
                   ("fox", 1.0, 0.5, pytest.approx(2 / 3), 2)]
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m.macro_precision == pytest.approx((0.5 + 2 / 3 + 1) / 3) and m.micro_f1 == m.accuracy
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.05  # argmax of [N, K] scores
    assert classification_metrics([0, 0, 1, 1, 2, 2], scores, 3).confusion.tolist() == m.confusion.tolist()
    none = classification_metrics([0, 0], [0, 0], ["a", "b"])  # a class never seen nor predicted: zeros
    assert (none.per_class[1].precision, none.per_class[1].recall, none.per_class[1].support) == (0.0, 0.0, 0)
    with pytest.raises(VisionLoopError, match="not a class index"):
        classification_metrics([0, 3], [0, 1], 3)
    with pytest.raises(VisionLoopError, match="do not match"):
        classification_metrics([0, 1, 2], [0, 1], 3)


def test_multi_label():
    truth = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    scores = [[0.9, 0.2, 0.4], [0.1, 0.8, 0.6], [0.7, 0.3, 0.1]]
    m = multilabel_metrics(truth, scores, ["a", "b", "c"], threshold=0.5)
    got = [(c.precision, c.recall, c.f1, c.support) for c in m.per_class]
    assert got == [(1.0, 1.0, 1.0, 2), (1.0, 0.5, pytest.approx(2 / 3), 2), (0.0, 0.0, 0.0, 1)]
    assert m.accuracy == 0.0  # no sample has every label right
    assert m.micro_f1 == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert m.confusion.tolist() == [[[1, 0], [0, 2]], [[1, 0], [1, 1]], [[1, 1], [1, 0]]]  # [[tn, fp], [fn, tp]]
    assert multilabel_metrics(truth, truth, 3).accuracy == 1.0
    assert m.to_json()["multi_label"] is True


def test_semantic_iou():
    truth = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 2]])
    m = semantic_metrics([(truth, pred)], ["road", "car", "sky", "boat"])
    assert m.confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m.iou == [0.5, pytest.approx(2 / 3), 1.0, None]  # boat: in neither, not counted
    assert m.miou == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert m.pixel_accuracy == pytest.approx(4 / 5) and m.class_accuracy == [0.5, 1.0, 1.0, None]
    acc = SemanticConfusion(4)  # accumulated over maps equals one pass over both
    acc.update(truth, pred)
    acc.update(truth, pred)
    assert acc.result().iou == m.iou and int(acc.matrix.sum()) == 10
    with pytest.raises(VisionLoopError, match="differ in shape"):
        acc.update(truth, pred[:1])
    with pytest.raises(VisionLoopError, match="not a class"):
        acc.update(np.array([[7]]), np.array([[0]]))

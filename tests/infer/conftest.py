"""Tiny deterministic ONNX "detectors" built with onnx.helper (no training, no torch).

`square_detector(size)`: finds bright 12 px squares exactly. The grid has stride 4; the anchor at
cell (i, j) owns the box [4j - 4, 4i - 4, 4j + 8, 4i + 8] (input pixels) and its score is the mean
brightness (0..1) of that box (an average pool, padding counted as black). A white 12 px square
on black whose corner is a multiple of 4 therefore scores exactly 1.0 on its own anchor; the
anchors beside it score at most 8/12, so conf 0.9 keeps only exact boxes. Shrunk 4x (a whole
large image squeezed into the input) the same square scores ~1/16: small objects vanish unless
the image is tiled.

`fixed_detector(size, boxes)`: returns the same boxes (input pixels) with given scores for any
input: what the tile merge does with them is then known exactly.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inits, size: int, anchors: int, classes: list[str], resize: str) -> bytes:
    graph = helper.make_graph(
        nodes, "fake",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, anchors, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, anchors, len(classes)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pre = {"width": size, "height": size, "resize": resize}
    for k, v in {"visionloop.preprocessing": json.dumps(pre), "visionloop.classes": json.dumps(classes),
                 "visionloop.task": "detect"}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def square_detector(size: int = 64, classes: tuple[str, ...] = ("square",), resize: str = "fit") -> bytes:
    g = size // 4
    jj, ii = np.meshgrid(np.arange(g), np.arange(g))
    boxes = np.stack([4 * jj - 4, 4 * ii - 4, 4 * jj + 8, 4 * ii + 8], -1).reshape(1, g * g, 4).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("Div", ["gray", "c255"], ["unit"]),
        helper.make_node("AveragePool", ["unit"], ["pooled"], kernel_shape=[12, 12], strides=[4, 4],
                         pads=[4, 4, 4, 4], count_include_pad=1),
        helper.make_node("Reshape", ["pooled", "shape"], ["one"]),
        helper.make_node("Tile", ["one", "reps"], ["scores"]),
        helper.make_node("Identity", ["anchor_boxes"], ["boxes"]),
    ]
    inits = [numpy_helper.from_array(np.array(255, np.float32), "c255"),
             numpy_helper.from_array(np.array([1, g * g, 1], np.int64), "shape"),
             numpy_helper.from_array(np.array([1, 1, len(classes)], np.int64), "reps"),
             numpy_helper.from_array(boxes, "anchor_boxes")]
    return _model(nodes, inits, size, g * g, list(classes), resize)


def fixed_detector(size: int, boxes: list[list[float]], scores: list[list[float]],
                   classes: tuple[str, ...] = ("a", "b"), resize: str = "fit") -> bytes:
    b = np.asarray(boxes, np.float32)[None]
    s = np.asarray(scores, np.float32)[None]
    nodes = [  # the outputs depend on the input (times zero) so that the runtime keeps it
        helper.make_node("ReduceMax", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["const_boxes", "z"], ["boxes"]),
        helper.make_node("Add", ["const_scores", "z"], ["scores"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(b, "const_boxes"), numpy_helper.from_array(s, "const_scores")]
    return _model(nodes, inits, size, b.shape[1], list(classes), resize)


@pytest.fixture(scope="session")
def squares_onnx() -> bytes:
    return square_detector(64)


@pytest.fixture(scope="session")
def make_fixed():
    """`fixed_detector` (a builder: test modules here are not a package)."""
    return fixed_detector

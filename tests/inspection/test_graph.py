"""Serving-time graph rewrites give the same numbers: Softmax moved to the last axis."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from inspection.inference.cards import resolve_model_dir
from inspection.inference.graph import last_axis_softmax, serving_bytes
from tests.conftest import REPO


def softmax_model(axis: int, opset: int = 18) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 5])
    node = helper.make_node("Softmax", ["x"], ["y"], name="dfl", axis=axis)
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0])


def test_softmax_over_axis_1_is_rewritten_and_gives_the_same_values():
    x = np.random.default_rng(0).normal(size=(1, 16, 4, 5)).astype(np.float32) * 4
    model = softmax_model(axis=1)
    assert last_axis_softmax(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Transpose", "Softmax", "Transpose"]
    got = run(model, x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_last_axis_and_old_opsets_are_left_alone():
    for model in (softmax_model(axis=-1), softmax_model(axis=3), softmax_model(axis=1, opset=12)):
        before = model.SerializeToString()
        assert last_axis_softmax(model) == 0
        assert model.SerializeToString() == before


def test_shipped_defect_model_rewritten_gives_identical_outputs(tmp_path):
    path = resolve_model_dir(REPO / "weights" / "defect-yolov8n") / "model.onnx"
    rewritten = serving_bytes(path)
    assert rewritten is not None
    x = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    a = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    np.testing.assert_allclose(b.run(None, {name: x})[0], a.run(None, {name: x})[0], rtol=1e-5, atol=1e-4)
    assert b.get_modelmeta().custom_metadata_map == a.get_modelmeta().custom_metadata_map
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    assert serving_bytes(junk) is None

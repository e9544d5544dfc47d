"""Serving-time rewrites of an ONNX graph: same numbers, less time in ONNX Runtime.

YOLOv8's DFL takes a Softmax over axis 1 of a (batch, 16, 4, anchors) tensor. ONNX
Runtime's CPU Softmax is fast on the last axis and slow on any other (profiled here on
the defect model at 640: 11-12 ms of a 72-120 ms run on one core, for one node). Moving
the axis last with a Transpose, taking the Softmax there and moving it back gives the
same values for a fraction of the time. The file on disk is never changed: the detector
builds its session from the rewritten bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnx import helper

log = logging.getLogger(__name__)


def _rank(model: onnx.ModelProto, name: str) -> int | None:
    for vi in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    return None


def last_axis_softmax(model: onnx.ModelProto) -> int:
    """Rewrite in place every Softmax over a non-last axis as Transpose -> Softmax(-1) -> Transpose.

    Only for opset 13 and later (earlier Softmax flattens from ``axis`` on, a different
    operation). Returns the number of nodes rewritten.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13 or not any(n.op_type == "Softmax" for n in model.graph.node):
        return 0  # nothing to do: skip the shape inference
    inferred = onnx.shape_inference.infer_shapes(model)
    nodes = list(model.graph.node)
    out: list[onnx.NodeProto] = []
    done = 0
    for node in nodes:
        rank = _rank(inferred, node.input[0]) if node.op_type == "Softmax" and node.domain in ("", "ai.onnx") else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if rank is None or axis in (-1, rank - 1):
            out.append(node)
            continue
        axis %= rank
        perm = [i for i in range(rank) if i != axis] + [axis]
        inverse = [perm.index(i) for i in range(rank)]
        moved, soft = f"{node.output[0]}__last_axis_in", f"{node.output[0]}__last_axis_out"
        out += [
            helper.make_node("Transpose", [node.input[0]], [moved], name=f"{node.name}__to_last", perm=perm),
            helper.make_node("Softmax", [moved], [soft], name=f"{node.name}__last", axis=-1),
            helper.make_node("Transpose", [soft], [node.output[0]], name=f"{node.name}__back", perm=inverse),
        ]
        done += 1
    if done:
        del model.graph.node[:]
        model.graph.node.extend(out)
    return done


def serving_bytes(path: Path) -> bytes | None:
    """The model at ``path`` with the serving rewrites, or None when none applies (or it is not ONNX)."""
    try:
        model = onnx.load(str(path))
    except Exception:  # not a model: ONNX Runtime reports it with its own words
        return None
    if not last_axis_softmax(model):
        return None
    log.debug("%s: Softmax moved to the last axis for ONNX Runtime", path)
    return model.SerializeToString()

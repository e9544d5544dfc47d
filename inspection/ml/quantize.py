"""INT8 static quantization of an exported YOLOv8 ONNX model with ONNX Runtime.

QDQ format, per-channel weights, activations calibrated on real images of the dataset
(letterboxed exactly as the serving path does). The Detect head's outputs stay in fp32:
its last 1x1 convolutions (box distributions and class logits), DFL, box decoding,
sigmoid and concat: quantizing those with one scale collapses accuracy (measured here
once: mAP50 fell to zero). Its hidden 3x3 convolutions (``cv2.i.0/1``, ``cv3.i.0/1``)
are quantized like the backbone: kept in fp32 they cost more than the whole quantized
backbone (profiled here: 26 ms of 90 on one core). The result must be checked by
``twinspect eval`` every time; the registry records its metrics next to the fp32 ones.
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from inspection.core.errors import ModelError
from inspection.inference.preprocess import letterbox, to_tensor
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.images import read_image

HEAD_PREFIX = "/model.22/"
HEAD_HIDDEN = re.compile(r"^/model\.22/cv[23]\.\d+/cv[23]\.\d+\.[01]/")  # 3x3 conv + SiLU layers of the head


def fp32_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes left unquantized: the Detect head, except its hidden conv layers."""
    return [n.name for n in model.graph.node if n.name.startswith(HEAD_PREFIX) and not HEAD_HIDDEN.match(n.name)]


class _Images(CalibrationDataReader):
    def __init__(self, input_name: str, imgsz: tuple[int, int], files: list[Path]) -> None:
        self.input_name, self.imgsz = input_name, imgsz
        self._files = iter(files)

    def get_next(self) -> dict[str, np.ndarray] | None:
        path = next(self._files, None)
        if path is None:
            return None
        return {self.input_name: to_tensor([letterbox(read_image(path), self.imgsz)[0]])}


def calibration_images(data: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` training images of a dataset, chosen reproducibly."""
    spec = load_data_yaml(data)
    files = spec.images("train")
    if not files:
        raise ModelError(f"{data}: no training images to calibrate on")
    random.Random(seed).shuffle(files)
    return files[:count]


def quantize_int8(fp32: Path, data: Path, out: Path | None = None, calibration: int = 64) -> Path:
    """Write ``<stem>.int8.onnx`` beside ``fp32`` (or at ``out``) and return its path."""
    fp32 = Path(fp32)
    if fp32.suffix != ".onnx" or not fp32.is_file():
        raise ModelError(f"{fp32}: INT8 quantization needs an exported .onnx file")
    out = out or fp32.with_name(fp32.stem + ".int8.onnx")
    model = onnx.load(str(fp32))
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    imgsz = (dims[2].dim_value, dims[3].dim_value)
    if not all(imgsz):
        raise ModelError(f"{fp32}: needs a fixed input size (export without dynamic height/width)")
    head = fp32_nodes(model)
    files = calibration_images(data, calibration)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Images(inp.name, imgsz, files),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head,
        )
    # keep the class names and image size the serving path reads
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    for prop in model.metadata_props:
        quantized.metadata_props.append(prop)
    onnx.save(quantized, str(out))
    return out

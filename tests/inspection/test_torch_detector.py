"""The PyTorch serving path (TorchDetector) against the ONNX path, on the CPU (the GPU runs the same code in fp16).

Same weights, same boards: the letterbox on the device, the batched NMS and the mapping back must give
the ONNX Runtime path's boxes. On a GPU, bench/gpu_bench.sh reports fp16's agreement with fp32 beside
its speed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.core.detections import Detections
from inspection.core.errors import ModelError
from inspection.inference.models import load_detector
from inspection.inference.nms import box_iou
from inspection.inference.onnx_detector import OnnxDetector
from inspection.inference.torch_detector import TorchDetector, pick_device
from tests.conftest import REPO, deeppcb_source

pytestmark = pytest.mark.usefixtures("plain_model")  # v1's fp32 ONNX file, exported once

DEFECT = REPO / "weights" / "defect-yolov8n-v1"  # the plain-image model: its fp32 ONNX comes from plain_model
pytestmark = pytest.mark.usefixtures("plain_model")


@pytest.fixture(scope="module")
def boards() -> list[np.ndarray]:
    pcb = deeppcb_source() / "PCBData"
    files = sorted(pcb.glob("group*/*/*_test.jpg"))[:4]
    imgs = [np.asarray(cv2.imread(str(f))) for f in files]
    # a camera-sized frame (resized on the device) and a grey one, in the same batch
    return [*imgs, cv2.resize(imgs[0], (1280, 720)), cv2.cvtColor(imgs[1], cv2.COLOR_BGR2GRAY)]


@pytest.fixture(scope="module")
def torch_det() -> TorchDetector:
    import torch

    torch.set_num_threads(1)  # the suite's host is busy; one thread is the steadiest
    return TorchDetector(DEFECT / "model.pt", device="cpu")


def _same(a: Detections, b: Detections, min_iou: float) -> None:
    assert len(a) == len(b)
    if len(a):
        iou = box_iou(a.xyxy, b.xyxy)
        assert iou.max(axis=1).min() >= min_iou
        order_a, order_b = np.argsort(-a.confidence), np.argsort(-b.confidence)
        assert (a.class_id[order_a] == b.class_id[order_b]).all()
        assert np.allclose(a.confidence[order_a], b.confidence[order_b], atol=5e-3)


def test_torch_path_gives_the_onnx_paths_boxes(boards: list[np.ndarray], torch_det: TorchDetector) -> None:
    onnx = OnnxDetector(DEFECT / "model.onnx")
    ours, theirs = torch_det.detect(boards), onnx.detect(boards)
    assert sum(len(d) for d in theirs) > 10  # real defects found, so the comparison means something
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        _same(a, b, 0.99 if i == 4 else 0.999)  # the resized frame: bilinear on the device vs cv2's
    assert torch_det.class_names == onnx.class_names and torch_det.imgsz == onnx.imgsz


def test_a_batch_gives_what_each_image_gives_alone(boards: list[np.ndarray], torch_det: TorchDetector) -> None:
    batched = torch_det.detect(boards)
    for img, det in zip(boards, batched, strict=True):
        _same(torch_det.detect([img])[0], det, 0.999)
    assert torch_det.detect([]) == []


def test_max_det_caps_each_image(boards: list[np.ndarray]) -> None:
    det = TorchDetector(DEFECT / "model.pt", device="cpu", max_det=2)
    assert [len(d) for d in det.detect(boards[:3])] == [2, 2, 2]


def test_load_detector_serves_pt_with_the_torch_path() -> None:
    det = load_detector(DEFECT, backend="torch", device="cpu")
    assert isinstance(det, TorchDetector) and det.provider == "torch:cpu:fp32"


def test_device_choice_and_bad_files(tmp_path: Path) -> None:
    import torch

    assert pick_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            pick_device("cuda")
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a YOLO model"):
        TorchDetector(bad, device="cpu")
    with pytest.raises(ModelError, match="not found"):
        TorchDetector(tmp_path / "missing.pt", device="cpu")

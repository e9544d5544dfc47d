"""Execution providers: TensorRT -> CUDA -> CPU, chosen by the product, a clean and logged fallback to the CPU.

This machine's onnxruntime is the CPU build, so a GPU box is simulated two ways: the build claims
CUDA and TensorRT (ONNX Runtime then opens the session on the CPU by itself: the case of a GPU
wheel without its CUDA libraries), and a session that fails to open on the GPU provider.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inspection.core.errors import ModelError
from inspection.inference import onnx_detector
from inspection.inference.models import concurrency
from inspection.inference.onnx_detector import DEFAULT_PROVIDERS, OnnxDetector, pick_providers, provider_options

PART = Path(__file__).resolve().parents[2] / "weights" / "part-yolov8n"
GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

# ONNX Runtime's own warning when the simulated GPU build asks this CPU build for CUDA: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Specified provider .* is not in available provider names")


def _part_onnx() -> Path:
    from inspection.inference.models import weights_file

    return weights_file(PART)


def test_cpu_build_skips_the_gpu_providers_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    onnx_detector._reported.clear()
    with caplog.at_level(logging.DEBUG, logger="inspection.inference.onnx_detector"):
        assert pick_providers(DEFAULT_PROVIDERS) == ["CPUExecutionProvider"]
    assert "has no TensorrtExecutionProvider, CUDAExecutionProvider; using CPUExecutionProvider" in caplog.text
    assert concurrency(DEFAULT_PROVIDERS, cores=2) == (2, 1)  # the CPU layout: one runner per core


def test_gpu_build_orders_tensorrt_then_cuda_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(reversed(GPU_BUILD)))
    assert pick_providers(DEFAULT_PROVIDERS) == GPU_BUILD
    assert pick_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == GPU_BUILD[1:]
    assert concurrency(DEFAULT_PROVIDERS, cores=16) == (1, 0)  # one runner on a GPU, ONNX Runtime's threads
    opts = provider_options(GPU_BUILD, cache_dir=Path("/cache"))
    assert opts[0]["trt_fp16_enable"] == "True" and opts[0]["trt_engine_cache_path"] == "/cache"
    assert opts[1:] == [{}, {}]


def test_no_wanted_provider_is_an_error() -> None:
    with pytest.raises(ModelError, match="none of"):
        pick_providers(["CUDAExecutionProvider"])


def test_gpu_provider_that_does_not_load_falls_back_to_cpu_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The build lists CUDA and TensorRT, but the session runs on the CPU: served, and logged as a fallback."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_BUILD)
    with caplog.at_level(logging.INFO, logger="inspection.inference.onnx_detector"):
        det = OnnxDetector(_part_onnx())
    assert det.provider == "CPUExecutionProvider"
    assert "asked for TensorrtExecutionProvider, ONNX Runtime runs it on CPUExecutionProvider (fallback)" in caplog.text
    assert len(det.detect([np.zeros((720, 1280, 3), np.uint8)])) == 1  # it serves


def test_session_that_fails_on_the_gpu_opens_again_on_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = ort.InferenceSession
    asked: list[list[str]] = []

    def session(model, opts, providers, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(list(providers))
        if providers[0] != "CPUExecutionProvider":
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(model, opts, providers=providers, **kwargs)

    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_BUILD)
    monkeypatch.setattr(ort, "InferenceSession", session)
    with caplog.at_level(logging.WARNING, logger="inspection.inference.onnx_detector"):
        det = OnnxDetector(_part_onnx())
    assert asked == [GPU_BUILD, ["CPUExecutionProvider"]]
    assert det.provider == "CPUExecutionProvider"
    assert "could not open on TensorrtExecutionProvider (CUDA failure 100" in caplog.text
    assert "falling back to CPUExecutionProvider" in caplog.text


def test_gpu_only_config_does_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that lists no CPU provider asked for a GPU or nothing: the failure is the answer."""

    def session(model, opts, providers, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")

    monkeypatch.setattr(ort, "get_available_providers", lambda: GPU_BUILD)
    monkeypatch.setattr(ort, "InferenceSession", session)
    with pytest.raises(RuntimeError, match="CUDA failure"):
        OnnxDetector(_part_onnx(), providers=["CUDAExecutionProvider"])

"""The serving-path detector: ONNX Runtime with our letterbox and NMS. No torch import."""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inspection.core.detections import Detections
from inspection.core.errors import ModelError
from inspection.inference.graph import serving_bytes
from inspection.inference.nms import decode
from inspection.inference.preprocess import Letterbox, as_bgr, letterbox, to_tensor

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def pick_providers(wanted: Sequence[str]) -> list[str]:
    """The wanted providers that this ONNX Runtime build offers, in the wanted order.

    A wanted provider this build lacks (the CPU-only ``onnxruntime`` wheel has no CUDA or
    TensorRT) is skipped and logged once per process, so a GPU box that got the CPU wheel says so.
    """
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available]
    if not chosen:
        raise ModelError(f"providers: none of {list(wanted)} is available (have {sorted(available)})")
    missing = tuple(p for p in wanted[: wanted.index(chosen[0])] if p not in available)
    if missing and missing not in _reported:
        _reported.add(missing)
        # said aloud only where an NVIDIA device exists (a GPU box that got the CPU wheel); quiet on a CPU box
        log.log(
            logging.INFO if os.path.exists("/dev/nvidiactl") else logging.DEBUG,
            "ONNX Runtime %s (%s) has no %s; using %s",
            ort.__version__,
            ort.get_device(),
            ", ".join(missing),
            chosen[0],
        )
    return chosen


_reported: set[tuple[str, ...]] = set()


def provider_options(providers: Sequence[str], cache_dir: Path | None = None) -> list[dict[str, str]]:
    """Options for each provider: TensorRT builds fp16 engines and caches them (the first build of a
    model takes minutes; later starts read the cache); the others keep ONNX Runtime's defaults."""
    cache = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twinspect" / "tensorrt"
    out: list[dict[str, str]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            out.append(
                {
                    "trt_fp16_enable": "True",
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": "True",
                }
            )
        else:  # CUDA: its defaults (exhaustive cuDNN algorithm search once per shape)
            out.append({})
    return out


def open_session(
    model: str | bytes, opts: ort.SessionOptions, wanted: Sequence[str], name: str
) -> ort.InferenceSession:
    """An InferenceSession on the first wanted provider that works, falling back to the CPU, logged.

    ONNX Runtime itself drops a GPU provider that fails to load (missing CUDA libraries, no device)
    with a warning on stderr only; here a session that did not get the provider asked for, or that
    failed to open on it, is logged as a fallback and (if it failed) opened again on the CPU provider.
    """
    chosen = pick_providers(wanted)
    try:
        session = ort.InferenceSession(model, opts, providers=chosen, provider_options=provider_options(chosen))
    except ort.capi.onnxruntime_pybind11_state.InvalidProtobuf:  # type: ignore[attr-defined]
        raise
    except Exception as exc:
        if chosen == ["CPUExecutionProvider"] or "CPUExecutionProvider" not in wanted:
            raise
        log.warning(
            "%s: could not open on %s (%s); falling back to CPUExecutionProvider",
            name,
            chosen[0],
            str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__,
        )
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    got = session.get_providers()
    if got and got[0] != chosen[0]:
        log.warning("%s: asked for %s, ONNX Runtime runs it on %s (fallback)", name, chosen[0], got[0])
    else:
        log.debug("%s: running on %s", name, got[0] if got else "?")
    return session


def _metadata_names(meta: dict[str, str], path: Path) -> tuple[str, ...]:
    try:
        names = ast.literal_eval(meta["names"])
    except (KeyError, ValueError, SyntaxError) as exc:
        raise ModelError(f"{path}: ONNX file has no class names in its metadata") from exc
    return tuple(str(names[k]) for k in sorted(names))


class OnnxDetector:
    """YOLOv8 detector on ONNX Runtime (TensorRT / CUDA / CPU, the first available)."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        merge_iou: float = 1.0,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int = 0,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            model = serving_bytes(path) or str(path)
            self.session = open_session(model, opts, providers, path.name)
        except (
            ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,  # type: ignore[attr-defined]
            ort.capi.onnxruntime_pybind11_state.Fail,
        ) as exc:  # type: ignore[attr-defined]
            raise ModelError(f"{path}: not an ONNX model ({str(exc).splitlines()[0][:120]})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.path = path
        self.class_names = _metadata_names(meta, path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        if not isinstance(h, int) or not isinstance(w, int):
            size = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
            h, w = int(size[0]), int(size[1])
        self.imgsz = (int(h), int(w))
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.conf, self.iou, self.max_det, self.merge_iou = conf, iou, max_det, merge_iou
        self.provider = self.session.get_providers()[0]

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect in a batch of BGR (or grey) images; boxes come back in source pixels."""
        if not images:
            return []
        boxed, maps = [], []
        for img in images:
            lb_img, lb = letterbox(as_bgr(img), self.imgsz)
            boxed.append(lb_img)
            maps.append(lb)
        raw = self._run(to_tensor(boxed, self.dtype))
        return [self._postprocess(raw[i], maps[i]) for i in range(len(images))]

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None or self.fixed_batch == tensor.shape[0]:
            return np.asarray(self.session.run(None, {self.input_name: tensor})[0], dtype=np.float32)
        outs = [self.session.run(None, {self.input_name: tensor[i : i + 1]})[0] for i in range(len(tensor))]
        return np.concatenate(outs).astype(np.float32)

    def _postprocess(self, raw: np.ndarray, lb: Letterbox) -> Detections:
        xyxy, score, cls = decode(raw, self.conf, self.iou, self.max_det, self.merge_iou)
        return Detections(lb.to_source(xyxy), score, cls, self.class_names)

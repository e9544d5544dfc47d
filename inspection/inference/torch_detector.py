"""The PyTorch backends (import torch): our GPU serving path, and Ultralytics' own ``predict``.

:class:`TorchDetector` is the serving path for a GPU box whose ONNX Runtime has no GPU provider:
one batched forward in fp16, the images uploaded as uint8 from pinned memory, the letterbox
(bilinear resize and grey padding, Ultralytics' placement rule) and class-aware NMS on the
device, and only the kept boxes copied back. CUDA graphs per batch size (the batch padded up to
a power of two) are optional: YOLOv8n at small batches is bound by kernel launches, which a graph
replays in one. On the CPU it runs the same code in fp32 (tests compare it with the ONNX path).

:class:`UltralyticsDetector` runs ``YOLO(weights).predict``: the reference the export checks against.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from inspection.core.detections import Detections
from inspection.core.errors import ModelError
from inspection.inference.nms import decode, one_class_per_place
from inspection.inference.offline import ultralytics
from inspection.inference.preprocess import PAD_VALUE, Letterbox, as_bgr, fit

log = logging.getLogger(__name__)

MAX_GRAPH_BATCH = 64


def pick_device(device: str = "auto") -> str:
    """'auto': the first CUDA device when PyTorch sees one, else the CPU; anything else as given."""
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: PyTorch sees no CUDA device (torch {torch.__version__})")
    return device


def _load_network(path: Path) -> tuple[Any, tuple[str, ...], int]:
    """The fused YOLOv8 network of a .pt file (through Ultralytics' loader), its class names and image size."""
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix != ".pt":
        raise ModelError(f"{path}: expected a .pt file for the PyTorch backend")
    ul = ultralytics()
    try:
        yolo = ul.YOLO(str(path), task="detect")
    except Exception as exc:  # Ultralytics raises many types for a bad file
        raise ModelError(f"{path}: not a YOLO model ({exc.__class__.__name__}: {str(exc)[:100]})") from exc
    net = yolo.model.fuse(verbose=False) if hasattr(yolo.model, "fuse") else yolo.model
    names = tuple(str(yolo.names[k]) for k in sorted(yolo.names))
    size = int((getattr(net, "args", None) or {}).get("imgsz", 640) or 640)
    return net, names, size


class TorchDetector:
    """YOLOv8 on PyTorch, batched, letterbox and NMS on the device; same interface as OnnxDetector."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        merge_iou: float = 1.0,
        device: str = "auto",
        half: bool | None = None,
        cuda_graphs: bool = False,
        channels_last: bool = False,
    ) -> None:
        import torch

        path = Path(path)
        net, self.class_names, size = _load_network(path)
        self.torch = torch
        self.device = torch.device(pick_device(device))
        cuda = self.device.type == "cuda"
        self.half = cuda if half is None else half
        self.dtype = torch.float16 if self.half else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(self.device).eval()
        self.net = (net.half() if self.half else net.float()).to(memory_format=self.memory_format)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.imgsz = (size, size)
        self.path, self.conf, self.iou, self.max_det = path, conf, iou, max_det
        self.merge_iou = merge_iou
        self.cuda_graphs = cuda_graphs and cuda
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}
        self._pinned_tensors: list[Any] = []
        self._lock = threading.Lock()  # a graph's input and output are shared: one batch at a time
        self._batched_nms = _torchvision_nms()
        self.provider = f"torch:{self.device}:{'fp16' if self.half else 'fp32'}" + (
            "+graphs" if self.cuda_graphs else ""
        )

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect in a batch of BGR (or grey) images; boxes come back in source pixels."""
        if not images:
            return []
        with self.torch.inference_mode():
            x, maps = self.prepare(images)
            if self.cuda_graphs:
                with self._lock:
                    return self._decode(self._graphed(x), maps)
            return self._decode(self.forward(x), maps)

    def prepare(self, images: list[np.ndarray]) -> tuple[Any, list[Letterbox]]:
        """The letterboxed NCHW RGB batch on the device (0..1, the model's dtype) and each image's mapping.

        Images of one size go up together (one stacked uint8 copy through pinned memory), are
        resized on the device, and land in a batch already filled with the padding grey.
        """
        torch, (h_in, w_in) = self.torch, self.imgsz
        batch = torch.full((len(images), 3, h_in, w_in), PAD_VALUE / 255.0, dtype=self.dtype, device=self.device)
        maps: list[Letterbox | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(i)
        for (h, w), idx in groups.items():
            host = torch.from_numpy(np.stack([as_bgr(images[i]) for i in idx]))
            if self.device.type == "cuda":
                host = host.pin_memory()
            t = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).flip(1)  # NHWC BGR -> NCHW RGB
            lb, rw, rh = fit(h, w, self.imgsz)
            t = t.to(torch.float16 if self.half else torch.float32)
            if (rw, rh) != (w, h):
                t = torch.nn.functional.interpolate(t.float(), size=(rh, rw), mode="bilinear", align_corners=False)
                t = t.round_().clamp_(0, 255)  # cv2 resizes uint8 to uint8: round as it does
            x0, y0 = int(lb.pad_x), int(lb.pad_y)
            rows = torch.as_tensor(idx, device=self.device)
            batch[rows, :, y0 : y0 + rh, x0 : x0 + rw] = (t / 255.0).to(self.dtype)
            for i in idx:
                maps[i] = lb
        return batch.contiguous(memory_format=self.memory_format), [m for m in maps if m is not None]

    def forward(self, x: Any) -> Any:
        """The network's raw output (batch, 4 + classes, anchors)."""
        y = self.net(x)
        return y[0] if isinstance(y, (list, tuple)) else y

    def _graphed(self, x: Any) -> Any:
        """The forward replayed from a CUDA graph captured for the batch rounded up to a power of two."""
        n = x.shape[0]
        bucket = 1 << (n - 1).bit_length()
        if bucket > MAX_GRAPH_BATCH:
            return self.forward(x)
        entry = self._graphs.get(bucket)
        if entry is None:
            entry = self._graphs[bucket] = self._capture(bucket, x)
        graph, static_in, static_out = entry
        static_in[:n].copy_(x)
        graph.replay()
        return static_out[:n]

    def _capture(self, bucket: int, like: Any) -> tuple[Any, Any, Any]:
        torch = self.torch
        static_in = torch.full((bucket, *like.shape[1:]), PAD_VALUE / 255.0, dtype=like.dtype, device=self.device)
        static_in = static_in.contiguous(memory_format=self.memory_format)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs asks
                self.forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.forward(static_in)
        # the Detect head caches its anchors per input shape (batch included) and makes new ones when the
        # batch changes: the graph read the ones of this capture, so they must never be freed and reused
        self._pinned_tensors.extend(
            t
            for m in self.net.modules()
            for t in (getattr(m, "anchors", None), getattr(m, "strides", None))
            if isinstance(t, torch.Tensor)
        )
        log.info("%s: CUDA graph captured for batch %d", self.path.name, bucket)
        return graph, static_in, static_out

    def _decode(self, raw: Any, maps: list[Letterbox]) -> list[Detections]:
        """Scores above conf, class-aware NMS per image in one call on the device, kept boxes to the host."""
        torch, n = self.torch, len(maps)
        raw = raw.float()
        if self._batched_nms is None:  # no torchvision: our numpy NMS on the host, image by image
            host = raw.cpu().numpy()
            return [
                self._detections(*decode(host[i], self.conf, self.iou, self.max_det, self.merge_iou), maps[i])
                for i in range(n)
            ]
        nc = raw.shape[1] - 4
        score, cls = raw[:, 4:].max(1)
        img, anchor = (score > self.conf).nonzero(as_tuple=True)
        xywh = raw[img, :4, anchor]
        xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        s, c = score[img, anchor], cls[img, anchor]
        keep = self._batched_nms(xyxy, s, img * nc + c, self.iou)  # highest score first
        host_img = img[keep].cpu().numpy()
        host_xyxy, host_s, host_c = xyxy[keep].cpu().numpy(), s[keep].cpu().numpy(), c[keep].cpu().numpy()
        out = []
        for i in range(n):
            sel = np.flatnonzero(host_img == i)
            sel = sel[one_class_per_place(host_xyxy[sel], host_s[sel], self.merge_iou)][: self.max_det]
            out.append(self._detections(host_xyxy[sel], host_s[sel], host_c[sel].astype(np.int64), maps[i]))
        return out

    def _detections(self, xyxy: np.ndarray, score: np.ndarray, cls: np.ndarray, lb: Letterbox) -> Detections:
        return Detections(
            lb.to_source(xyxy.astype(np.float32)), score.astype(np.float32), cls.astype(np.int64), self.class_names
        )


def _torchvision_nms() -> Any:
    try:
        from torchvision.ops import batched_nms
    except ImportError:  # torchvision missing or built for another torch
        log.warning("torchvision is not importable: NMS runs in numpy on the host")
        return None
    return batched_nms


class UltralyticsDetector:
    """YOLOv8 through ``YOLO(weights).predict``; same interface as OnnxDetector."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        device: str = "cpu",
        imgsz: int | tuple[int, int] | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        ul = ultralytics()
        try:
            self.model = ul.YOLO(str(path), task="detect")
        except Exception as exc:  # Ultralytics raises many types for a bad file
            raise ModelError(f"{path}: not a YOLO model ({exc.__class__.__name__}: {str(exc)[:100]})") from exc
        names = self.model.names
        self.class_names = tuple(str(names[k]) for k in sorted(names))
        size = imgsz or int(getattr(self.model, "overrides", {}).get("imgsz", 640) or 640)
        self.imgsz = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.path, self.conf, self.iou, self.max_det, self.device = path, conf, iou, max_det, device
        self.provider = f"torch:{device}"

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        # rect=False: the same square letterbox as the ONNX path (Ultralytics' predict default pads
        # a 16:9 frame to a rectangle instead), so both backends see identical pixels
        results = self.model.predict(
            images,
            imgsz=list(self.imgsz),
            conf=self.conf,
            iou=self.iou,
            rect=False,
            max_det=self.max_det,
            device=self.device,
            verbose=False,
        )
        out = []
        for r in results:
            b = r.boxes
            out.append(
                Detections(
                    b.xyxy.cpu().numpy().astype(np.float32),
                    b.conf.cpu().numpy().astype(np.float32),
                    b.cls.cpu().numpy().astype(np.int64),
                    self.class_names,
                )
            )
        return out

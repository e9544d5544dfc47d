"""Open a detector from a registry entry or a weights file, choosing the backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from inspection.core.detections import Detector
from inspection.core.errors import ModelError
from inspection.inference.cards import read_card, resolve_model_dir
from inspection.inference.onnx_detector import DEFAULT_PROVIDERS, OnnxDetector, pick_providers
from inspection.reference.planes import INPUT_KINDS

INPUT_METADATA_KEY = "twinspect_input"  # ONNX metadata: which input a model expects ("image" / "reference")

Backend = Literal["onnx", "torch"]


Precision = Literal["fp32", "int8"]
PrecisionChoice = Literal["auto", "fp32", "int8"]  # auto: what the model's card chose at registration

INT8_TOLERANCE = 0.005  # INT8 is served by default when it loses at most this much mAP50 and DeepPCB F


def choose_precision(fp32: dict[str, Any], int8: dict[str, Any] | None) -> dict[str, Any]:
    """The card's serving choice: INT8 where ``twinspect eval`` shows it within 0.5 points of fp32.

    Compared on mAP50 and, for DeepPCB classes, the DeepPCB F-score (the figures QA lives by);
    written into the card at registration with both sets of figures beside it.
    """
    rule = f"int8 when its mAP50 and DeepPCB F are within {INT8_TOLERANCE * 100:.1f} points of fp32 (twinspect eval)"
    if not int8:
        return {"precision": "fp32", "rule": rule, "why": "no INT8 file"}
    keys = [k for k in ("map50", "deeppcb_fscore") if k in fp32 and k in int8]
    deltas = {k: round(float(int8[k]) - float(fp32[k]), 4) for k in keys}
    ok = bool(keys) and all(d >= -INT8_TOLERANCE for d in deltas.values())
    return {"precision": "int8" if ok else "fp32", "rule": rule, "int8_minus_fp32": deltas}


def served_precision(folder: Path) -> Precision:
    """What 'auto' serves for a registry entry: its card's choice when that file exists, else fp32."""
    try:
        choice = read_card(folder).get("serving", {}).get("precision", "fp32")
    except ModelError:
        return "fp32"
    if choice == "int8" and (resolve_model_dir(folder) / "model.int8.onnx").is_file():
        return "int8"
    return "fp32"


MAX_AUTO_RUNNERS = 4


def concurrency(
    providers: Sequence[str], backend: Backend = "onnx", runners: int = 0, threads: int = 0, cores: int | None = None
) -> tuple[int, int]:
    """How one model runs: (runners side by side, ONNX Runtime intra-op threads each; 0 = its default).

    0 means automatic. On the CPU provider automatic is one runner per core (at most
    MAX_AUTO_RUNNERS), the cores shared out between them: a small model gains little from
    intra-op threads (the part model: 11.7 ms with two, 12.3 with one) but two images at
    once on two cores go 1.5x faster. On a GPU provider, and for the PyTorch backend, one
    runner with the runtime's own threads.
    """
    cores = cores or os.cpu_count() or 1
    if backend == "torch" or pick_providers(providers)[0] != "CPUExecutionProvider":
        return runners or 1, threads
    runners = runners or min(cores, MAX_AUTO_RUNNERS)
    return runners, threads or max(1, cores // runners)


def weights_file(weights: Path, backend: Backend = "onnx", precision: PrecisionChoice = "auto") -> Path:
    """The model file to load: a registry entry gives model.onnx (model.int8.onnx) / model.pt; a file is itself.

    ``precision`` 'auto' is the card's choice (``served_precision``)."""
    weights = Path(weights)
    if not weights.exists():
        raise ModelError(f"{weights}: no such weights file or model folder")
    if weights.is_dir() or weights.suffix == "":
        folder = resolve_model_dir(weights)
        if backend == "torch":
            return folder / "model.pt"
        if precision == "auto":
            precision = served_precision(folder)
        path = folder / ("model.int8.onnx" if precision == "int8" else "model.onnx")
        if not path.is_file():
            raise ModelError(f"{path}: this model has no {precision} ONNX file (twinspect export --int8 makes one)")
        return path
    return weights


def load_detector(
    weights: Path,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    backend: Backend | None = None,
    precision: PrecisionChoice = "auto",
    threads: int = 0,
    device: str = "auto",
    merge_iou: float = 1.0,
) -> Detector:
    """An OnnxDetector for .onnx (the serving path), a TorchDetector for .pt (PyTorch on ``device``:
    'auto' is the first CUDA device PyTorch sees, else the CPU)."""
    path = weights_file(weights, backend or "onnx", precision)
    kind = backend or ("torch" if path.suffix == ".pt" else "onnx")
    if kind == "onnx":
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: expected an .onnx file for the ONNX Runtime backend")
        return OnnxDetector(
            path, conf=conf, iou=iou, max_det=max_det, providers=providers, threads=threads, merge_iou=merge_iou
        )
    if path.suffix != ".pt":
        raise ModelError(f"{path}: expected a .pt file for the PyTorch backend")
    from inspection.inference.torch_detector import TorchDetector

    return TorchDetector(path, conf=conf, iou=iou, max_det=max_det, device=device, merge_iou=merge_iou)


def model_input(weights: Path) -> str:
    """What a model expects: 'image' (a board alone) or 'reference' (board, golden, difference).

    A registered model's card says so (cards written before reference models say nothing:
    'image'); a bare ONNX file carries it in its metadata when twinspect exported it.
    """
    weights = Path(weights)
    try:
        kind = str(read_card(weights).get("input", "image"))
    except ModelError:
        kind = _onnx_input(weights) if weights.suffix == ".onnx" and weights.is_file() else "image"
    if kind not in INPUT_KINDS:
        raise ModelError(f"{weights}: unknown model input {kind!r} (expected one of {', '.join(INPUT_KINDS)})")
    return kind


def _onnx_input(path: Path) -> str:
    """The input kind an ONNX file's metadata names; 'image' when it names none or is no ONNX file
    (loading it then fails with the detector's own message)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends: not an ONNX file
        return "image"
    return next((p.value for p in model.metadata_props if p.key == INPUT_METADATA_KEY), "image")


def require_input(weights: Path, provided: str, where: str) -> None:
    """Refuse a model whose input is not what ``where`` provides, naming both."""
    kind = model_input(weights)
    if kind != provided:
        hint = (
            " (compare each board with its golden: a recipe, --golden, or a DeepPCB pair)"
            if kind == "reference"
            else ""
        )
        raise ModelError(f"{weights}: the model expects '{kind}' input{hint}, but {where} provides '{provided}' input")

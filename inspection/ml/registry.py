"""The model registry in ``weights/``, its publish side: one folder per registered model version.

``weights/<name>-v<N>/`` holds ``model.pt`` (optimizer stripped), ``model.onnx``,
``card.json`` and ``CARD.md``. The card records what the model is, what it was trained
on, how it scored, and the sha256 of every file, so a copy can be verified.
``weights/<name>`` (no version) is a small text file naming the *active* version, which
is what the config points at by default. Registering a version never moves it: a throwaway
experiment must not change what ``demo`` or ``serve`` serve. ``activate(registry, name,
version)`` is the one explicit step that does (``twinspect models activate NAME:VERSION``).
Reading an entry (what serving needs) is :mod:`inspection.inference.cards`; registering one
(export, eval, quantize, card) is here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspection.core.errors import ModelError
from inspection.inference.cards import CARD
from inspection.inference.models import choose_precision
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.hashing import file_sha256


def next_version(registry: Path, name: str) -> int:
    pattern = re.compile(rf"^{re.escape(name)}-v(\d+)$")
    found = [int(m.group(1)) for p in registry.glob(f"{name}-v*") if (m := pattern.match(p.name))]
    return max(found, default=0) + 1


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """Refresh file hashes and write card.json and CARD.md."""
    card["files"] = {
        p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name not in (CARD, "CARD.md")
    }
    (folder / CARD).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "CARD.md").write_text(render_markdown(card))


def register_run(
    run: Path, task: str, registry: Path, data: Path, name: str | None = None, checkpoint: str = "best.pt"
) -> Path:
    """Copy a run's checkpoint into a new registry version, export ONNX, evaluate, write the card.

    Works on a finished run or one still in progress (its current best.pt). Everything is
    built in a temporary folder and renamed into place, so a failure leaves no entry.
    """
    from inspection.inference.offline import ultralytics
    from inspection.ml.training import read_history

    src = run / "weights" / checkpoint
    if not src.is_file():
        raise ModelError(f"{src}: no checkpoint to register")
    ul = ultralytics()
    from ultralytics.utils.torch_utils import strip_optimizer

    model = ul.YOLO(str(src))
    args = dict(model.ckpt.get("train_args", {})) if model.ckpt else {}
    arch = Path(_architecture(model, args)).stem
    name = name or f"{task}-{arch}"
    registry.mkdir(parents=True, exist_ok=True)
    version = next_version(registry, name)
    final = registry / f"{name}-v{version}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=registry))
    try:
        shutil.copyfile(src, tmp / "model.pt")
        strip_optimizer(str(tmp / "model.pt"))
        history = read_history(run)
        card = _base_card(name, version, task, model, args, data, history, src)
        from inspection.ml.evaluate import evaluate_weights
        from inspection.ml.export import export_onnx

        export_onnx(tmp / "model.pt", imgsz=card["imgsz"], dynamic_batch=True, input_kind=card["input"])
        card["export"] = {"format": "onnx", "half": False, "dynamic_batch": True, "imgsz": card["imgsz"]}
        spec = load_data_yaml(data)
        split = "val" if "val" in spec.splits else next(iter(spec.splits))
        card["val_metrics"] = evaluate_weights(tmp / "model.onnx", data, split=split).summary()
        card["val_metrics"]["split"] = split
        card["int8"] = quantize_and_check(tmp / "model.onnx", data, split)
        card["serving"] = choose_precision(card["val_metrics"], card["int8"]["val_metrics"])
        write_card(tmp, card)
        tmp.rename(final)
        return final  # what is served does not change: activation is its own step (activate)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def activate(registry: Path, name: str, version: int) -> tuple[str | None, str]:
    """Point ``registry/name`` at version ``version`` (atomically); returns (the version it named before, now)."""
    target = registry / f"{name}-v{version}"
    if not (target / CARD).is_file():
        known = sorted(p.name for p in registry.glob(f"{name}-v*") if (p / CARD).is_file())
        raise ModelError(
            f"{target}: no registered model version {name}:{version} (registered: {', '.join(known) or 'none'})"
        )
    alias = registry / name
    if alias.is_dir():
        raise ModelError(f"{alias}: is a folder, not the version pointer of {name}")
    before = alias.read_text().strip() if alias.is_file() else None
    tmp = alias.with_name(f".{name}.activate")
    tmp.write_text(target.name + "\n")
    os.replace(tmp, alias)
    return before, target.name


def parse_model_ref(text: str) -> tuple[str, int]:
    """'defect-yolov8n:2' or 'defect-yolov8n-v2' -> ('defect-yolov8n', 2)."""
    m = re.fullmatch(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*?)(?::|-v)(?P<version>\d+)", text.strip())
    if m is None:
        raise ModelError(f"{text!r}: name a model version as NAME:VERSION, e.g. defect-yolov8n:2")
    return m.group("name"), int(m.group("version"))


def quantize_and_check(onnx_path: Path, data: Path, split: str, calibration: int = 64) -> dict[str, Any]:
    """INT8 copy beside the fp32 ONNX file, with its own eval: never trust a quantized model unmeasured."""
    from inspection.ml.evaluate import evaluate_weights
    from inspection.ml.quantize import quantize_int8

    int8 = quantize_int8(onnx_path, data, calibration=calibration)
    metrics = evaluate_weights(int8, data, split=split).summary()
    return {
        "file": int8.name,
        "calibration_images": calibration,
        "format": "ONNX Runtime static QDQ, per-channel, Detect head outputs and decoding in fp32",
        "val_metrics": {**metrics, "split": split},
    }


def _base_card(
    name: str,
    version: int,
    task: str,
    model: Any,
    args: dict[str, Any],
    data: Path,
    history: list[dict[str, float]],
    src: Path,
) -> dict[str, Any]:
    import torch
    import ultralytics

    spec = load_data_yaml(data)
    ds_card_path = spec.root / "card.json"
    ds_card = json.loads(ds_card_path.read_text()) if ds_card_path.is_file() else {}
    names = [model.names[i] for i in sorted(model.names)]
    if tuple(names) != spec.names:
        raise ModelError(f"{src}: classes {names} do not match dataset {spec.yaml_path} {list(spec.names)}")
    epochs_done = int(model.ckpt.get("epoch", -1)) + 1 if model.ckpt else 0
    if epochs_done <= 0:  # a finished, stripped checkpoint records epoch -1
        epochs_done = len(history)
    return {
        "name": name,
        "version": version,
        "task": task,
        "architecture": _architecture(model, args),
        "initial_weights": str(args["model"]) if str(args.get("model", "")).endswith(".pt") else None,
        "class_names": names,
        "input": spec.input,  # "image", or "reference": board, aligned golden and |difference| (3 planes)
        "imgsz": int(args.get("imgsz", 640)),
        "training_data": {
            "yaml": str(data),
            "source_sha256": ds_card.get("source_sha256"),
            "split_rule": ds_card.get("split_rule"),
            "splits": ds_card.get("splits"),
        },
        "epochs": {"planned": int(args.get("epochs", 0)), "trained": len(history) or epochs_done},
        "train_args": {k: args.get(k) for k in ("batch", "device", "optimizer", "seed", "close_mosaic")},
        "history": history,
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_checkpoint": src.name,
    }


def _architecture(model: Any, args: dict[str, Any]) -> str:
    """The architecture YAML a checkpoint was built from (also when it was fine-tuned from a .pt)."""
    yaml_file = (getattr(model.model, "yaml", None) or {}).get("yaml_file")
    return Path(str(yaml_file or args.get("model", "yolov8n.yaml"))).name


def render_markdown(card: dict[str, Any]) -> str:
    lines = [
        f"# Model card: {card['name']} v{card['version']}",
        "",
        f"- task: {card['task']} ({card['architecture']}, imgsz {card['imgsz']})",
        f"- classes: {', '.join(card['class_names'])}",
        f"- input: {card.get('input', 'image')}"
        + (
            " (board, aligned golden board and their difference as three planes)"
            if card.get("input") == "reference"
            else " (the board alone)"
        ),
        f"- epochs trained: {card['epochs']['trained']} of {card['epochs']['planned']} planned"
        + (f", starting from `{card['initial_weights']}`" if card.get("initial_weights") else ""),
        f"- training data sha256: `{card['training_data']['source_sha256']}`",
        f"- ultralytics {card['ultralytics_version']}, torch {card['torch_version']}",
        f"- created: {card['created_at']}",
        "",
    ]
    int8 = card.get("int8")
    vm = card.get("val_metrics")
    if vm and int8:
        i8 = int8["val_metrics"]
        lines += [
            "## INT8 (`" + int8["file"] + "`, " + int8["format"] + ")",
            "",
            f"- mAP50 {i8['map50']} (fp32 {vm['map50']}), mAP50-95 {i8['map50_95']} (fp32 {vm['map50_95']}), "
            f"DeepPCB F-score {i8['deeppcb_fscore']} (fp32 {vm['deeppcb_fscore']})",
            "",
        ]
    serving = card.get("serving")
    if serving:
        lines += [f"- served by default (`precision: auto`): **{serving['precision']}**; rule: {serving['rule']}", ""]
    if vm:
        lines += ["## Validation (twinspect eval, ONNX Runtime)", ""]
        lines += [f"- {k}: {v}" for k, v in vm.items() if not isinstance(v, dict)]
        per = vm.get("per_class_ap50")
        if per:
            lines += ["", "| class | AP50 |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in per.items()]
        lines.append("")
    if card.get("history"):
        lines += [
            "## Training curve (Ultralytics validation each epoch)",
            "",
            "| epoch | mAP50 | mAP50-95 | precision | recall |",
            "| --- | --- | --- | --- | --- |",
        ]
        for h in card["history"]:
            lines.append(
                f"| {int(h.get('epoch', 0))} | {h.get('mAP50', '')} | {h.get('mAP50-95', '')} | "
                f"{h.get('precision', '')} | {h.get('recall', '')} |"
            )
        lines.append("")
    lines += ["## Files (sha256)", ""] + [f"- `{k}`: `{v}`" for k, v in card.get("files", {}).items()]
    return "\n".join(lines) + "\n"

"""Build a running engine from the settings (used by demo, serve and replay)."""

from __future__ import annotations

import json
from pathlib import Path

from api.settings import ModelSettings, Settings
from camera.config import build_source
from camera.source import FrameSource
from inspection.detections import Detector
from inspection.engine import Engine, EngineConfig
from inspection.errors import ModelError
from inspection.models import load_detector
from inspection.registry import resolve_model_dir
from inspection.store import EvidenceStore, InspectionStore, open_database
from inspection.verdict_sink import ModelInfo


def model_info(weights: Path) -> ModelInfo:
    """Name and version from the model card, or the file name for a bare file."""
    try:
        card = json.loads((resolve_model_dir(weights) / "card.json").read_text())
        return ModelInfo(card["name"], str(card["version"]))
    except ModelError:
        return ModelInfo(Path(weights).stem, "unregistered")


def _detector(model: ModelSettings, conf: float) -> Detector:
    return load_detector(model.weights, conf=conf, iou=model.iou, providers=model.providers, backend=model.backend,
                         precision=model.precision)


def build_engine(settings: Settings, sources: list[FrameSource] | None = None, store: bool = True) -> Engine:
    """Load both models, open storage, build the sources from the config (unless given)."""
    line = settings.line
    part = _detector(settings.models.part, settings.models.part.conf)
    if part.class_names != ("board",):
        raise ModelError(f"{settings.models.part.weights}: the part model must have the single class 'board', "
                         f"has {list(part.class_names)}")
    defect_conf = min(settings.models.defect.conf, line.rules.uncertain_low)
    defect = _detector(settings.models.defect, defect_conf)
    if sources is None:
        sources = [build_source(c) for c in line.cameras]
    if not sources:
        raise ModelError("line.cameras: no camera configured")
    inspections = evidence = None
    if store:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        evidence = EvidenceStore(settings.data_dir / "evidence")
        inspections = InspectionStore(open_database(settings.database_url), evidence)
    config = EngineConfig(line_id=line.line_id, parts=line.parts, rules=line.rules, max_batch=line.max_batch,
                          max_wait_ms=line.max_wait_ms, camera_tokens=dict(line.camera_tokens))
    return Engine(config, sources, part, defect, model_info(settings.models.defect.weights), inspections, evidence)

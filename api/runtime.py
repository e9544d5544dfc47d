"""Build a running engine from the settings (used by demo, serve and replay)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine as DbEngine

from api.settings import LineSettings, ModelSettings, Settings
from camera.config import SimulatedCamera, build_source
from camera.source import FrameSource
from inspection.core.detections import Detector
from inspection.core.errors import ModelError
from inspection.inference.cards import resolve_model_dir
from inspection.inference.models import concurrency, load_detector, model_input
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine, EngineConfig
from inspection.pipeline.recording import ModelInfo, Recorder, StoreRecorder
from inspection.pipeline.reference_stage import ReferenceStage
from inspection.reference.recipe_store import RecipeStore
from inspection.reference.recipes import RecipeNotFound
from inspection.store import EvidenceStore, InspectionStore, open_database
from sync.recorder import EngineRecorder
from sync.service import SyncService


def model_info(weights: Path) -> ModelInfo:
    """Name and version from the model card, or the file name for a bare file."""
    try:
        card = json.loads((resolve_model_dir(weights) / "card.json").read_text())
        return ModelInfo(card["name"], str(card["version"]))
    except ModelError:
        return ModelInfo(Path(weights).stem, "unregistered")


def _detector(model: ModelSettings, conf: float) -> tuple[Detector, int]:
    """The model's detector and how many runners serve it."""
    runners, threads = concurrency(model.providers, model.backend, model.runners, model.threads)
    return load_detector(
        model.weights,
        conf=conf,
        iou=model.iou,
        providers=model.providers,
        backend=model.backend,
        precision=model.precision,
        threads=threads,
        device=model.device,
        merge_iou=model.merge_iou,
    ), runners


def open_storage(settings: Settings, db: DbEngine | None = None) -> tuple[InspectionStore, EvidenceStore]:
    """The inspection store and evidence folder of the data dir (database migrated to head)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    evidence = EvidenceStore(settings.data_dir / "evidence")
    return InspectionStore(db or open_database(settings.database_url), evidence), evidence


def open_recipes(settings: Settings, db: DbEngine | None = None) -> RecipeStore:
    """The recipes and their golden images (same database as the inspections)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return RecipeStore(db or open_database(settings.database_url), settings.goldens_dir)


def _deeppcb_cameras(line: LineSettings) -> list[SimulatedCamera]:
    """Simulated cameras showing DeepPCB boards: they name each board's product (its own recipe)."""
    from inspection.core.errors import DatasetError
    from inspection.ml.datasets.deeppcb import find_pcbdata

    out = []
    for cam in line.cameras:
        if isinstance(cam, SimulatedCamera):
            try:
                find_pcbdata(cam.boards)
            except DatasetError:
                continue
            out.append(cam)
    return out


def reference_stage(settings: Settings, recipes: RecipeStore) -> ReferenceStage:
    """What a reference model needs: every golden it will be asked for, registered and checked first.

    The simulated DeepPCB line's per-board recipes are registered (idempotent); a line recipe
    must exist. A reference model with no golden for its boards is refused here, at start.
    """
    from inspection.ml.datasets.deeppcb_recipes import register_deeppcb_recipes

    line = settings.line
    simulated = _deeppcb_cameras(line)
    for cam in simulated:
        pcb = cam.boards / "PCBData" if (cam.boards / "PCBData").is_dir() else cam.boards
        list_name = cam.list_name or ("trainval.txt" if (pcb / "trainval.txt").is_file() else "test.txt")
        register_deeppcb_recipes(recipes, cam.boards, list_name)
    if line.recipe is not None:
        try:
            recipes.golden(line.recipe)
        except RecipeNotFound:
            raise ModelError(
                f"line.recipe: no recipe {line.recipe!r} (twinspect recipes list; "
                f"twinspect recipes add NAME --golden IMAGE)"
            ) from None
    elif len(simulated) < len(line.cameras):
        raise ModelError(
            f"models.defect: {settings.models.defect.weights} compares each board with its golden "
            f"image, but line.recipe is not set (twinspect recipes add NAME --golden IMAGE, then "
            f"line.recipe: NAME)"
        )
    return ReferenceStage(recipes, line.recipe, line.rules.differences)


def open_sync(settings: Settings, forwarders: bool = True) -> SyncService:
    """The event log, twins and broker forwarders on the data dir's database."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SyncService.open(
        open_database(settings.database_url),
        settings.sync,
        forwarders=forwarders,
        evidence_dir=settings.data_dir / "evidence",
        goldens_dir=settings.goldens_dir,
    )


def _recorder(
    settings: Settings,
    sync: SyncService | None,
    store: InspectionStore | None,
    line_recipe: tuple[str | None, str | None] | None,
) -> Recorder | None:
    """The engine's one recorder: the event log's (rows and events in one transaction), the store's, or none."""
    if sync is not None:
        models = {
            "defect": model_info(settings.models.defect.weights),
            "part": model_info(settings.models.part.weights),
        }
        line_id, edge_id = settings.line.line_id, settings.sync.edge_id
        return EngineRecorder(sync.log, sync.twins, line_id, edge_id, models, store=store, line_recipe=line_recipe)
    return StoreRecorder(store) if store is not None else None


def _engine_config(line: LineSettings, part_runners: int, defect_runners: int) -> EngineConfig:
    return EngineConfig(
        line_id=line.line_id,
        parts=line.parts,
        rules=line.rules,
        max_batch=line.max_batch,
        max_wait_ms=line.max_wait_ms,
        camera_tokens=dict(line.camera_tokens),
        part_runners=part_runners,
        defect_runners=defect_runners,
    )


def build_engine(
    settings: Settings, sources: list[FrameSource] | None = None, store: bool = True, sync: SyncService | None = None
) -> Engine:
    """Load both models, open storage, build the sources from the config (unless given).

    With ``sync`` (opened on the same database), every engine event goes to its event log,
    and verdicts are committed together with their part.inspected events.
    """
    line = settings.line
    part, part_runners = _detector(settings.models.part, settings.models.part.conf)
    if part.class_names != ("board",):
        raise ModelError(
            f"{settings.models.part.weights}: the part model must have the single class 'board', "
            f"has {list(part.class_names)}"
        )
    defect_conf = min(settings.models.defect.conf, line.rules.uncertain_low)
    defect, defect_runners = _detector(settings.models.defect, defect_conf)
    if sources is None:
        sources = [build_source(c, boards=board_pool) for c in line.cameras]
    if not sources:
        raise ModelError("line.cameras: no camera configured")
    inspections, evidence = open_storage(settings, sync.log.engine if sync else None) if store else (None, None)
    reference: ReferenceStage | None = None
    line_recipe: tuple[str | None, str | None] | None = None  # the line's recipe and its golden's sha256
    if model_input(settings.models.defect.weights) == "reference":
        recipes = open_recipes(settings, sync.log.engine if sync else None)
        reference = reference_stage(settings, recipes)
        line_recipe = (line.recipe, recipes.get(line.recipe).golden_sha256 if line.recipe else None)
    elif line.recipe is not None:
        raise ModelError(
            f"line.recipe: set to {line.recipe!r}, but the defect model {settings.models.defect.weights} "
            f"takes 'image' input and compares no golden (serve a reference model, or unset line.recipe)"
        )
    recorder = _recorder(settings, sync, inspections, line_recipe)
    config = _engine_config(line, part_runners, defect_runners)
    model = model_info(settings.models.defect.weights)
    part_model = model_info(settings.models.part.weights)
    return Engine(
        config,
        sources,
        part,
        defect,
        model,
        evidence=evidence,
        recorder=recorder,
        reference=reference,
        part_model=part_model if part_model.version.isdigit() else None,
    )

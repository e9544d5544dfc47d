"""Model delivery in the serving process: which version the line starts with, its desk, the watcher thread."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy.exc import OperationalError

from api.model_desk import ROLES, DeskParts, ModelDesk
from api.runtime import _detector, model_info
from api.settings import Settings
from inspection.core.detections import Detector
from inspection.core.errors import ModelError
from inspection.inference.cards import CARD, registry_folder
from inspection.pipeline.engine import Engine
from inspection.store import ModelStates, Version
from inspection.store.errors import StoreUnavailableError
from sync.service import SyncService

log = logging.getLogger(__name__)


def registry_of(settings: Settings, role: str = "defect") -> Path:
    """The registry folder: where the configured model of ``role`` lives (weights/NAME or weights/NAME-vN)."""
    return registry_folder(Path(settings.models.of(role).weights))


def served_settings(settings: Settings, states: ModelStates) -> Settings:
    """The settings with the line's active version of each role (defect, part): the latest decision wins.

    The line's history wins over the config when the config names the same model through its version
    pointer (weights/NAME) and the pointer was not moved since the line's last change of that role;
    otherwise the config wins (a config naming a version folder pins that version), and becomes the
    line's next activation (ModelDesk.start_line)."""
    for role in ROLES:
        settings = _served(settings, states, role)
    return settings


def _served(settings: Settings, states: ModelStates, role: str) -> Settings:
    line_id = settings.line.line_id
    active = states.in_state(line_id, role, "active")
    weights = Path(settings.models.of(role).weights)
    configured = model_info(weights)
    if active is None or active.name != configured.name or not _pointer(weights):
        return settings
    last = next(
        (c for c in states.history(line_id, 200) if c.role == role and c.action in ("activated", "rolled_back")), None
    )
    if str(active.version) != configured.version and last is not None and weights.stat().st_mtime > last.at.timestamp():
        return settings  # weights/NAME was moved (models activate) after the line's last change

    folder = registry_of(settings, role) / f"{active.name}-v{active.version}"
    if not (folder / CARD).is_file():
        log.warning(
            "line %s: active %s model %s is not in the registry; serving the configured one", line_id, role, active
        )
        return settings
    model = settings.models.of(role).model_copy(update={"weights": folder})
    return settings.model_copy(update={"models": settings.models.model_copy(update={role: model})})


def _pointer(weights: Path) -> bool:
    """Whether ``weights`` is a registry's version pointer (weights/NAME naming NAME-vN)."""
    return weights.is_file() and weights.suffix == "" and (weights.parent / weights.read_text().strip()).is_dir()


def build_desk(
    settings: Settings, engine: Engine, sync: SyncService | None, states: ModelStates, role: str = "defect"
) -> ModelDesk:
    """The line's desk of ``role`` around a built (not yet started) engine; the line's first activation recorded."""
    configured = settings.models.of(role)
    conf = min(configured.conf, settings.line.rules.uncertain_low) if role == "defect" else configured.conf

    def build(folder: Path) -> Detector:
        model = configured.model_copy(update={"weights": folder})
        return _detector(model, conf)[0]

    def build_shadow(folder: Path) -> Detector:  # ONNX Runtime then runs in the shadow's own (niced) thread
        model = configured.model_copy(update={"weights": folder, "threads": 1, "runners": 1})
        return _detector(model, conf)[0]

    delivery = settings.delivery
    parts = DeskParts(
        registry_of(settings, role),
        settings.line.line_id,
        edge_id=settings.sync.edge_id,
        role=role,
        engine=engine,
        sync=sync,
        build=build,
        build_shadow=build_shadow if role == "defect" else None,
        gate=delivery.gate.config(),
        shadow=delivery.shadow.config(),
        gate_data=delivery.gate.data if role == "defect" else None,  # a part model: its own validation split
        goldens=settings.goldens_dir,
        rules=settings.line.rules,
        watch_boards=delivery.watch.boards,
        watch_p=delivery.watch.p_value,
    )
    desk = ModelDesk(states, parts)
    served = desk.served()
    try:
        version: Version | None = Version(served.name, int(served.version)) if served is not None else None
    except ValueError:  # a bare weights file: nothing to deliver on this line
        version = None
    try:
        desk.start_line(version, who="config")
    except ModelError as error:
        log.warning("line %s: %s model states not started: %s", settings.line.line_id, role, error)
    except (
        StoreUnavailableError,
        OperationalError,
    ) as error:  # a full disk: serve what is configured; the watcher reconciles later
        log.warning("line %s: %s model states not recorded at the start: %s", settings.line.line_id, role, error)
    return desk


class ModelWatcher:
    """Reconciles the line's desks (one per role) every ``interval_s``: the CLI's changes reach the running
    engine this way."""

    def __init__(self, *desks: ModelDesk, interval_s: float = 1.0) -> None:
        self.desks, self.interval_s = desks, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        for desk in self.desks:
            if desk.shadow_runner is not None:
                desk.shadow_runner.stop()

    def _run(self) -> None:
        last: dict[str, str] = {}
        ticks = 0
        while not self._stop.wait(self.interval_s):
            ticks += 1
            for desk in self.desks:
                try:
                    desk.reconcile()
                    if ticks % 10 == 0:  # the watch after a promotion: every 10 intervals
                        desk.watch()
                    last[desk.role] = ""
                except Exception as error:  # logged once while it lasts; the line goes on serving what it serves
                    if str(error) != last.get(desk.role):
                        log.error("line %s: reconciling the %s model states failed: %s", desk.line_id, desk.role, error)
                    last[desk.role] = str(error)

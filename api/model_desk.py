"""Delivering models on a line: states, activation, rollback, gated promotion, shadow, and their events.

One ``ModelDesk`` per line and model role: the defect model, and the part model that finds the
boards (it has no shadow runs and no watch: QA reviews defects, not board boxes, so the part
model is gated on its own validation split and export parity). The database (``ModelStates``)
holds each version's state on the line and the history of changes; the registry folder holds
the versions themselves. Every change goes: check (the version exists, its classes and input
kind match the line) → build and warm the new model's sessions (a corrupt ONNX file fails
here) → write the state and the history row in one transaction → swap between batches in the
running engine → announce the event in the line's stream. A refusal at any step leaves the
served model and the stored state as they were.

The CLI changes the same database: a running service ``reconcile``s every second (the
``ModelWatcher`` thread), swaps to what the database says and announces what is not announced
yet; a line that is not running announces at its next start. Only the serving process appends
to the line's stream (the event log has one writer).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from api.errors import Conflict
from inspection.core.detections import Detector
from inspection.core.errors import ModelError
from inspection.inference.cards import CARD, read_card
from inspection.inference.models import load_detector, model_input
from inspection.ml.gate import GateConfig
from inspection.pipeline.engine import Engine
from inspection.pipeline.events import ModelInfo
from inspection.pipeline.rules import RulesConfig
from inspection.pipeline.shadow import ShadowConfig, ShadowRunner
from inspection.store import Change, InspectionFilter, ModelStates, PromotionBusy, Version
from inspection.store.information import Place
from sync import drafts
from sync.events import Draft
from sync.service import SyncService

log = logging.getLogger(__name__)

ROLES = ("defect", "part")
_ANNOUNCING = threading.Lock()  # the desks of a line (one per role) share its event log and its history

Build = Callable[[Path], Detector]  # a registry folder -> its detector, sessions built


class GateRefused(ModelError):
    """The candidate did not pass the gate; ``result`` has both models' figures."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class DeskParts:
    """What a desk works with besides the database: the running engine and event log when there are any."""

    registry: Path
    line_id: str
    edge_id: str = "edge-1"
    role: str = "defect"
    engine: Engine | None = None
    sync: SyncService | None = None
    build: Build | None = None  # how the serving process builds a detector (None: no engine to swap)
    build_shadow: Build | None = None  # the same for a shadow model: one intra-op thread, at the shadow's priority
    gate: GateConfig = GateConfig()
    shadow: ShadowConfig = ShadowConfig()
    gate_data: Path | None = None  # data YAML of the gate set (None: each candidate's training data)
    goldens: Path | None = None  # the goldens folder: the gate replays reviewed boards to a reference model with it
    rules: RulesConfig = RulesConfig()  # the line's rules: how the gate and the shadow judge boards
    watch_boards: int = 200  # the watch after a promotion: boards on each side
    watch_p: float = 0.01  # a p-value under this raises model.alert


def versions_in(registry: Path, role: str) -> dict[Version, dict[str, Any]]:
    """The registry's versions of one role (the card's task), with their cards."""
    out: dict[Version, dict[str, Any]] = {}
    for card_path in sorted(registry.glob(f"*/{CARD}")):
        try:
            card = read_card(card_path.parent)
            if card.get("task") == role and card_path.parent.name == f"{card['name']}-v{card['version']}":
                out[Version(str(card["name"]), int(card["version"]))] = card
        except (ModelError, OSError, ValueError, KeyError, TypeError):
            log.warning("%s: not a readable model card, skipped", card_path)
    return out


def _pair(info: ModelInfo) -> tuple[str, str]:
    return info.name, info.version


def role_of(registry: Path, model: Version) -> str:
    """The role (card task) of a registered version; 'defect' when it is not registered (the desk then
    refuses it, naming what is)."""
    try:
        return str(read_card(registry / f"{model.name}-v{model.version}").get("task", "defect"))
    except ModelError:
        return "defect"


def warm(detector: Detector) -> None:
    """One run on a blank image: the sessions allocate before the first board needs them."""
    h, w = detector.imgsz
    detector.detect([np.zeros((h, w, 3), np.uint8)])


class ModelDesk:
    """See the module docstring."""

    def __init__(self, states: ModelStates, parts: DeskParts) -> None:
        self.states, self.parts = states, parts
        self.line_id, self.role = parts.line_id, parts.role
        self._lock = threading.RLock()  # one change at a time in this process (the database lock: across them)
        self.shadow_runner: ShadowRunner | None = None

    # reading ------------------------------------------------------------------------------------
    def folder(self, model: Version) -> Path:
        """The registry folder of ``model``; ModelError naming what is registered when there is none."""
        path = self.parts.registry / f"{model.name}-v{model.version}"
        if not (path / CARD).is_file():
            known = ", ".join(str(v) for v in versions_in(self.parts.registry, self.role)) or "none"
            raise ModelError(f"{model}: no such registered model version (registered: {known})")
        return path

    def changes(self) -> list[Change]:
        """This role's changes on the line, newest first."""
        return [c for c in self.states.history(self.line_id) if c.role == self.role]

    def _refuse_shadow_unless_defect(self, what: str) -> None:
        if self.role != "defect":
            raise ModelError(
                f"{what}: only the defect model runs in shadow (its verdicts are compared with QA's); "
                f"a {self.role} model is promoted through the gate (export parity, its validation split)"
            )

    def served(self) -> ModelInfo | None:
        """The model the running engine serves in this role (None: no engine, or not a registry version)."""
        engine = self.parts.engine
        if engine is None:
            return None
        return engine.defect_model if self.role == "defect" else engine.part_model

    def _serving_detector(self) -> Detector:
        engine = self.parts.engine
        assert engine is not None
        return (engine.defect_worker if self.role == "defect" else engine.part_worker).detector

    def active(self) -> Version | None:
        return self.states.in_state(self.line_id, self.role, "active")

    def shadow(self) -> Version | None:
        return self.states.in_state(self.line_id, self.role, "shadow")

    def listing(self) -> list[dict[str, Any]]:
        """Every registered version with its state on this line and its card's headline figures."""
        states = self.states.states(self.line_id)
        out = []
        for v, card in versions_in(self.parts.registry, self.role).items():
            vm = card.get("val_metrics") or {}
            out.append(
                {
                    "name": v.name,
                    "version": v.version,
                    "role": self.role,
                    "state": states.get(v, (self.role, "registered"))[1],
                    "input": card.get("input", "image"),
                    "classes": card.get("class_names", []),
                    "created_at": card.get("created_at"),
                    "val_metrics": {k: vm.get(k) for k in ("map50", "deeppcb_fscore") if k in vm},
                }
            )
        return out

    # changes -------------------------------------------------------------------------------------
    def sync_registry(self) -> list[Version]:
        """Versions new to the line become 'registered' (announced as model.registered)."""
        return self.states.register(self.line_id, self.role, list(versions_in(self.parts.registry, self.role)))

    def check(self, model: Version) -> Path:
        """The folder of ``model`` when it may serve this line: same classes and input kind as the active one."""
        from inspection.ml.gate import check_compatible

        folder = self.folder(model)
        active = self.active()
        engine = self.parts.engine
        line_input = None
        if engine is not None:
            line_input = "image" if self.role != "defect" or engine.reference is None else "reference"
        check_compatible(folder, self.folder(active) if active else None, line_input)
        if engine is not None:
            served = tuple(self._serving_detector().class_names)
            classes = tuple(read_card(folder)["class_names"])
            if classes != served:
                raise ModelError(f"{model}: classes {list(classes)} differ from the served model's {list(served)}")
        return folder

    def _built(self, folder: Path, shadow: bool = False) -> Detector | None:
        """The new model's detector, sessions built and warmed (None without an engine: loaded once to check it).

        A corrupt or missing ONNX file fails here, before anything changed."""
        build = (self.parts.build_shadow if shadow else None) or self.parts.build or (lambda f: load_detector(f))
        try:
            detector = build(folder)
            warm(detector)
        except ModelError:
            raise
        except Exception as error:  # ONNX Runtime's own errors (a truncated file, a bad graph)
            raise ModelError(f"{folder}: the model does not load: {type(error).__name__}: {error}") from None
        return detector if self.parts.engine is not None else None

    def activate(
        self,
        model: Version,
        who: str,
        why: str,
        action: str = "activated",
        forced: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> Change:
        """Serve ``model`` on the line from the next batch on; see the module docstring."""
        with self._lock:
            folder = self.check(model)
            detector = self._built(folder)
            change = self.states.activate(self.line_id, self.role, model, who, why, action, forced, detail)
            if detector is not None:
                self._swap(detector, model, folder)
            if self.shadow() is None and self.shadow_runner is not None:
                self._set_shadow(None)  # the shadow was promoted: it no longer runs beside itself
            self.announce()
            return change

    def _swap(self, detector: Detector, model: Version, folder: Path) -> None:
        engine = self.parts.engine
        assert engine is not None
        info = ModelInfo(model.name, str(model.version))
        if self.role == "defect":
            engine.swap_defect(detector, info, model_input(folder) == "reference")
        else:
            engine.swap_part(detector, info)

    def rollback(self, who: str, why: str) -> Change:
        """Back to the version active before the current one; ModelError when there is none."""
        with self._lock:
            stack = self.states.active_stack(self.line_id, self.role)
            if len(stack) < 2:
                now = stack[-1] if stack else self.active()
                raise ModelError(
                    f"line {self.line_id!r}: no previous {self.role} model to roll back to "
                    f"(active: {now or 'none'}, never replaced on this line)"
                )
            return self.activate(stack[-2], who, why, action="rolled_back")

    def promote(self, model: Version, who: str, why: str, gate: Callable[[Path, Path | None], Any], force: bool) -> Any:
        """Run ``gate(candidate, active)``; activate when it passes (or ``force``: recorded as forced).

        Refuses a second promotion of the line while one runs (Conflict), and a failed gate
        (GateRefused, with the figures). Returns the gate's result.
        """
        try:
            self.states.lock(self.line_id, who)
        except PromotionBusy as busy:
            raise Conflict(str(busy)) from None
        try:
            folder = self.check(model)
            active = self.active()
            result = gate(folder, self.folder(active) if active else None)
            if not result.passed and not force:
                raise GateRefused(f"{model}: the gate refused it: {'; '.join(result.failures())}", result)
            self.activate(model, who, why, forced=not result.passed, detail={"gate": result.as_dict()})
            return result
        finally:
            self.states.unlock(self.line_id)

    def start_shadow(self, model: Version, who: str, why: str) -> Change:
        """Run ``model`` beside the active one on this line's boards (stored apart)."""
        self._refuse_shadow_unless_defect(f"{model}")
        with self._lock:
            if model == self.active():
                raise ModelError(f"{model}: is the active model of line {self.line_id!r}; shadow another version")
            folder = self.check(model)
            detector = self._built(folder, shadow=True)
            change = self.states.start_shadow(self.line_id, self.role, model, who, why)
            if detector is not None:
                self._set_shadow(self._runner(detector, model))
            self.announce()
            return change

    def stop_shadow(self, who: str, why: str) -> Change | None:
        with self._lock:
            change = self.states.stop_shadow(self.line_id, self.role, who, why)
            self._set_shadow(None)
            self.announce()
            return change

    def _runner(self, detector: Detector, model: Version) -> ShadowRunner:
        engine = self.parts.engine
        assert engine is not None
        info = ModelInfo(model.name, str(model.version))
        write = self.states.add_shadow_verdicts
        return ShadowRunner(detector, info, engine.config.rules, self.line_id, write, self.parts.shadow).start()

    def _set_shadow(self, runner: ShadowRunner | None) -> None:
        engine = self.parts.engine
        if engine is not None:
            engine.set_shadow(runner)
        old, self.shadow_runner = self.shadow_runner, runner
        if old is not None:
            old.stop()

    def shadow_report(self, model: Version | None = None) -> dict[str, Any]:
        """The shadow report of ``model`` (default: the line's shadow, else the last one it had)."""
        from inspection.ml.shadow_report import shadow_report
        from inspection.store.model_states import shadow_pairs

        if model is None:
            model = self.shadow() or next((c.model for c in self.changes() if c.action == "shadow_started"), None)
        if model is None:
            raise ModelError(
                f"line {self.line_id!r}: no model ran in shadow yet (twinspect models shadow NAME:VERSION)"
            )
        active = self.active()
        report = shadow_report(
            shadow_pairs(self.states.engine, self.line_id, model), str(active) if active else None, str(model)
        )
        if self.shadow_runner is not None and self.shadow_runner.model.name == model.name:
            report["run"] = self.shadow_runner.figures()
        return report

    def review_order(
        self, limit: int = 100, flt: InspectionFilter | None = None, after: Place | None = None
    ) -> list[dict[str, Any]]:
        """The line's unreviewed boards (``flt`` narrows them) by expected information, highest first, then
        newest, only those after ``after`` (see inspection.store.information); each with its ``score`` and ``why``."""
        from inspection.store.information import ranked

        shadow = self.shadow() or next((c.model for c in self.changes() if c.action == "shadow_started"), None)
        return ranked(self.states.engine, self.line_id, shadow, self.parts.rules.fail_threshold, limit, flt, after)

    def watch(self) -> dict[str, Any] | None:
        """After the last promotion or rollback: its rates against the previous model's (see inspection.ml.watch).

        Once enough boards were made by the new model, the comparison is recorded with the change
        and each significant change is announced as model.alert (once). None: nothing to watch."""
        from inspection.ml.registry import parse_model_ref
        from inspection.ml.watch import TEST, compare
        from inspection.store.model_states import boards_of

        if self.role != "defect":
            return None  # the watch compares verdict rates: the defect model's
        last = next((c for c in self.changes() if c.action in ("activated", "rolled_back")), None)
        if last is None or last.previous is None or last.who == "config":
            return None
        if "watch" in last.detail and last.detail["watch"].get("done"):
            return dict(last.detail["watch"])
        n, engine = self.parts.watch_boards, self.states.engine
        after = boards_of(engine, self.line_id, last.model, n, after=last.at)
        state = {"model": str(last.model), "previous": last.previous, "since": last.at.isoformat(), "needed": n}
        if len(after) < n:
            return {**state, "done": False, "boards": len(after)}
        previous = Version(*parse_model_ref(last.previous))
        before = boards_of(engine, self.line_id, previous, n, before=last.at)
        classes = read_card(self.folder(last.model)).get("class_names", [])
        found = compare(before, after, classes, self.parts.watch_p)
        result = {
            **state,
            "done": True,
            "boards": min(len(before), len(after)),
            "test": TEST,
            "threshold": self.parts.watch_p,
            "alerts": [vars(c) for c in found],
        }
        self.states.set_detail(last.id, {**last.detail, "watch": result})
        self._alert(last, found)
        return result

    def _alert(self, last: Change, found: list[Any]) -> None:
        from sync.schemas import ModelAlertData

        sync = self.parts.sync
        if sync is None or not found:
            return
        alerts = [
            drafts.model_alert(
                self.line_id,
                self.parts.edge_id,
                ModelAlertData(
                    role=self.role,  # type: ignore[arg-type]
                    name=last.model.name,
                    version=str(last.model.version),
                    previous=last.previous or "none",
                    metric=c.metric,
                    boards=c.boards,
                    rate=c.rate,
                    previous_rate=c.previous_rate,
                    test="two-proportion z-test",
                    statistic=c.statistic,
                    p_value=c.p_value,
                    threshold=self.parts.watch_p,
                ),
            )
            for c in found
        ]
        sync.log.append(alerts)

    # the running service ---------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Serve what the database says (changes made by the CLI), then announce what is not announced yet."""
        with self._lock:
            self.sync_registry()
            engine = self.parts.engine
            if engine is not None and self.parts.build is not None:
                active = self.active()
                served = self.served()
                if active is not None and (served is None or (active.name, str(active.version)) != _pair(served)):
                    folder = self.folder(active)
                    self._swap(self._built(folder) or self._serving_detector(), active, folder)
                if self.role != "defect":
                    self.announce()
                    return
                shadow = self.shadow()
                running = self.shadow_runner.model if self.shadow_runner else None
                if shadow is None and running is not None:
                    self._set_shadow(None)
                elif shadow is not None and (
                    running is None or (running.name, running.version) != (shadow.name, str(shadow.version))
                ):
                    detector = self._built(self.folder(shadow), shadow=True)
                    assert detector is not None
                    self._set_shadow(self._runner(detector, shadow))
            self.announce()

    def start_line(self, served: Version | None, who: str = "config") -> None:
        """At a start: the served version is the line's active one. At the first start it is the bottom of the
        rollback stack; when the start chose another one than the history's (see model_runtime.served_settings)
        that is recorded as an activation by the config."""
        self.sync_registry()
        active = self.active()
        if served is not None and active != served:
            why = "the configured model at the first start" if active is None else "the configuration changed"
            self.states.activate(self.line_id, self.role, served, who, why)
        self.reconcile()

    def announce(self) -> None:
        """Append the event of every change not announced yet (only the serving process has an event log)."""
        sync = self.parts.sync
        if sync is None:
            return
        with _ANNOUNCING:
            pending = self.states.unannounced(self.line_id)
            found = [d for d in (self._draft(c) for c in pending) if d is not None]
            if found:
                sync.log.append(found)
            self.states.mark_announced(c.id for c in pending)

    def _twin_model(self, role: str) -> dict[str, Any] | None:
        sync = self.parts.sync
        try:
            return sync.twins.models(self.line_id).get(role) if sync is not None else None
        except Exception:  # no twin of this line yet
            return None

    def _draft(self, c: Change) -> Draft | None:
        info, edge = ModelInfo(c.model.name, str(c.model.version)), self.parts.edge_id
        if c.action == "registered":
            try:
                card = read_card(self.folder(c.model))
            except ModelError:
                return None
            kind, classes = str(card.get("input", "image")), list(card.get("class_names", []))
            return drafts.model_registered(c.role, info, kind, classes, self.line_id, edge)
        if c.action == "activated":
            seen = self._twin_model(c.role)
            if c.who == "config" and seen and (seen["name"], seen["version"]) == (info.name, info.version):
                return None  # the twin already shows it (a line that ran before model delivery)
            return drafts.model_activated(c.role, info, self.line_id, edge, c.previous, c.who, c.why, c.forced)
        if c.action == "rolled_back":
            return drafts.model_rolled_back(c.role, info, c.previous or "none", c.who, c.why, self.line_id, edge)
        if c.action == "shadow_started":
            active = self.states.in_state(self.line_id, c.role, "active")  # either role's desk announces it
            return drafts.model_shadow_started(
                c.role, info, str(active) if active else None, c.who, c.why, self.line_id, edge
            )
        return None  # shadow_stopped: the twin drops the shadow at the next activation

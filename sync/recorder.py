"""From the inspection engine to the event log: one CloudEvents draft per thing that happened.

``EngineRecorder`` is three things for the engine:
- a listener (``engine.add_listener``) for part.entered / part.exited / part.uninspected and
  the per-camera line state, which it folds into line.started / line.stopped for the line;
- the verdict sink's outbox: each stored batch of verdicts becomes part.inspected events,
  committed in one transaction with the inspection rows;
- a watcher of the cameras' state (camera.online / camera.offline) and, at start, of the
  active models (model.activated when a model differs from what the twin last saw) and of
  the line's recipe (line.recipe_changed when the configured one differs from the twin's).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from camera.frame import SourceState
from camera.source import FrameSource
from inspection.pipeline.parts import LineState, LineStateChanged, PartEntered, PartExited, PartUninspected
from inspection.pipeline.verdict import Verdict
from inspection.pipeline.verdict_sink import Inspected, ModelInfo
from inspection.store import InspectionRecord
from sync.events import Draft, rfc3339
from sync.log import EventLog
from sync.twin import TwinStore

log = logging.getLogger(__name__)


def _box(xyxy: Any) -> list[float]:
    return [round(float(v), 1) for v in list(xyxy)[:4]]


def line_recipe_draft(
    line_id: str, source: str, recipe: str | None, previous: str | None, golden_sha256: str | None, changed_by: str
) -> Draft:
    """The line.recipe_changed event: the line's recipe (and golden) is now ``recipe``, was ``previous``."""
    return Draft(
        "line.recipe_changed",
        line_id,
        source,
        {
            "line_id": line_id,
            "recipe": recipe,
            "previous": previous,
            "golden_sha256": golden_sha256,
            "changed_by": changed_by,
        },
    )


def _reference_data(verdict: Verdict) -> dict[str, Any]:
    """The golden-reference fields of part.inspected (all null without a golden)."""
    ref = verdict.reference
    if ref is None:
        return {"recipe": None, "golden_sha256": None, "alignment_score": None}
    score = float(ref.alignment_score)
    return {
        "recipe": ref.recipe,
        "golden_sha256": ref.golden_sha256,
        "alignment_score": round(score, 4) if math.isfinite(score) else None,
    }


class EngineRecorder:
    """See the module docstring."""

    def __init__(
        self,
        event_log: EventLog,
        twins: TwinStore,
        line_id: str,
        edge_id: str,
        models: Mapping[str, ModelInfo],
        poll_s: float = 0.5,
    ) -> None:
        self.log, self.twins, self.line_id, self.edge_id = event_log, twins, line_id, edge_id
        self.models = dict(models)
        self.poll_s = poll_s
        self._camera_line: dict[str, LineState] = {}
        self._line = LineState.UNKNOWN
        self._lock = threading.Lock()
        self._online: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def source(self, camera_id: str | None = None) -> str:
        return f"/twinspect/{self.edge_id}" + (f"/{camera_id}" if camera_id else "")

    def _draft(
        self,
        kind: str,
        data: dict[str, Any],
        camera_id: str | None = None,
        subject: str | None = None,
        time_iso: str | None = None,
    ) -> Draft:
        return Draft(kind, self.line_id, self.source(camera_id), data, subject=subject, time=time_iso or rfc3339())

    # engine listener ---------------------------------------------------------------------------
    def __call__(self, event: Any) -> None:
        drafts = self.drafts_for(event)
        if drafts:
            self.log.publish(drafts)

    def drafts_for(self, event: Any) -> list[Draft]:
        """Drafts of a camera-thread event, stamped now (frame times of simulated lines are media times)."""
        if isinstance(event, PartEntered):
            return [
                self._draft(
                    "part.entered",
                    {
                        "part_id": event.part_id,
                        "camera_id": event.camera_id,
                        "track_id": event.track_id,
                        "box": _box(event.board_xyxy),
                        "frame_seq": event.frame_seq,
                    },
                    event.camera_id,
                    event.part_id,
                )
            ]
        if isinstance(event, PartExited):
            return [
                self._draft(
                    "part.exited",
                    {
                        "part_id": event.part_id,
                        "camera_id": event.camera_id,
                        "inspected": event.inspected,
                        "frame_seq": event.frame_seq,
                    },
                    event.camera_id,
                    event.part_id,
                )
            ]
        if isinstance(event, PartUninspected):
            return [
                self._draft(
                    "part.uninspected",
                    {
                        "part_id": event.part_id,
                        "camera_id": event.camera_id,
                        "reason": event.reason,
                        "frame_seq": event.frame_seq,
                    },
                    event.camera_id,
                    event.part_id,
                )
            ]
        if isinstance(event, LineStateChanged):
            return self._line_drafts(event)
        return []

    def _line_drafts(self, event: LineStateChanged) -> list[Draft]:
        with self._lock:
            self._camera_line[event.camera_id] = event.state
            states = set(self._camera_line.values())
            line = (
                LineState.RUNNING
                if LineState.RUNNING in states
                else LineState.STOPPED
                if LineState.STOPPED in states
                else LineState.UNKNOWN
            )
            if line is self._line or line is LineState.UNKNOWN:
                return []
            self._line = line
        kind = "line.started" if line is LineState.RUNNING else "line.stopped"
        return [
            self._draft(
                kind,
                {
                    "camera_id": event.camera_id,
                    "frame_seq": event.frame_seq,
                    "cameras": {k: v.value for k, v in sorted(self._camera_line.items())},
                },
                None,
                None,
            )
        ]

    # verdict sink outbox -----------------------------------------------------------------------
    def outbox(
        self, handled: list[tuple[Inspected, InspectionRecord | None]], extra: Callable[[Any], None] | None
    ) -> Future[Any]:
        """Queue the batch's events with its rows; the future says when both are committed (or why not)."""
        return self.log.publish([self.inspected_draft(done, rec) for done, rec in handled], extra)

    def inspected_draft(self, done: Inspected, record: InspectionRecord | None) -> Draft:
        v = done.verdict
        model = self.models.get("defect")
        data = {
            "part_id": v.part_id,
            "camera_id": v.camera_id,
            "track_id": v.track_id,
            "inspection_id": record.id if record else None,
            "verdict": v.outcome.value,
            "defects": v.defects.boxes_json(),
            "reasons": list(v.reasons),
            "board_box": _box(v.board_xyxy),
            "frame_seq": v.frame_seq,
            "latency_ms": round(done.latency_s * 1000.0, 2),
            "model": {"name": model.name, "version": model.version} if model else None,
            "evidence_sha256": record.evidence_sha256 if record else None,
            "crop": {"width": record.crop_width, "height": record.crop_height} if record else None,
            **_reference_data(v),
        }
        return self._draft("part.inspected", data, v.camera_id, v.part_id, rfc3339(done.t_wall))

    # cameras and models ------------------------------------------------------------------------
    def start(self, sources: Mapping[str, FrameSource]) -> None:
        self.activate_models()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, args=(dict(sources),), name="camera-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def activate_models(self) -> None:
        try:
            seen = self.twins.models(self.line_id)
        except Exception:  # no twin yet for this line
            seen = {}
        drafts = []
        for role, info in sorted(self.models.items()):
            last = seen.get(role)
            if last is None or (last["name"], last["version"]) != (info.name, info.version):
                drafts.append(
                    self._draft("model.activated", {"role": role, "name": info.name, "version": info.version})
                )
        if drafts:
            self.log.publish(drafts)

    def announce_recipe(self, recipe: str | None, golden_sha256: str | None, changed_by: str = "config") -> bool:
        """At start: line.recipe_changed when the configured ``recipe`` (or its golden) differs from the twin's.

        Returns whether an event went out (it is published, not waited for).
        """
        previous, previous_sha = self.twins.line_recipe(self.line_id)
        if (previous, previous_sha) == (recipe, golden_sha256):
            return False
        self.log.publish([line_recipe_draft(self.line_id, self.source(), recipe, previous, golden_sha256, changed_by)])
        return True

    def camera_drafts(self, sources: Mapping[str, FrameSource]) -> list[Draft]:
        """camera.online / camera.offline for every camera whose state changed since the last call."""
        drafts = []
        for cid, src in sorted(sources.items()):
            st = src.stats()
            if st.state is SourceState.STARTING:
                continue
            online = bool(st.online)
            if self._online.get(cid) is online:
                continue
            if cid not in self._online and st.state is SourceState.STOPPED:
                continue
            self._online[cid] = online
            drafts.append(
                self._draft(
                    "camera.online" if online else "camera.offline",
                    {"camera_id": cid, "state": st.state.value, "last_error": st.last_error},
                    cid,
                )
            )
        return drafts

    def _watch(self, sources: dict[str, FrameSource]) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                drafts = self.camera_drafts(sources)
                if drafts:
                    self.log.publish(drafts)
            except Exception:
                log.exception("camera watcher failed")

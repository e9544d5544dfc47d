"""From the inspection engine to the event log: the engine's ``Recorder`` for a line with an event log.

``EngineRecorder`` is the one object ``api/runtime.py`` hands to the engine
(``inspection.pipeline.recording.Recorder``):
- ``record``: each batch of verdicts becomes part.inspected events, committed in one
  transaction with the inspection rows (the outbox), so the feed never announces a verdict
  the database lacks, nor the reverse;
- ``line_event``: part.entered / part.exited / part.uninspected, and the per-camera line
  state folded into line.started / line.stopped for the line;
- ``start``: model.activated when a model differs from what the twin last saw, the line's
  recipe (line.recipe_changed when the configured one differs from the twin's), and a watcher
  of the cameras' state (camera.online / camera.offline) until ``stop``. A twin that still shows
  the line running or a camera online at start was left by a run that never stopped cleanly (a
  crash, a power cut): the recorder first says so (camera.offline per such camera and
  line.stopped, reason ``unclean_shutdown``, stamped now);
- ``stop`` (a clean stop, after the engine's last verdict): the cameras' final states
  (camera.offline) and line.stopped with reason ``shutdown`` when the line was running (as
  the cameras saw it, or as the twin still shows it), committed before it returns, so the
  twin and its retained MQTT copy (published again when the forwarder closes) never say
  ``running`` about an edge that stopped.
Every event's data and source are made in ``sync.drafts``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from camera.frame import SourceState
from camera.source import FrameSource
from inspection.pipeline.events import Inspected, LineEvent, LineState, LineStateChanged
from inspection.pipeline.recording import Batch, ModelInfo
from inspection.pipeline.status import line_state
from inspection.store import InspectionRecord, InspectionStore
from sync import drafts
from sync.events import Draft
from sync.log import EventLog
from sync.twin import TwinStore

log = logging.getLogger(__name__)


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
        *,
        store: InspectionStore | None = None,
        line_recipe: tuple[str | None, str | None] | None = None,
    ) -> None:
        """``store``: where the rows go (None: events only); ``line_recipe``: (recipe, golden sha256) to announce
        at start when the twin knows another (None: the line compares no golden)."""
        self.log, self.twins, self.line_id, self.edge_id = event_log, twins, line_id, edge_id
        self.models = dict(models)
        self.poll_s = poll_s
        self.store, self.line_recipe = store, line_recipe
        self._camera_line: dict[str, LineState] = {}
        self._line = LineState.UNKNOWN
        self._lock = threading.Lock()
        self._online: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sources: dict[str, FrameSource] = {}

    @property
    def inspections(self) -> InspectionStore | None:
        return self.store

    def source(self, camera_id: str | None = None) -> str:
        return drafts.source_uri(self.edge_id, *([camera_id] if camera_id else []))

    # the engine's events -------------------------------------------------------------------------
    def line_event(self, event: LineEvent) -> None:
        found = self.drafts_for(event)
        if found:
            self.log.publish(found)

    def drafts_for(self, event: LineEvent) -> list[Draft]:
        """Drafts of a camera-thread event, stamped now (frame times of simulated lines are media times)."""
        if isinstance(event, LineStateChanged):
            return self._line_drafts(event)
        return [drafts.line_event(event, self.line_id, self.edge_id)]

    def _line_drafts(self, event: LineStateChanged) -> list[Draft]:
        with self._lock:
            self._camera_line[event.camera_id] = event.state
            line = line_state(set(self._camera_line.values()))
            if line is self._line or line is LineState.UNKNOWN:
                return []
            self._line = line
            cameras = dict(self._camera_line)
        return [drafts.line_state(event, line, cameras, self.line_id, self.edge_id)]

    def record(self, batch: Batch) -> Future[Any]:
        """Queue the batch's events with its rows; the future says when both are committed (or why not)."""
        rows = [row for _, row in batch if row is not None]
        adder = self.store.adder(rows) if self.store is not None and rows else None
        return self.log.publish([self.inspected_draft(done, row) for done, row in batch], adder)

    def inspected_draft(self, done: Inspected, record: InspectionRecord | None) -> Draft:
        model = done.model or self.models.get("defect")
        return drafts.part_inspected(done, record, model, self.line_id, self.edge_id)

    def flush(self, timeout_s: float) -> bool:
        return self.log.flush(timeout_s)

    # cameras, models, recipe ---------------------------------------------------------------------
    def start(self, sources: Mapping[str, FrameSource]) -> None:
        self.close_unclean_run()
        self.activate_models()
        if self.line_recipe is not None:
            self.announce_recipe(*self.line_recipe)
        self._stop.clear()
        self._sources = dict(sources)
        self._thread = threading.Thread(target=self._watch, args=(self._sources,), name="camera-watch", daemon=True)
        self._thread.start()

    def stop(self, flush_s: float = 5.0) -> None:
        """Stop the camera watcher; a started recorder then commits the cameras' last states and line.stopped."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(5.0)
        self._thread = None
        found = self.camera_drafts(self._sources)  # the sources are stopped: each camera seen online goes offline
        with self._lock:
            running, cameras = self._line is LineState.RUNNING, dict(self._camera_line)
            self._line = LineState.STOPPED
        if running or self.twins.presence(self.line_id)[0] == "running":
            found.append(drafts.line_halted(cameras, "shutdown", self.line_id, self.edge_id))
        if found:
            self.log.publish(found)
            if not self.log.flush(flush_s):
                log.warning("the line's last state (%d events) was not committed in %.1f s", len(found), flush_s)

    def close_unclean_run(self) -> None:
        """At start: line.stopped / camera.offline (unclean_shutdown) for what the twin still shows running."""
        status, online = self.twins.presence(self.line_id)
        reason = "unclean_shutdown"
        found = [
            drafts.camera_halted(cid, "the edge did not stop cleanly", self.line_id, self.edge_id) for cid in online
        ]
        if status == "running":
            found.append(drafts.line_halted({}, reason, self.line_id, self.edge_id))
        if found:
            log.warning("the last run of line %s did not stop cleanly: marking it stopped", self.line_id)
            self.log.publish(found)

    def activate_models(self) -> None:
        try:
            seen = self.twins.models(self.line_id)
        except Exception:  # no twin yet for this line
            seen = {}
        found = []
        for role, info in sorted(self.models.items()):
            last = seen.get(role)
            if last is None or (last["name"], last["version"]) != (info.name, info.version):
                found.append(drafts.model_activated(role, info, self.line_id, self.edge_id))
        if found:
            self.log.publish(found)

    def announce_recipe(self, recipe: str | None, golden_sha256: str | None, changed_by: str = "config") -> bool:
        """At start: line.recipe_changed when the configured ``recipe`` (or its golden) differs from the twin's.

        Returns whether an event went out (it is published, not waited for).
        """
        previous, previous_sha = self.twins.line_recipe(self.line_id)
        if (previous, previous_sha) == (recipe, golden_sha256):
            return False
        change = drafts.line_recipe_changed(self.line_id, self.source(), recipe, previous, golden_sha256, changed_by)
        self.log.publish([change])
        return True

    def camera_drafts(self, sources: Mapping[str, FrameSource]) -> list[Draft]:
        """camera.online / camera.offline for every camera whose state changed since the last call."""
        found = []
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
            found.append(drafts.camera_state(cid, st, online, self.line_id, self.edge_id))
        return found

    def _watch(self, sources: dict[str, FrameSource]) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                found = self.camera_drafts(sources)
                if found:
                    self.log.publish(found)
            except Exception:
                log.exception("camera watcher failed")

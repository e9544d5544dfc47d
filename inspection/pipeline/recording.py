"""The engine's one port for what happens to its results: ``Recorder``.

A verdict is recorded once its evidence JPEG is on disk: ``record`` stores the batch's rows
and appends their ``part.inspected`` events in one transaction, and its future resolves when
both are committed (or says why not; the verdict backlog retries). The line events of the
camera threads, the start (models, recipe, camera watch) and the stop go to the same object,
so ``api/runtime.py`` wires one recorder into the engine and nothing else.

``sync.recorder.EngineRecorder`` is the recorder of a line with an event log; ``StoreRecorder``
stores the rows alone (no events), for a process without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from camera.source import FrameSource
from inspection.pipeline.events import Inspected, LineEvent, ModelInfo
from inspection.store import InspectionRecord, InspectionStore

__all__ = ["Batch", "ModelInfo", "Recorder", "StoreRecorder"]

Batch = Sequence[tuple[Inspected, InspectionRecord | None]]  # finished boards, each with its row (None: no row)


class Recorder(Protocol):
    """Where the engine's results go; see the module docstring. Methods are called from the engine's threads."""

    @property
    def inspections(self) -> InspectionStore | None:
        """The store the rows go to (None: events only)."""

    def start(self, sources: Mapping[str, FrameSource]) -> None:
        """The sources started: announce what the line runs, watch the cameras."""

    def line_event(self, event: LineEvent) -> None:
        """A camera thread's event: part entered / exited / uninspected, the line state one camera saw."""

    def record(self, batch: Batch) -> Future[Any]:
        """Store the rows and append the events of ``batch`` in one transaction; the future resolves when
        they are committed, or with the error that kept them out."""

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything recorded so far is committed; False on timeout."""

    def stop(self) -> None:
        """The last verdict was handed on: stop watching."""


class StoreRecorder:
    """The recorder of a process without an event log: each batch's rows in one transaction of the store."""

    def __init__(self, store: InspectionStore) -> None:
        self.store = store

    @property
    def inspections(self) -> InspectionStore | None:
        return self.store

    def start(self, sources: Mapping[str, FrameSource]) -> None:
        pass

    def line_event(self, event: LineEvent) -> None:
        pass

    def record(self, batch: Batch) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            self.store.save_many([row for _, row in batch if row is not None])
            done.set_result(None)
        except Exception as error:  # the backlog judges it (retry, one by one, refuse)
            done.set_exception(error)
        return done

    def flush(self, timeout_s: float) -> bool:
        return True

    def stop(self) -> None:
        pass

"""The verdicts made but not stored yet, and how they get stored, whatever the disk does.

``add`` makes a finished board's row and evidence JPEG (``inspection_record``). The JPEG is
written first (``EvidenceStore.put``), then the row, in a batch, through the engine's
``Recorder`` (with an event log: the rows and their ``part.inspected`` events in one
transaction), which acknowledges the batch through a future. Boards wait here, in order,
until their batch is acknowledged.

- A write that may work later (no space, a database that cannot be reached or is
  locked: ``StoreUnavailableError``, ``OSError``) keeps its boards, and the next try comes
  after an exponential backoff (``retry_s``); the fault is reported to ``Health``
  (``evidence`` or ``database``) and cleared by the first write that works.
- A batch refused for good (a constraint) is tried again one board at a time; a board
  refused alone is counted (``refused``) and logged.
- Bounded: while writes fail, beyond ``max_backlog`` boards still holding their JPEG, the
  oldest give theirs up; they will be stored ``uncertain`` with the reason, over a grey
  placeholder of the crop's size (so a record never names a missing file). Beyond
  ``max_kept`` boards the oldest are lost, counted and logged by part id.

Every board thus ends as a stored verdict or a counted, logged failure.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected
from inspection.pipeline.recording import ModelInfo, Recorder
from inspection.pipeline.telemetry import Health, Telemetry
from inspection.pipeline.verdict import inspection_record
from inspection.store import EvidenceStore, InspectionRecord, StoreUnavailableError, encode_jpeg

log = logging.getLogger(__name__)


_NO_CROP = np.zeros((0, 0, 3), np.uint8)


@dataclass(frozen=True)
class StoreLimits:
    """How much the verdict path holds while storage fails, and how it retries."""

    batch: int = 64  # boards per commit
    interval_s: float = 0.2  # a board waits at most this long for its batch to fill
    max_backlog: int = 500  # boards holding their evidence JPEG (about 50-150 kB each) while it cannot be written
    max_kept: int = 20_000  # boards kept at all (beyond max_backlog: the verdict only, ~2 kB each)
    max_inflight: int = 8  # batches handed to the outbox and not acknowledged yet
    retry_s: tuple[float, float] = (0.05, 2.0)  # first and longest wait between failed writes


@dataclass(eq=False)
class _Board:
    seq: int
    done: Inspected  # its verdict's crop dropped (the JPEG holds the pixels)
    record: InspectionRecord | None  # None: only the event is stored (no inspection store)
    jpeg: bytes | None  # evidence still to write; None once written or given up
    since: float = field(default_factory=time.monotonic)
    alone: bool = False  # its batch was refused: try it on its own

    @property
    def needs_evidence(self) -> bool:
        return self.record is not None and not self.record.evidence_sha256


@functools.lru_cache(maxsize=16)
def placeholder_jpeg(width: int, height: int) -> bytes:
    """A grey image of the crop's size saying the evidence was not stored (same bytes for the same size)."""
    image = np.full((max(1, height), max(1, width), 3), 128, np.uint8)
    scale = max(0.3, min(width, height) / 400)
    cv2.putText(
        image,
        "evidence not stored",
        (8, max(16, height // 2)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        max(1, int(scale * 2)),
    )
    return encode_jpeg(image, 60)


def _transient(error: BaseException) -> bool:
    return isinstance(error, StoreUnavailableError | OSError)


def _uncertain(done: Inspected, record: InspectionRecord, reason: str) -> tuple[Inspected, InspectionRecord]:
    """The board stored uncertain, with ``reason`` added (its verdict's outcome is kept in the reason)."""
    verdict = done.verdict
    reasons = (*verdict.reasons, reason)
    done = replace(done, verdict=replace(verdict, outcome=Outcome.UNCERTAIN, reasons=reasons))
    return done, replace(record, outcome=Outcome.UNCERTAIN, reasons=reasons)


class VerdictBacklog:
    """See the module docstring. Used by the verdict thread only (not thread-safe)."""

    def __init__(
        self,
        recorder: Recorder | None,
        evidence: EvidenceStore | None,
        line_id: str,
        model: ModelInfo,
        limits: StoreLimits,
        telemetry: Telemetry,
        wake: Callable[[], None],
    ) -> None:
        self.recorder, self.evidence = recorder, evidence
        self.line_id, self.model = line_id, model
        self.limits, self.telemetry, self.wake = limits, telemetry, wake
        self.health: Health = telemetry.health
        self._waiting: deque[_Board] = deque()
        self._holding: deque[_Board] = deque()  # boards of _waiting still holding their JPEG (some may not any more)
        self._inflight: list[tuple[list[_Board], Future[Any]]] = []
        self._seq = 0
        self._retry_at = 0.0
        self._streak = 0
        self.stored = self.refused = self.lost = self.reduced = 0
        self._unstored = 0  # boards added and not stored, refused or lost yet

    # state -------------------------------------------------------------------------------------
    @property
    def stores(self) -> bool:
        """Whether anything is recorded at all (no recorder: verdicts are only shown)."""
        return self.recorder is not None

    def pending(self) -> int:
        """Boards not stored yet and not counted as failed (safe to read from any thread)."""
        return self._unstored

    def lowest_seq(self) -> int | None:
        """The oldest board not stored yet (flushes wait until it is past theirs)."""
        seqs = [self._waiting[0].seq] if self._waiting else []
        seqs += [boards[0].seq for boards, _ in self._inflight]
        return min(seqs) if seqs else None

    @property
    def last_seq(self) -> int:
        return self._seq

    def failing(self) -> bool:
        return any(f.component in ("evidence", "database") for f in self.health.faults())

    def figures(self) -> dict[str, Any]:
        faults = [f for f in self.health.faults() if f.component in ("evidence", "database")]
        return {
            "state": "failing" if faults else "ok",
            "pending": self.pending(),
            "stored": self.stored,
            "evidence_dropped": self.reduced,
            "refused": self.refused,
            "lost": self.lost,
            "faults": [{"component": f.component, "reason": f.reason, "since": f.since} for f in faults],
        }

    # boards in -----------------------------------------------------------------------------------
    def add(self, done: Inspected) -> int | None:
        """Queue a finished board for storing (its row and evidence JPEG made here, when there is an evidence
        store); returns its sequence number, None when the board cannot be stored (counted as refused)."""
        record, jpeg = None, None
        try:
            if self.evidence is not None:
                verdict, model = done.verdict, done.model or self.model
                jpeg = encode_jpeg(verdict.crop, 90)
                record = inspection_record(
                    verdict,
                    line_id=self.line_id,
                    model_name=model.name,
                    model_version=model.version,
                    captured_at=datetime.fromtimestamp(done.t_wall, UTC),
                    evidence_sha256="",
                )
        except Exception as exc:  # a crop that cannot be encoded: counted as refused, never silently gone
            self.refuse(done.verdict.part_id, exc)
            return None
        done = replace(done, verdict=replace(done.verdict, crop=_NO_CROP))
        self._seq += 1
        self._unstored += 1
        board = _Board(self._seq, done, record, jpeg)
        self._waiting.append(board)
        if jpeg is not None:
            self._holding.append(board)
        self._bound()
        return self._seq

    # the work ------------------------------------------------------------------------------------
    def step(self, force: bool = False) -> float:
        """Take acknowledgements, store what is due (``force``: whatever waits); returns when to come back (s)."""
        self._poll()
        now = time.monotonic()
        if self._waiting and now >= self._retry_at and len(self._inflight) < self.limits.max_inflight:
            oldest = self._waiting[0].since
            if force or len(self._waiting) >= self.limits.batch or now - oldest >= self.limits.interval_s:
                self._store_next()
        self._bound()
        if not self._waiting:
            return self.limits.interval_s
        wait = self._retry_at - time.monotonic() if self._retry_at else self.limits.interval_s
        return max(0.001, min(self.limits.interval_s, wait))

    def _store_next(self) -> None:
        first = self._waiting[0]
        take = [first]
        for board in list(self._waiting)[1 : self.limits.batch] if not first.alone else ():
            if board.alone:
                break
            take.append(board)
        ready = self._write_evidence(take)
        if ready:
            for _ in ready:
                self._waiting.popleft()
            self._submit(ready)

    def _write_evidence(self, boards: list[_Board]) -> list[_Board]:
        """Write the evidence of ``boards`` in order; returns those ready (it stops at the first failure)."""
        ready = []
        for board in boards:
            if board.needs_evidence and self.evidence is not None:
                assert board.record is not None
                data = board.jpeg or placeholder_jpeg(board.record.crop_width, board.record.crop_height)
                try:
                    sha = self.evidence.put(data)
                except Exception as error:
                    if not _transient(error):  # cannot ever be written (not a JPEG): the board is refused
                        self._refuse(board, error)
                        self._waiting.remove(board)
                        continue
                    self._failed("evidence", error)
                    break
                board.record, board.jpeg = replace(board.record, evidence_sha256=sha), None
                self.health.clear("evidence")
            ready.append(board)
        return ready

    def _submit(self, boards: list[_Board]) -> None:
        handled = [(b.done, b.record) for b in boards]
        fut: Future[Any]
        try:
            assert self.recorder is not None
            fut = self.recorder.record(handled)
        except Exception as error:  # failed before or while committing: judged like a failed acknowledgement
            fut = Future()
            fut.set_exception(error)
        self._inflight.append((boards, fut))
        fut.add_done_callback(lambda _: self.wake())

    def _poll(self) -> None:
        for entry in [e for e in self._inflight if e[1].done()]:
            self._inflight.remove(entry)
            boards, fut = entry
            error = fut.exception()
            if error is None:
                self._stored(boards)
            elif _transient(error):
                self._failed("database", error)
                self._requeue(boards)
            elif len(boards) > 1:
                log.warning(
                    "storing a batch of %d verdicts was refused (%s); storing them one by one", len(boards), error
                )
                for board in boards:
                    board.alone = True
                self._requeue(boards)
            else:
                self._refuse(boards[0], error)

    def _stored(self, boards: list[_Board]) -> None:
        self.stored += len(boards)
        self._unstored -= len(boards)
        self.health.clear("database")
        self._retry_at, self._streak = 0.0, 0

    def _requeue(self, boards: list[_Board]) -> None:
        self._waiting = deque(sorted([*boards, *self._waiting], key=lambda b: b.seq))

    def _failed(self, what: str, error: BaseException) -> None:
        """A write that may work later failed: report the fault, back off."""
        self.telemetry.store_retries.labels(what).inc()
        self.health.fail(what, str(error))
        first, longest = self.limits.retry_s
        self._retry_at = time.monotonic() + min(longest, first * 2 ** min(self._streak, 30))
        self._streak += 1

    def _refuse(self, board: _Board, error: BaseException) -> None:
        board.jpeg = None
        self._unstored -= 1
        self.refuse(board.done.verdict.part_id, error)

    def refuse(self, part_id: str, error: BaseException) -> None:
        """Count and log a board that can never be stored (storage refused it for good)."""
        self.refused += 1
        log.error("verdict of %s could not be stored and is dropped: %s", part_id, error)

    # bounds ----------------------------------------------------------------------------------------
    def _bound(self) -> None:
        while self._holding and self._holding[0].jpeg is None:  # written or dropped meanwhile
            self._holding.popleft()
        while self._streak and len(self._holding) > self.limits.max_backlog:  # only while writes fail
            board = self._holding.popleft()
            if board.jpeg is not None:
                self._drop_evidence(board)
        while len(self._waiting) > self.limits.max_kept:
            board = self._waiting.popleft()
            board.jpeg = None
            self.lost += 1
            self._unstored -= 1
            log.error(
                "verdict of %s lost: %d verdicts wait to be stored (at most %d)",
                board.done.verdict.part_id,
                len(self._waiting) + 1,
                self.limits.max_kept,
            )

    def _drop_evidence(self, board: _Board) -> None:
        assert board.record is not None
        fault = next((f.reason for f in self.health.faults() if f.component == "evidence"), "storage is behind")
        reason = f"uncertain: evidence image not stored ({fault}); the model's verdict was {board.record.outcome.value}"
        board.done, board.record = _uncertain(board.done, board.record, reason)
        board.jpeg = None
        self.reduced += 1

    def give_up(self, why: str) -> int:
        """Count and log every board not stored yet as lost (the engine stops while storage fails)."""
        boards = [*self._waiting, *(b for batch, _ in self._inflight for b in batch)]
        if boards:
            ids = ", ".join(b.done.verdict.part_id for b in boards[:20])
            more = f" and {len(boards) - 20} more" if len(boards) > 20 else ""
            log.error("%d verdicts not confirmed stored (%s): %s%s", len(boards), why, ids, more)
        self.lost += len(boards)
        self._unstored -= len(boards)
        self._waiting.clear()
        self._holding.clear()
        self._inflight.clear()
        return len(boards)

"""The hub's copy of the QA data: its edges' inspections, with their evidence JPEGs.

Each ``part.inspected`` event that names a stored inspection (``inspection_id``,
``evidence_sha256`` and ``crop`` set) becomes a row of the hub's own ``InspectionStore``
(same schema as an edge's: id = the edge's inspection id, boxes from ``defects``, captured at
the event's time). The ``Hub`` calls ``apply`` with every event it stored or found stored,
before acking them, so a crash in between redelivers them; ``apply`` is idempotent (an
inspection id, or a part, already stored is skipped).

The evidence JPEG is fetched from the JetStream object store bucket the edges put it in
(``NatsSettings.evidence_bucket``, object named by its sha256) into the hub's EvidenceStore;
with a goldens folder, so is the golden image a golden-reference inspection was compared with
(object ``golden-<sha256>``, checked as the recipes check a golden) so QA on the hub sees the pair.
Fetching never holds up the event stream: ``apply`` only queues the missing shas and the
hub calls ``fetch_due`` after each step; an object not there yet is tried again later
(backoff up to ``retry_max_s``, given up after ``give_up_s``). Meanwhile the row exists and its
evidence endpoint answers 404. ``review.corrected`` events from edges change nothing here:
reviews of the hub's copy happen on the hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from inspection.core.outcome import Outcome
from inspection.reference.goldens import GoldenFiles, check_golden
from inspection.reference.recipes import RecipeError
from inspection.store import BoxRecord, EvidenceError, InspectionRecord, InspectionStore
from sync.config import NatsSettings
from sync.events import Event
from sync.nats import GOLDEN_OBJECT, evidence_bucket, golden_object
from sync.schemas import PartInspectedData

log = logging.getLogger(__name__)


def inspection_record(event: Event) -> InspectionRecord | None:
    """The inspection a part.inspected event describes; None for other events or one not stored on its edge."""
    if event.type != "part.inspected":
        return None
    data = PartInspectedData.model_validate(event.cloudevent().get("data"))
    if data.inspection_id is None or data.evidence_sha256 is None or data.crop is None:
        return None
    if len(data.inspection_id) > 36 or len(data.part_id) > 200:
        raise ValueError(f"inspection id {data.inspection_id[:40]!r} or part id too long")
    x1, y1, x2, y2 = (float(v) for v in data.board_box)
    return InspectionRecord(
        id=data.inspection_id,
        part_id=data.part_id,
        line_id=event.line_id,
        camera_id=data.camera_id,
        track_id=data.track_id,
        outcome=Outcome(data.verdict),
        reasons=tuple(data.reasons),
        model_name=data.model.name if data.model else "unknown",
        model_version=data.model.version if data.model else "unknown",
        frame_seq=data.frame_seq,
        captured_at=datetime.fromisoformat(event.time.replace("Z", "+00:00")),
        evidence_sha256=data.evidence_sha256,
        board_xyxy=(x1, y1, x2, y2),
        crop_width=data.crop.width,
        crop_height=data.crop.height,
        boxes=tuple(
            BoxRecord(
                float(b.xyxy[0]),
                float(b.xyxy[1]),
                float(b.xyxy[2]),
                float(b.xyxy[3]),
                float(b.confidence),
                b.class_name,
            )
            for b in data.defects
        ),
        recipe=data.recipe,
        golden_sha256=data.golden_sha256,
        alignment_score=data.alignment_score,
    )


@dataclass
class _Pending:
    first: float  # when it was queued
    due: float  # next attempt
    attempts: int = 0


class InspectionProjection:
    """Keeps the hub's InspectionStore in step with its edges' part.inspected events; see the module docstring."""

    def __init__(
        self,
        store: InspectionStore,
        settings: NatsSettings,
        *,
        retry_s: float = 0.5,
        retry_max_s: float = 30.0,
        give_up_s: float = 3600.0,
        fetch_per_step: int = 64,
        fetch_timeout_s: float = 10.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        goldens: GoldenFiles | None = None,
    ) -> None:
        self.store, self.settings, self.goldens = store, settings, goldens
        self.retry_s, self.retry_max_s, self.give_up_s = retry_s, retry_max_s, give_up_s
        self.fetch_per_step, self.fetch_timeout_s, self.max_pending = fetch_per_step, fetch_timeout_s, max_pending
        self.clock = clock
        self.stored = 0  # inspection rows written
        self.known = 0  # inspections already stored (redelivered or re-sent events)
        self.invalid = 0  # part.inspected events that could not become a row (logged, skipped)
        self.fetched = 0  # evidence JPEGs fetched from the bucket
        self.goldens_fetched = 0  # golden images fetched from the bucket
        self.given_up = 0  # objects never found in give_up_s (or not matching their sha, or not an image)
        self._pending: dict[str, _Pending] = {}  # object name -> retry state, in queue order
        self._bucket: ObjectStore | None = None

    @property
    def pending(self) -> int:
        """Evidence JPEGs and golden images waiting to be fetched."""
        return len(self._pending)

    # rows (in a worker thread) -----------------------------------------------------------------
    def save(self, events: Sequence[Event]) -> list[str]:
        """Store the inspections of ``events`` not stored yet; returns the bucket objects missing on disk."""
        records = []
        for event in events:
            try:
                rec = inspection_record(event)
            except ValueError as error:  # pydantic's ValidationError is one
                self.invalid += 1
                log.error("hub: event %s: no inspection row: %s", event.id, error)
                continue
            if rec is not None:
                records.append(rec)
        if not records:
            return []
        new = self.store.save_new(records)  # StoreUnavailableError: the hub retries the whole batch
        self.stored += len(new)
        self.known += len(records) - len(new)
        shas = dict.fromkeys(r.evidence_sha256 for r in records)
        missing = [sha for sha in shas if sha not in self._pending and not self.store.evidence.exists(sha)]
        if self.goldens is not None:
            goldens = dict.fromkeys(r.golden_sha256 for r in records if r.golden_sha256)
            missing += [
                golden_object(g) for g in goldens if golden_object(g) not in self._pending and not self._has_golden(g)
            ]
        return missing

    def _has_golden(self, sha256: str) -> bool:
        assert self.goldens is not None
        try:
            return self.goldens.find(sha256) is not None
        except RecipeError:  # not a sha256: nothing to fetch
            return True

    async def apply(self, events: Sequence[Event]) -> None:
        """Store the rows (idempotent) and queue their missing evidence; the Hub calls it before acking."""
        missing = await asyncio.to_thread(self.save, events)
        now = self.clock()
        for sha in missing:
            self._pending[sha] = _Pending(now, now)
        while len(self._pending) > self.max_pending:
            sha = next(iter(self._pending))
            del self._pending[sha]
            self.given_up += 1
            log.warning("hub: evidence queue full; giving up on %s", sha)

    # evidence (on the hub's loop) --------------------------------------------------------------
    async def fetch_due(self, js: JetStreamContext) -> int:
        """Fetch up to ``fetch_per_step`` due evidence JPEGs; returns how many were stored."""
        now = self.clock()
        due = [sha for sha, p in self._pending.items() if p.due <= now][: self.fetch_per_step]
        if not due:
            return 0
        if self._bucket is None:
            try:
                self._bucket = await evidence_bucket(js, self.settings, create=False)
            except BucketNotFoundError:  # no edge has put evidence yet
                for sha in due:
                    self._later(sha, now, "no bucket yet")
                return 0
        done = 0
        for name in due:
            golden = name.startswith(GOLDEN_OBJECT)
            sha = name.removeprefix(GOLDEN_OBJECT)
            try:
                result = await asyncio.wait_for(self._bucket.get(name), self.fetch_timeout_s)
                data = bytes(result.data or b"")
                stored = await asyncio.to_thread(self._store_golden if golden else self.store.evidence.put, data)
            except NotFoundError:  # ObjectNotFoundError and a bucket deleted meanwhile
                self._later(name, now, "not in the bucket yet")
                continue
            except (EvidenceError, RecipeError) as error:  # not a JPEG (not an image), or the disk refused it
                self._later(name, now, str(error))
                continue
            except Exception as error:  # connection trouble, digest mismatch, timeout: the bucket is re-opened
                self._bucket = None
                self._later(name, now, f"{type(error).__name__}: {error}")
                break
            del self._pending[name]
            if stored != sha:
                self.given_up += 1
                log.error("hub: object %s holds bytes of sha256 %s; not used", name, stored)
                continue
            if golden:
                self.goldens_fetched += 1
            else:
                self.fetched += 1
            done += 1
        return done

    def _store_golden(self, data: bytes) -> str:
        """Check a golden image's bytes as a recipe's golden is checked and store them; their sha256."""
        assert self.goldens is not None
        checked = check_golden(data, "golden image from the bucket")
        self.goldens.put_many([checked])
        return checked.sha256

    def _later(self, sha: str, now: float, why: str) -> None:
        p = self._pending[sha]
        p.attempts += 1
        if now - p.first >= self.give_up_s:
            del self._pending[sha]
            self.given_up += 1
            log.error(
                "hub: object %s: %s after %.0f s; giving up (its inspection has no image)", sha, why, now - p.first
            )
            return
        p.due = now + min(self.retry_max_s, self.retry_s * 2 ** min(p.attempts - 1, 16))
        log.debug("hub: object %s: %s; retry %d in %.1f s", sha, why, p.attempts, p.due - now)

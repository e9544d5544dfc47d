"""The inspection engine: cameras -> part model -> tracking -> trigger -> defect model -> verdicts.

One thread per camera reads its source, asks the shared part-model worker for the
boards in the frame (frames of all cameras are batched there), and feeds them to that
camera's PartTracker. Each inspection request (one per board) goes to the shared
defect-model worker; its result goes to the VerdictSink, which applies the rules and hands
the verdict on: to the listeners, and to the verdict backlog that records it through the
engine's one ``Recorder`` (stored row and event in one transaction). Line events
(part.entered, part.exited, part.uninspected, line.started/stopped) go from the camera
threads to the listeners and the recorder. ``status()`` is a frozen snapshot of it all.

Faults: every stage thread is supervised. A camera loop that fails on a frame counts it
(``twinspect_stage_errors_total``) and goes on with the next; one that fails outside a
frame starts over after a pause. An aligner task or a defect-model result that fails
makes its board ``uncertain`` with the reason, never lost. The stages' queues are bounded
and push back (the camera buffer then drops its oldest frames, counted); the verdict
thread's own bounds and retries are in verdict_sink.py / verdict_backlog.py. Faults that
last (storage refusing writes) are in ``health`` (``faults()``), for /readyz and the
live status.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from camera.errors import UnknownCamera
from camera.frame import BoardTruth, Frame
from camera.push import PushSource
from camera.source import FrameSource
from inspection.core.detections import Detections, Detector
from inspection.core.errors import ModelError
from inspection.core.outcome import Outcome
from inspection.inference.nms import box_iou
from inspection.inference.worker import BatchStats, InferenceWorker
from inspection.pipeline.events import EngineEvent, Inspected, LineEvent, Listener, Listeners, PartTriggered
from inspection.pipeline.parts import BoardInView, InspectRequest, PartsConfig, PartsUpdate, PartTracker
from inspection.pipeline.recording import ModelInfo, Recorder
from inspection.pipeline.reference_stage import Prepared, ReferenceStage
from inspection.pipeline.rules import RulesConfig
from inspection.pipeline.shadow import ShadowTap
from inspection.pipeline.status import CameraStatus, EngineStatus, line_state
from inspection.pipeline.telemetry import CameraFigures, Fault, Figure, StageClock, Telemetry
from inspection.pipeline.verdict_sink import PendingInspection, SinkLimits, VerdictSink
from inspection.reference.recipes import Golden
from inspection.store import EvidenceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs; built from the settings by the caller."""

    line_id: str = "line-1"
    parts: PartsConfig = field(default_factory=PartsConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    max_batch: int = 8
    max_wait_ms: float = 4.0
    camera_tokens: dict[str, str] = field(default_factory=dict)
    part_runners: int = 1  # images of each model run side by side (see InferenceWorker)
    defect_runners: int = 1
    sink: SinkLimits = field(default_factory=SinkLimits)  # verdict queue, storage backlog and retries


class _CameraLoop:
    """One camera's thread: read, detect boards, track, request inspections."""

    def __init__(self, engine: Engine, source: FrameSource) -> None:
        self.engine, self.source = engine, source
        self.camera_id: str = source.camera_id  # type: ignore[attr-defined]
        self.parts = PartTracker(self.camera_id, engine.config.parts, run_id=engine.run_id)
        self.latest: tuple[Frame, Detections, tuple[BoardInView, ...]] | None = None
        self.frames = 0
        self._frames_seen: dict[int, int] = {}
        self.thread = threading.Thread(target=self.run, name=f"camera-{self.camera_id}", daemon=True)

    def run(self) -> None:
        """Supervised: a failure outside a frame is counted and the loop starts over (pause 0.1 s, up to 5 s)."""
        eng, pause = self.engine, 0.1
        while True:
            try:
                self.loop()
                break
            except Exception as exc:
                eng.health.error(f"camera {self.camera_id}", exc)
                if eng.stopping.wait(pause):
                    break
                pause = min(5.0, pause * 2)
        try:
            self.handle(self.parts.close(), None)
        except Exception as exc:
            eng.health.error(f"camera {self.camera_id}", exc, "closing its tracks")

    def loop(self) -> None:
        """Keep frames at the part model (one running and one waiting per runner); track results in order.

        In real time a frame is usually done before the next arrives, so this adds no latency;
        in a backlog (replay) no runner ever waits for this thread to hand it a frame.
        """
        eng = self.engine
        depth = 2 * eng.part_worker.runners
        pending: deque[tuple[Frame, float, Future[Detections]]] = deque()
        while not eng.stopping.is_set():
            frame = self.source.read(timeout=0.0 if pending else 0.25) if len(pending) < depth else None
            if frame is not None:
                pending.append((frame, time.monotonic(), eng.part_worker.submit(frame.image)))
                continue
            if pending:  # the pipeline is full, or no frame is waiting: finish the oldest
                self.safe_step(*pending.popleft())
            elif self.source.drained:  # closed and empty: a finite source has delivered everything
                break
        while pending:
            self.safe_step(*pending.popleft())

    def safe_step(self, frame: Frame, t_submit: float, boards_future: Future[Detections]) -> None:
        """``step``, but a frame that fails (the part model, the tracker) is counted and skipped."""
        try:
            self.step(frame, t_submit, boards_future)
        except Exception as exc:
            self.engine.health.error(f"camera {self.camera_id}", exc, f"frame {frame.seq}")

    def step(self, frame: Frame, t_submit: float, boards_future: Future[Detections]) -> None:
        eng = self.engine
        boards = boards_future.result(30.0)
        t1 = time.monotonic()
        update = self.parts.update(boards, frame)
        eng.clock.add("part_model", t1 - t_submit)
        eng.clock.add("tracking", time.monotonic() - t1)
        self.frames += 1
        for tid in update.tracks.track_id.tolist():
            self._frames_seen[tid] = self._frames_seen.get(tid, 0) + 1
        self.latest = (frame, boards, self.parts.in_view(update.tracks))
        self.handle(update, frame)

    def handle(self, update: PartsUpdate, frame: Frame | None) -> None:
        eng = self.engine
        arrived: tuple[LineEvent, ...] = (*update.entered, *update.line_events)
        for event in arrived:
            eng.emit(event)
        for req in update.requests:
            if frame is not None:
                eng.listeners.emit(_triggered(req, frame))
            truth = _match_truth(frame, req.board_xyxy) if frame is not None else None
            seen = self._frames_seen.get(req.track_id, 0)
            eng.submit_inspection(req, truth, seen)
        left: tuple[LineEvent, ...] = (*update.exited, *update.uninspected)
        for event in left:
            eng.emit(event)
        for ex in update.exited:
            self._frames_seen.pop(ex.track_id, None)

    def status(self) -> CameraStatus:
        latest = self.latest
        return CameraStatus(
            self.camera_id,
            self.source.stats(),
            self.parts.counters,
            self.frames,
            latest[0] if latest else None,
            latest[1] if latest else None,
            latest[2] if latest else (),
        )


def _triggered(req: InspectRequest, frame: Frame) -> PartTriggered:
    return PartTriggered(
        req.part_id, req.camera_id, req.track_id, req.board_xyxy, req.frame_seq, req.t_capture, frame.t_stream
    )


def _match_truth(frame: Frame, box: np.ndarray) -> BoardTruth | None:
    """The simulated board under a detected box (highest IoU, at least 0.3)."""
    if not frame.truth:
        return None
    iou = box_iou(box[None, :].astype(np.float32), np.stack([t.xyxy for t in frame.truth]).astype(np.float32))[0]
    best = int(iou.argmax())
    return frame.truth[best] if iou[best] >= 0.3 else None


def _run_id() -> str:
    """A short id, different for every engine start (part ids embed it, so restarts never collide)."""
    n = time.time_ns() // 1_000_000
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


class Engine:
    """Runs the whole pipeline over a set of sources; see the module docstring."""

    def __init__(
        self,
        config: EngineConfig,
        sources: list[FrameSource],
        part_detector: Detector,
        defect_detector: Detector,
        model: ModelInfo,
        *,
        evidence: EvidenceStore | None = None,
        recorder: Recorder | None = None,
        reference: ReferenceStage | None = None,
        part_model: ModelInfo | None = None,
    ) -> None:
        """``recorder``: where results go (None: verdicts are only shown); ``evidence``: where evidence JPEGs
        go (None: no rows, events only); ``reference``: set when the defect model compares each board with its
        golden; ``part_model``: the part model's name and version, when it has them (a registry version)."""
        ids = [s.camera_id for s in sources]  # type: ignore[attr-defined]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        config.rules.thresholds(defect_detector.class_names)  # fail early on unknown class names
        self.config, self.recorder, self.reference = config, recorder, reference
        self.run_id = _run_id()
        self.sources = {s.camera_id: s for s in sources}  # type: ignore[attr-defined]
        self.telemetry = Telemetry(self._camera_figures)
        self.health = self.telemetry.health
        self.clock = StageClock()
        self.listeners = Listeners(self.health)
        self.stopping = threading.Event()
        self.part_worker = self._worker(part_detector, "part", config.part_runners, len(sources), part_model)
        self.defect_worker = self._worker(defect_detector, "defect", config.defect_runners, 0, model)
        self.shadow: ShadowTap | None = None  # a shadow model beside the defect model (set_shadow)
        self.sink = VerdictSink(
            config.rules, config.line_id, model, recorder, evidence, self.listeners, self.telemetry, config.sink
        )
        self._aligners = (
            ThreadPoolExecutor(max(1, config.defect_runners), thread_name_prefix="align") if reference else None
        )
        # boards at the aligners (queued or running): a camera thread waits for room (backpressure)
        self._align_slots = threading.BoundedSemaphore(4 * max(1, config.defect_runners))
        self._verdicts: Counter[str] = Counter({o.value: 0 for o in Outcome})  # this run's verdicts: their one home
        self._recent: deque[Inspected] = deque(maxlen=24)
        self._recent_lock = threading.Lock()
        self.listeners.add(self._on_verdict)
        self.telemetry.read_at_scrape(self._figures)
        self.loops = [_CameraLoop(self, s) for s in sources]
        self._inflight = 0
        self._inflight_lock = threading.Condition()
        self._started = False
        self.t_start = 0.0

    def _worker(
        self, detector: Detector, name: str, runners: int, submitters: int, tag: object = None
    ) -> InferenceWorker:
        c = self.config
        return InferenceWorker(
            detector,
            name,
            c.max_batch,
            c.max_wait_ms,
            on_batch=self._on_batch,
            submitters=submitters,
            runners=runners,
            on_error=lambda exc: self.health.error(f"inference {name}", exc),
            tag=tag,
        )

    # lifecycle -------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Hear every engine event (guarded: a listener that raises is counted and logged)."""
        self.listeners.add(listener)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.t_start = time.monotonic()
        self.part_worker.start()
        self.defect_worker.start()
        self.sink.start()
        for s in self.sources.values():
            s.start()
        for loop in self.loops:
            loop.thread.start()
        if self.recorder is not None:
            self.recorder.start(self.sources)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every camera loop to end (finite sources), then for every verdict; True if all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for loop in self.loops:
            loop.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if any(loop.thread.is_alive() for loop in self.loops):
            return False
        return self._drain(deadline)

    def stop(self, timeout: float = 30.0) -> None:
        if not self._started:
            return
        self.stopping.set()
        for s in self.sources.values():
            s.stop()
        deadline = time.monotonic() + timeout
        for loop in self.loops:
            loop.thread.join(max(0.0, deadline - time.monotonic()))
        self._wait_inflight(deadline)
        self.sink.stop(max(1.0, deadline - time.monotonic()))  # stores what is queued, or counts and logs it
        if self.recorder is not None:
            try:
                self.recorder.flush(max(0.1, min(5.0, deadline - time.monotonic())))
                self.recorder.stop()
            except Exception as exc:
                self.health.error("recorder", exc, "stopping")
        self.part_worker.stop()
        self.defect_worker.stop()
        if self._aligners is not None:
            self._aligners.shutdown(wait=True)
        self._started = False

    def _wait_inflight(self, deadline: float | None) -> bool:
        """Wait until every board handed to the aligners / defect model reached the verdict thread."""
        with self._inflight_lock:
            while self._inflight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._inflight_lock.wait(left)
        return True

    def _drain(self, deadline: float | None) -> bool:
        if not self._wait_inflight(deadline):
            return False
        return self.sink.drain(30.0 if deadline is None else max(0.1, deadline - time.monotonic()))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every board inspected so far is recorded (or counted as not); False on timeout."""
        return self._drain(time.monotonic() + timeout)

    def faults(self) -> list[Fault]:
        """What fails right now (storage refusing writes), for /readyz and the live status."""
        return self.health.faults()

    # pipeline --------------------------------------------------------------------------------
    def emit(self, event: LineEvent) -> None:
        """A camera thread's event: to the listeners and the recorder (a failure is counted, never stops it)."""
        self.listeners.emit(event)
        if self.recorder is not None:
            try:
                self.recorder.line_event(event)
            except Exception as exc:
                self.health.error("event recorder", exc, type(event).__name__)

    def submit_inspection(self, req: InspectRequest, truth: BoardTruth | None, frames_seen: int) -> None:
        with self._inflight_lock:
            self._inflight += 1
        if self._aligners is not None:
            self._align_slots.acquire()
            try:
                self._aligners.submit(self._prepare_and_submit, req, truth, frames_seen)
            except BaseException:  # shut down: the board never reached an aligner
                self._align_slots.release()
                self._done_inflight()
                raise
        else:
            self._submit_defect(req, req.crop, truth, frames_seen, None)

    def _prepare_and_submit(self, req: InspectRequest, truth: BoardTruth | None, frames_seen: int) -> None:
        """On an aligner thread (supervised): a board that fails here is handed on uncertain, with the reason."""
        try:
            self._prepare(req, truth, frames_seen)
        except Exception as exc:
            self.health.error("align", exc, req.part_id)
            self._fail_board(req, truth, frames_seen, f"{type(exc).__name__}: {exc}", None)
        finally:
            self._align_slots.release()

    def _fail_board(
        self, req: InspectRequest, truth: BoardTruth | None, frames_seen: int, error: str, prepared: Prepared | None
    ) -> None:
        """The board goes to the verdict thread as a failed inspection (it is stored uncertain with ``error``)."""
        empty = Detections.empty(self.defect_worker.detector.class_names)
        self.sink.put(PendingInspection(req, empty, error, truth, frames_seen, prepared))
        self._done_inflight()

    def _prepare(self, req: InspectRequest, truth: BoardTruth | None, frames_seen: int) -> None:
        """Register the crop to its golden, then hand the reference input on."""
        assert self.reference is not None
        t0 = time.monotonic()
        try:
            box = req.board_xyxy - req.crop_xyxy[[0, 1, 0, 1]].astype(np.float32)
            prepared = self.reference.prepare(req.crop, box, truth.product if truth is not None else None)
        except Exception as exc:  # never lose a board: it becomes uncertain with the reason
            log.exception("preparing %s for the reference model failed", req.part_id)
            prepared = Prepared(None, None, None, None, f"reference preparation failed: {exc}")
        self.clock.add("align", time.monotonic() - t0)
        if prepared.image is None:
            empty = Detections.empty(self.defect_worker.detector.class_names)
            self.sink.put(PendingInspection(req, empty, None, truth, frames_seen, prepared))
            self._done_inflight()
            return
        self._submit_defect(req, prepared.image, truth, frames_seen, prepared)

    def _submit_defect(
        self,
        req: InspectRequest,
        image: np.ndarray,
        truth: BoardTruth | None,
        frames_seen: int,
        prepared: Prepared | None,
    ) -> None:
        t0 = time.monotonic()
        fut = self.defect_worker.submit(image)
        shadow = self.shadow
        if shadow is not None:
            shadow.offer(req, image, prepared)  # never waits: under load the shadow's share is dropped, counted

        def done(f: Future[Detections]) -> None:
            self.clock.add("defect_model", time.monotonic() - t0)
            exc = f.exception()
            if exc is not None:
                self._fail_board(req, truth, frames_seen, f"{type(exc).__name__}: {exc}", prepared)
                return
            model = getattr(f, "model", None)
            try:
                self.sink.put(
                    PendingInspection(
                        req,
                        f.result(),
                        None,
                        truth,
                        frames_seen,
                        prepared,
                        model if isinstance(model, ModelInfo) else None,
                    )
                )
            finally:
                self._done_inflight()

        fut.add_done_callback(done)

    def _done_inflight(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1
            self._inflight_lock.notify_all()

    # models ------------------------------------------------------------------------------------
    @property
    def defect_model(self) -> ModelInfo:
        """The defect model that runs the next batch."""
        tag = self.defect_worker.tag
        return tag if isinstance(tag, ModelInfo) else self.sink.backlog.model

    def swap_defect(self, detector: Detector, model: ModelInfo, reference: bool) -> ModelInfo:
        """Serve ``detector`` from the next batch on (hot swap); returns the model it replaces.

        The caller built and warmed it. Refused (ModelError, nothing changes) when its classes
        or its input kind differ from the served model's: the rules and the line's stages expect them.
        """
        served = self.defect_worker.detector
        if tuple(detector.class_names) != tuple(served.class_names):
            raise ModelError(
                f"{model.name}:{model.version}: classes {list(detector.class_names)} differ from the served "
                f"model's {list(served.class_names)}"
            )
        if reference != (self.reference is not None):
            kinds = ("reference", "image") if reference else ("image", "reference")
            raise ModelError(
                f"{model.name}:{model.version}: takes '{kinds[0]}' input, the line serves '{kinds[1]}' input"
            )
        before = self.defect_model
        self.defect_worker.swap(detector, model)
        return before

    @property
    def part_model(self) -> ModelInfo | None:
        """The part model that runs the next batch (None: a bare weights file, no registry version)."""
        tag = self.part_worker.tag
        return tag if isinstance(tag, ModelInfo) else None

    def swap_part(self, detector: Detector, model: ModelInfo) -> ModelInfo | None:
        """Find boards with ``detector`` from the next batch on (hot swap); returns the model it replaces.

        Refused (ModelError, nothing changes) unless it has the served part model's classes (one: 'board'):
        the tracker and the trigger line follow those boxes.
        """
        served = self.part_worker.detector
        if tuple(detector.class_names) != tuple(served.class_names):
            raise ModelError(
                f"{model.name}:{model.version}: classes {list(detector.class_names)} differ from the served "
                f"part model's {list(served.class_names)}"
            )
        before = self.part_model
        self.part_worker.swap(detector, model)
        return before

    def set_shadow(self, shadow: ShadowTap | None) -> ShadowTap | None:
        """Run ``shadow`` beside the defect model from the next board on (None: no shadow); returns the old one."""
        before, self.shadow = self.shadow, shadow
        return before

    def set_line_recipe(self, recipe: str | None) -> Golden | None:
        """Compare this line's boards with another recipe's golden from the next board on.

        Raises ModelError when the defect model takes no golden, RecipeNotFound for an
        unknown recipe (nothing changes then).
        """
        if self.reference is None:
            raise ModelError("the defect model compares no golden (its input is 'image'): a line recipe has no effect")
        return self.reference.set_recipe(recipe)

    @property
    def line_recipe(self) -> str | None:
        return self.reference.recipe if self.reference is not None else None

    def _on_batch(self, stats: BatchStats) -> None:
        self.telemetry.observe_batch(stats)
        worker = self.part_worker if stats.model == "part" else self.defect_worker
        self.telemetry.queue_depth.labels(stats.model).set(worker.queue_depth)

    def _on_verdict(self, event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            self._verdicts[event.verdict.outcome.value] += 1
            with self._recent_lock:
                self._recent.appendleft(event)
            self.telemetry.capture_to_verdict.observe(event.latency_s)

    def _figures(self) -> list[Figure]:
        """Part counts (from each camera's PartTracker) and verdicts (from this engine), read at scrape time."""
        parts = [(loop.camera_id, loop.parts.counters) for loop in self.loops]
        return [
            Figure(
                "twinspect_boards_seen",
                "Boards that entered the view",
                "counter",
                ("camera",),
                tuple(((cid,), c.seen) for cid, c in parts),
            ),
            Figure(
                "twinspect_boards_inspected",
                "Boards inspected",
                "counter",
                ("camera",),
                tuple(((cid,), c.inspected) for cid, c in parts),
            ),
            Figure(
                "twinspect_boards_uninspected",
                "Boards that left uninspected",
                "counter",
                ("camera",),
                tuple(((cid,), c.uninspected) for cid, c in parts),
            ),
            Figure(
                "twinspect_inspection_coverage",
                "Inspected / seen boards",
                "gauge",
                ("camera",),
                tuple(((cid,), c.coverage) for cid, c in parts),
            ),
            Figure(
                "twinspect_verdicts",
                "Verdicts by outcome",
                "counter",
                ("outcome",),
                tuple(((k,), v) for k, v in sorted(self._verdicts.items())),
            ),
        ]

    def _camera_figures(self) -> list[CameraFigures]:
        out = []
        for cid, s in self.sources.items():
            st = s.stats()
            out.append(CameraFigures(cid, st.state, st.fps, st.frames_in, st.dropped, st.reconnects))
        return out

    # views for the API -----------------------------------------------------------------------
    def status(self) -> EngineStatus:
        """A frozen snapshot: per camera (source, part counts, latest frame), verdicts, recent ones, storage."""
        cameras = tuple(loop.status() for loop in self.loops)
        with self._recent_lock:
            recent = tuple(self._recent)
        return EngineStatus(
            line_id=self.config.line_id,
            line_state=line_state({loop.parts.line_state for loop in self.loops}),
            line_recipe=self.line_recipe,
            cameras=cameras,
            verdicts=MappingProxyType(dict(self._verdicts)),
            recent=recent,
            storage=MappingProxyType(self.sink.storage()),
            faults=tuple(self.faults()),
            stage_ms=MappingProxyType(self.clock.mean_ms()),
        )

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        source = self.sources.get(camera_id)
        if not isinstance(source, PushSource):
            raise UnknownCamera(f"camera {camera_id!r}: no push camera with this id")
        return source.push(data, content_type).seq

    def camera_token_ok(self, camera_id: str, token: str | None) -> bool:
        """A push needs the camera's configured token; a camera without one accepts no pushes."""
        expected = self.config.camera_tokens.get(camera_id)
        return expected is not None and token is not None and hmac.compare_digest(expected, token)

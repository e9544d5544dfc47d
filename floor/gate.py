"""Reject decisions with a deadline: each board's verdict becomes OK / NG / RECHECK for a gate downstream.

A board's clock starts when it crosses the trigger (``PartTriggered``, the capture time of that
frame); it reaches the gate ``travel_s`` later (or ``distance_px / belt speed``). Its decision
must leave ``margin_ms`` before that: the *deadline*.

- The verdict came before the deadline: OK (pass), NG (fail), uncertain by ``gate.uncertain``;
  its *slack* (deadline minus decision time) is measured.
- The deadline passed without a verdict: the fail-safe rule decides at the deadline (NG, or
  RECHECK), the decision says ``late``, and ``reject.late`` goes into the event log. A verdict that
  comes afterwards changes nothing at the gate (the board is gone); it is counted.

Every decision, and a heartbeat every ``heartbeat_s``, is offered to each output (OPC UA node,
Modbus, webhook, the simulated gate), which has its own bounded queue and thread: the verdict
thread only offers. The deadline timer is its own thread (``Deadlines``).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from floor.config import GateSettings
from inspection.pipeline.events import EngineEvent, Inspected, PartTriggered

SLACK_WINDOW = 10_000  # decisions the slack percentiles are taken over


class Action(StrEnum):
    OK = "OK"
    NG = "NG"
    RECHECK = "RECHECK"

    @property
    def code(self) -> int:
        """The Modbus register value: 1 OK, 2 NG, 3 RECHECK."""
        return {Action.OK: 1, Action.NG: 2, Action.RECHECK: 3}[self]


POLICY = {"reject": Action.NG, "recheck": Action.RECHECK, "pass": Action.OK}


@dataclass(frozen=True)
class Decision:
    """What the gate must do with one board."""

    sequence: int  # decisions since start, from 1
    part_id: str
    camera_id: str
    action: Action
    verdict: str | None  # None: no verdict by the deadline
    late: bool  # decided by the fail-safe rule
    t_trigger: float  # monotonic: the board crossed the trigger
    t_gate: float  # monotonic: the board reaches the gate
    deadline: float  # monotonic: t_gate - margin
    decided: float  # monotonic: when this decision was made

    @property
    def slack_s(self) -> float:
        return self.deadline - self.decided


@dataclass(frozen=True)
class Beat:
    """The gate's heartbeat: a PLC watchdog sees the inspection box alive while it counts up."""

    count: int
    late: int
    slack_p50_ms: float
    slack_p99_ms: float


class GateOutput(Protocol):
    """Something that carries decisions to the gate: it queues, never blocks."""

    name: str

    def offer(self, item: Decision | Beat) -> bool: ...


def action_for(verdict: str, settings: GateSettings) -> Action:
    if verdict == "pass":
        return Action.OK
    if verdict == "fail":
        return Action.NG
    return POLICY[settings.uncertain]


class Deadlines:
    """A timer thread: ``due(key)`` is called once each scheduled time passes (unless cancelled first)."""

    def __init__(self, name: str, due: Callable[[Hashable], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.due, self.clock = name, due, clock
        self._heap: list[tuple[float, int, Hashable]] = []
        self._keys: set[Hashable] = set()
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def schedule(self, at: float, key: Hashable) -> None:
        with self._cond:
            self._keys.add(key)
            heapq.heappush(self._heap, (at, next(self._counter), key))
            self._cond.notify_all()

    def cancel(self, key: Hashable) -> bool:
        """True when ``key`` was still scheduled (its ``due`` will not run)."""
        with self._cond:
            if key in self._keys:
                self._keys.discard(key)
                return True
            return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > self.clock()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - self.clock()))
                if self._stop:
                    return
                _, _, key = heapq.heappop(self._heap)
                if key not in self._keys:
                    continue
                self._keys.discard(key)
            self.due(key)


@dataclass
class _Board:
    part_id: str
    camera_id: str
    t_trigger: float
    t_gate: float
    deadline: float


class RejectGate:
    """An engine listener that decides every triggered board in time or fails safe (see the module docstring)."""

    def __init__(
        self,
        settings: GateSettings,
        outputs: list[GateOutput],
        *,
        speed_px_s: float | None = None,
        on_late: Callable[[Decision], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.outputs, self.on_late, self.clock = settings, list(outputs), on_late, clock
        if settings.travel_s is not None:
            self.travel_s = settings.travel_s
        elif settings.distance_px is not None and speed_px_s:
            self.travel_s = settings.distance_px / speed_px_s
        else:
            raise ValueError("gate: set travel_s, or distance_px with belt.speed_px_s")
        self.margin_s = settings.margin_ms / 1000.0
        self._lock = threading.Lock()
        self._pending: dict[str, _Board] = {}
        self._late_parts: OrderedDict[str, None] = OrderedDict()  # boards the fail-safe rule decided
        self._sequence = 0
        self._slack: deque[float] = deque(maxlen=SLACK_WINDOW)
        self.decided = self.late = self.after_gate = self.beats = 0
        self.timer = Deadlines("gate-deadlines", self._deadline, clock)
        self._beat_stop = threading.Event()
        self._beat_thread: threading.Thread | None = None

    def add_output(self, output: GateOutput) -> None:
        self.outputs = [*self.outputs, output]

    def start(self) -> None:
        self.timer.start()
        self._beat_stop.clear()
        self._beat_thread = threading.Thread(target=self._heartbeat, name="gate-heartbeat", daemon=True)
        self._beat_thread.start()

    def stop(self) -> None:
        self.timer.stop()
        self._beat_stop.set()
        if self._beat_thread is not None:
            self._beat_thread.join(5.0)
            self._beat_thread = None

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, PartTriggered):
            self.triggered(event.part_id, event.camera_id, event.t_capture)
        elif isinstance(event, Inspected):
            v = event.verdict
            self.verdict(v.part_id, v.camera_id, v.outcome.value, self.clock() - event.latency_s)

    def triggered(self, part_id: str, camera_id: str, t_trigger: float) -> None:
        t_gate = t_trigger + self.travel_s
        board = _Board(part_id, camera_id, t_trigger, t_gate, t_gate - self.margin_s)
        with self._lock:
            self._pending[part_id] = board
        self.timer.schedule(board.deadline, part_id)

    def verdict(self, part_id: str, camera_id: str, verdict: str, t_trigger: float) -> Decision | None:
        """Decide a board on its verdict (None: too late, the fail-safe rule already decided it)."""
        now = self.clock()
        with self._lock:
            board = self._pending.pop(part_id, None)  # the deadline pops under the same lock: one of us wins
            if board is None and part_id in self._late_parts:
                self.after_gate += 1
                return None
        if board is None:  # never seen at the trigger (a listener added late): its clock from the verdict
            t_gate = t_trigger + self.travel_s
            board = _Board(part_id, camera_id, t_trigger, t_gate, t_gate - self.margin_s)
        else:
            self.timer.cancel(part_id)
        if now > board.deadline:
            return self._fail_safe(board, verdict, now)
        return self._send(board, action_for(verdict, self.settings), verdict, False, now)

    def _deadline(self, key: Hashable) -> None:
        with self._lock:
            board = self._pending.pop(str(key), None)
        if board is not None:
            self._fail_safe(board, None, self.clock())

    def _fail_safe(self, board: _Board, verdict: str | None, now: float) -> Decision:
        with self._lock:
            self._late_parts[board.part_id] = None
            while len(self._late_parts) > 10_000:
                self._late_parts.popitem(last=False)
        decision = self._send(board, POLICY[self.settings.fail_safe], verdict, True, now)
        if self.on_late is not None:
            self.on_late(decision)
        return decision

    def _send(self, board: _Board, action: Action, verdict: str | None, late: bool, now: float) -> Decision:
        with self._lock:
            self._sequence += 1
            d = Decision(
                self._sequence,
                board.part_id,
                board.camera_id,
                action,
                verdict,
                late,
                board.t_trigger,
                board.t_gate,
                board.deadline,
                now,
            )
            self.decided += 1
            self.late += late
            self._slack.append(d.slack_s)
        for output in self.outputs:
            output.offer(d)
        return d

    def slack_ms(self) -> tuple[float, float]:
        """Decision slack over the last decisions, in ms: the median, and the slack 99% of them had at least
        (the 1st percentile: a deadline cares about the worst boards); (0, 0) before any."""
        with self._lock:
            values = np.array(self._slack, np.float64)
        if not len(values):
            return 0.0, 0.0
        p50, p99 = np.percentile(values * 1000.0, [50, 1])  # p99 of slack: the smallest 1%
        return round(float(p50), 2), round(float(p99), 2)

    def beat(self) -> Beat:
        self.beats += 1
        p50, p99 = self.slack_ms()
        return Beat(self.beats, self.late, p50, p99)

    def _heartbeat(self) -> None:
        while not self._beat_stop.wait(self.settings.heartbeat_s):
            beat = self.beat()
            for output in self.outputs:
                output.offer(beat)

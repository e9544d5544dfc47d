"""The simulated line's reject gate: it acts on each board when the board reaches it, and records what it did.

Like a real gate with a photo eye at the trigger line and an encoder, it learns of each board
when it crosses the trigger (``PartTriggered``) and acts ``travel_s`` later. It acts on the
decision it received for that board by then (over its own bounded queue, like any output), else
on its own fail-safe rule (NG). ``report()`` compares each action with what the board's verdict
called for: a board *sent the wrong way* got another action than its verdict's (a late decision
is one: a good board rejected by the fail-safe rule); an *escape* is a board whose verdict called
for NG or recheck that the gate let pass (never allowed: the fail-safe rule prevents it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from floor.config import GateSettings
from floor.gate import POLICY, Action, Beat, Deadlines, Decision, action_for
from floor.outlet import Outlet, Pump
from inspection.pipeline.events import EngineEvent, Inspected, PartTriggered


@dataclass(frozen=True)
class GateAction:
    """What the gate did with one board."""

    part_id: str
    action: Action
    decided_in_time: bool  # a decision had arrived when the board reached the gate
    late: bool  # the decision it acted on said late (fail-safe at the deadline)


class SimulatedGate:
    """See the module docstring. It is an engine listener (trigger, verdicts) and a gate output (decisions)."""

    def __init__(self, settings: GateSettings, travel_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.travel_s, self.clock = settings, travel_s, clock
        self.name = "simulated-gate"
        self.outlet: Outlet[Decision | Beat] = Outlet("simulated-gate", 65_536)
        self.pump = Pump(self.outlet, self._received)
        self.timer = Deadlines("simulated-gate", self._arrives, clock)
        self._lock = threading.Lock()
        self._decisions: dict[str, Decision] = {}
        self._verdicts: dict[str, str] = {}
        self.actions: dict[str, GateAction] = {}
        self.heartbeats = 0

    def offer(self, item: Decision | Beat) -> bool:
        return self.outlet.offer(item)

    def start(self) -> None:
        self.pump.start()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self.pump.stop()

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, PartTriggered):
            self.timer.schedule(event.t_capture + self.travel_s, event.part_id)
        elif isinstance(event, Inspected):
            with self._lock:
                self._verdicts[event.verdict.part_id] = event.verdict.outcome.value

    def _received(self, batch: list[Decision | Beat]) -> None:
        with self._lock:
            for item in batch:
                if isinstance(item, Beat):
                    self.heartbeats += 1
                else:
                    self._decisions[item.part_id] = item
        self.outlet.done(True, len(batch))

    def _arrives(self, key: Hashable) -> None:
        part_id = str(key)
        with self._lock:
            d = self._decisions.pop(part_id, None)
            if d is None:
                done = GateAction(part_id, POLICY[self.settings.fail_safe], False, True)
            else:
                done = GateAction(part_id, d.action, True, d.late)
            self.actions[part_id] = done

    def wait(self, parts: int, timeout: float) -> bool:
        """Wait until the gate acted on ``parts`` boards (the last ones reach it ``travel_s`` after the trigger)."""
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            with self._lock:
                if len(self.actions) >= parts:
                    return True
            time.sleep(0.05)
        return False

    def report(self) -> dict[str, Any]:
        """What the gate did, and how many boards went another way than their verdict called for."""
        with self._lock:
            actions, verdicts = dict(self.actions), dict(self._verdicts)
        wrong = escaped = without = 0
        for part_id, done in actions.items():
            verdict = verdicts.get(part_id)
            if verdict is None:
                without += 1
                continue
            wanted = action_for(verdict, self.settings)
            wrong += done.action is not wanted
            escaped += wanted is not Action.OK and done.action is Action.OK
        return {
            "boards": len(actions),
            "ok": sum(a.action is Action.OK for a in actions.values()),
            "ng": sum(a.action is Action.NG for a in actions.values()),
            "recheck": sum(a.action is Action.RECHECK for a in actions.values()),
            "late": sum(a.late for a in actions.values()),
            "no_decision_in_time": sum(not a.decided_in_time for a in actions.values()),
            "no_verdict": without,
            "wrong_way": wrong,
            "escaped": escaped,
            "heartbeats": self.heartbeats,
        }

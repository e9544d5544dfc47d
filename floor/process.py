"""Statistical process control of each line, fed by the committed part.inspected events.

Per line, boards are grouped into subgroups (``spc.subgroup_boards`` boards, or ``spc.subgroup_s``
seconds of event time with at least ``min_boards``), and each subgroup is a point on:
- ``fail``: p-chart of the share of failed boards;
- ``defects``: u-chart of defect boxes per board;
- one p-chart per defect class: the share of boards with at least one box of that class.
Charts of ``floor.spc``; when a chart starts drifting, ``process.drift`` (which rule, which
chart, the points the rule looked at) goes into the event log, and ``process.in_control`` when
it is back (or learns a new baseline: ``reset``). The twin folds both into its ``process``
feature. Events arrive through a bounded outlet on the pump's own thread: the log's writer never
waits for this.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from floor.config import SpcSettings
from floor.outlet import Outlet, Pump
from floor.spc import RULES, WINDOW, ChartState, ControlChart, Kind, Point
from sync import drafts
from sync.events import Draft, Event, rfc3339
from sync.schemas import ChartPoint, ProcessDriftData, ProcessInControlData

Publish = Callable[[Sequence[Draft]], "Future[Any]"]


@dataclass(frozen=True)
class ChartView:
    """One chart as the dashboard, OPC UA and Sparkplug show it."""

    name: str
    kind: Kind
    state: ChartState
    since: str | None
    center: float | None
    points: tuple[Point, ...]

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state.value,
            "since": self.since,
            "center": self.center,
            "points": [
                {
                    "index": p.index,
                    "n": p.n,
                    "value": round(p.value, 6),
                    "ucl": round(p.ucl, 6),
                    "lcl": round(p.lcl, 6),
                    "z": round(p.z, 3),
                    "time": p.time,
                    "rules": list(p.rules),
                }
                for p in self.points
            ],
        }


def _epoch(time_iso: str) -> float:
    return datetime.fromisoformat(time_iso.replace("Z", "+00:00")).timestamp()


class _Subgroup:
    def __init__(self) -> None:
        self.n = 0
        self.fail = 0
        self.defects = 0
        self.classes: Counter[str] = Counter()
        self.t0: float | None = None


class _LineCharts:
    def __init__(self, settings: SpcSettings, classes: Sequence[str]) -> None:
        self.settings = settings
        self.charts: dict[str, ControlChart] = {}
        self.group = _Subgroup()
        for name, kind in [("fail", "p"), ("defects", "u"), *((c, "p") for c in classes)]:
            self.chart(name, kind)  # type: ignore[arg-type]

    def chart(self, name: str, kind: Kind) -> ControlChart:
        chart = self.charts.get(name)
        if chart is None:
            s = self.settings
            chart = self.charts[name] = ControlChart(
                name, kind, s.baseline_subgroups, tuple(s.rules), s.recover_subgroups, s.history
            )
        return chart

    def add(self, data: dict[str, Any], time_iso: str) -> bool:
        """Count one board; True when its subgroup is complete."""
        g, s = self.group, self.settings
        t = _epoch(time_iso)
        if g.t0 is None:
            g.t0 = t
        g.n += 1
        g.fail += data["verdict"] == "fail"
        defects = data.get("defects", [])
        g.defects += len(defects)
        for name in {d["class_name"] for d in defects}:
            g.classes[name] += 1
        if g.n >= s.subgroup_boards:
            return True
        return s.subgroup_s is not None and t - g.t0 >= s.subgroup_s and g.n >= s.min_boards

    def close(self, time_iso: str) -> list[tuple[ControlChart, Point, ChartState]]:
        """Every chart's point for the finished subgroup, with the chart's state before it."""
        g, self.group = self.group, _Subgroup()
        for name in g.classes:
            self.chart(name, "p")
        out = []
        for name, chart in self.charts.items():
            count = g.fail if name == "fail" else g.defects if name == "defects" else g.classes[name]
            before = chart.state
            point = chart.add(count, g.n, time_iso)
            if point is not None:
                out.append((chart, point, before))
        return out


class ProcessWatch:
    """See the module docstring."""

    def __init__(self, settings: SpcSettings, publish: Publish, edge_id: str, classes: Sequence[str] = ()) -> None:
        self.settings, self.publish, self.edge_id = settings, publish, edge_id
        self.classes = tuple(classes)
        self.outlet: Outlet[Event] = Outlet("spc", 65_536)
        self.pump = Pump(self.outlet, self.feed)
        self.refused = 0  # events the log refused (its queue full)
        self._lines: dict[str, _LineCharts] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Hear the line id whenever one of its charts changed state."""
        self._listeners.append(listener)

    def start(self) -> None:
        self.pump.start()

    def stop(self) -> None:
        self.pump.stop()

    def feed(self, events: Sequence[Event]) -> None:
        """Fold part.inspected events into the charts (the pump's thread, or a test)."""
        changed: set[str] = set()
        out: list[Draft] = []
        for event in events:
            if event.type != "part.inspected":
                continue
            with self._lock:
                line = self._lines.get(event.line_id)
                if line is None:
                    line = self._lines[event.line_id] = _LineCharts(self.settings, self.classes)
                ce = event.cloudevent()
                if not line.add(ce["data"], ce["time"]):
                    continue
                found = self._transitions(event.line_id, line.close(ce["time"]))
            out += found
            changed |= {event.line_id} if found else set()
        self._emit(out, changed)

    def reset(self, line_id: str, reason: str) -> int:
        """Every chart of the line learns a new baseline; process.in_control for each that was drifting."""
        now = rfc3339()
        out = []
        with self._lock:
            line = self._lines.get(line_id)
            for chart in line.charts.values() if line else ():
                if chart.state is ChartState.DRIFTING:
                    data = ProcessInControlData(chart=chart.name, kind=chart.kind, reason=reason)
                    out.append(drafts.process_in_control(line_id, self.edge_id, data, now))
                chart.restart(now)
        self._emit(out, {line_id} if out else set())
        return len(out)

    def charts(self, line_id: str) -> list[ChartView]:
        with self._lock:
            line = self._lines.get(line_id)
            if line is None:
                return []
            return [
                ChartView(c.name, c.kind, c.state, c.since, c.center, tuple(c.points)) for c in line.charts.values()
            ]

    def drifting(self, line_id: str) -> dict[str, str]:
        """The drifting charts of a line and since when."""
        return {c.name: c.since or "" for c in self.charts(line_id) if c.state is ChartState.DRIFTING}

    def _transitions(self, line_id: str, points: list[tuple[ControlChart, Point, ChartState]]) -> list[Draft]:
        out = []
        for chart, point, before in points:
            if before is not ChartState.DRIFTING and chart.state is ChartState.DRIFTING:
                out.append(drafts.process_drift(line_id, self.edge_id, self._drift_data(chart, point), point.time))
            elif before is ChartState.DRIFTING and chart.state is ChartState.IN_CONTROL:
                reason = f"no rule fired on {chart.recover} subgroups in a row"
                data = ProcessInControlData(chart=chart.name, kind=chart.kind, reason=reason)
                out.append(drafts.process_in_control(line_id, self.edge_id, data, point.time))
        return out

    def _drift_data(self, chart: ControlChart, point: Point) -> ProcessDriftData:
        rule = point.rules[0]
        window = list(chart.points)[-WINDOW[max(point.rules)] :]
        return ProcessDriftData(
            chart=chart.name,
            kind=chart.kind,
            rule=rule,
            rules=list(point.rules),
            rule_text=RULES[rule],
            center=round(point.center, 6),
            ucl=round(point.ucl, 6),
            lcl=round(point.lcl, 6),
            points=[
                ChartPoint(index=p.index, n=p.n, count=p.count, value=round(p.value, 6), z=round(p.z, 3), time=p.time)
                for p in window
            ],
        )

    def _emit(self, out: list[Draft], changed: set[str]) -> None:
        if out:
            future = self.publish(out)
            future.add_done_callback(self._count_refused)
        for line_id in sorted(changed):
            for listener in self._listeners:
                listener(line_id)

    def _count_refused(self, future: Future[Any]) -> None:
        if future.exception() is not None:
            self.refused += 1

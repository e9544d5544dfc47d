"""Control charts for attributes with the Western Electric rules (pure: no threads, no I/O).

A ``ControlChart`` takes one subgroup at a time (``count`` of ``n`` boards):
- kind ``p``: the share of boards with the attribute (a defect class, a fail verdict);
  sigma_i = sqrt(p0 (1 - p0) / n_i);
- kind ``u``: defects per board; sigma_i = sqrt(u0 / n_i).
The first ``baseline`` subgroups set the centre line ``p0`` / ``u0`` (pooled: sum of counts /
sum of boards). A centre of 0 (the attribute never seen in the baseline) is replaced by half an
occurrence over the baseline's boards, so the chart still has limits and its first occurrence
stands out. After the baseline every subgroup is a ``Point`` with its standardised value
z = (value - centre) / sigma_i (subgroups of different sizes share one scale), and the rules look
at the newest points, each ending at (and including) the new point:

1. the point beyond 3 sigma;
2. 2 of the last 3 beyond 2 sigma on one side;
3. 4 of the last 5 beyond 1 sigma on one side;
4. the last 8 on one side of the centre line (a point on the line breaks the run).

The chart's state turns ``drifting`` at the first point a rule fires on and back ``in_control``
after ``recover`` points in a row on which none fires.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

RULES: dict[int, str] = {
    1: "1 point beyond 3 sigma",
    2: "2 of 3 points beyond 2 sigma on one side",
    3: "4 of 5 points beyond 1 sigma on one side",
    4: "8 points in a row on one side of the centre line",
}
WINDOW = {1: 1, 2: 3, 3: 5, 4: 8}  # points each rule looks at
Kind = Literal["p", "u"]


class ChartState(StrEnum):
    BASELINE = "baseline"  # still learning the centre line
    IN_CONTROL = "in_control"
    DRIFTING = "drifting"


@dataclass(frozen=True)
class Point:
    """One subgroup on the chart."""

    index: int  # subgroups since the chart started (baseline included)
    n: int  # boards in the subgroup
    count: int  # boards with the attribute (p) or defects (u)
    value: float  # count / n
    center: float
    sigma: float
    z: float
    time: str  # event time the subgroup closed (RFC 3339)
    rules: tuple[int, ...] = ()  # the rules that fired on this point

    @property
    def ucl(self) -> float:
        return self.center + 3 * self.sigma

    @property
    def lcl(self) -> float:
        return max(0.0, self.center - 3 * self.sigma)


def fired(zs: list[float], rules: tuple[int, ...]) -> tuple[int, ...]:
    """The rules that fire on the last of ``zs`` (oldest first), looking back as each rule says."""
    out = []
    for rule in rules:
        w = WINDOW[rule]
        if len(zs) < w:
            continue
        last = zs[-w:]
        if rule == 1:
            hit = abs(last[-1]) > 3
        elif rule == 2:
            hit = _k_beyond(last, 2, 2.0)
        elif rule == 3:
            hit = _k_beyond(last, 4, 1.0)
        else:
            hit = all(z > 0 for z in last) or all(z < 0 for z in last)
        if hit:
            out.append(rule)
    return tuple(out)


def _k_beyond(last: list[float], k: int, limit: float) -> bool:
    """At least ``k`` of ``last`` beyond ``limit`` sigma on the side of the newest point, which is one of them."""
    z = last[-1]
    if z > limit:
        return sum(v > limit for v in last) >= k
    if z < -limit:
        return sum(v < -limit for v in last) >= k
    return False


@dataclass
class ControlChart:
    """See the module docstring."""

    name: str  # "fail", "defects", or a defect class
    kind: Kind
    baseline: int = 25
    rules: tuple[int, ...] = (1, 2, 3, 4)
    recover: int = 8
    history: int = 100
    center: float | None = None  # set after the baseline (or given)
    state: ChartState = ChartState.BASELINE
    since: str | None = None  # when the state began
    points: deque[Point] = field(default_factory=deque)
    _base: list[tuple[int, int]] = field(default_factory=list)
    _zs: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    _quiet: int = 0
    _index: int = 0

    def __post_init__(self) -> None:
        self.points = deque(maxlen=self.history)
        if self.center is not None:
            self.state = ChartState.IN_CONTROL

    def sigma(self, n: int) -> float:
        c = self.center or 0.0
        return math.sqrt(c * (1 - c) / n) if self.kind == "p" else math.sqrt(c / n)

    def add(self, count: int, n: int, time: str) -> Point | None:
        """One subgroup; the new point (None while the baseline is learned)."""
        if n <= 0:
            raise ValueError("a subgroup has at least one board")
        self._index += 1
        if self.center is None:
            self._base.append((count, n))
            if len(self._base) >= self.baseline:
                self._set_center(time)
            return None
        sigma = self.sigma(n)
        value = count / n
        z = (value - self.center) / sigma if sigma > 0 else 0.0
        self._zs.append(z)
        point = Point(self._index, n, count, value, self.center, sigma, z, time, fired(list(self._zs), self.rules))
        self.points.append(point)
        self._advance(point)
        return point

    def restart(self, time: str) -> None:
        """Learn a new baseline from the next subgroups (Reset, a new process)."""
        self.center, self.state, self.since = None, ChartState.BASELINE, time
        self._base.clear()
        self._zs.clear()
        self.points.clear()
        self._quiet = 0

    def _set_center(self, time: str) -> None:
        counts = sum(c for c, _ in self._base)
        boards = sum(n for _, n in self._base)
        center = counts / boards
        if center == 0:
            center = 0.5 / boards  # never seen in the baseline: half an occurrence (see the module docstring)
        if self.kind == "p":
            center = min(center, 1 - 0.5 / boards)
        self.center, self.state, self.since = center, ChartState.IN_CONTROL, time

    def _advance(self, point: Point) -> None:
        if point.rules:
            self._quiet = 0
            if self.state is not ChartState.DRIFTING:
                self.state, self.since = ChartState.DRIFTING, point.time
        else:
            self._quiet += 1
            if self.state is ChartState.DRIFTING and self._quiet >= self.recover:
                self.state, self.since = ChartState.IN_CONTROL, point.time

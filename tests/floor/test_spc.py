"""Control charts and the Western Electric rules against theory, on seeded sequences.

The rates theory predicts are computed exactly from the binomial (p-chart) and Poisson
(u-chart) distributions at the chart's own limits: a rule fires on a point when its window,
ending at that point, holds the pattern, so the expected number of firings over N points is
(N - w + 1) times the probability of the pattern in one window, whatever the overlap. The
tolerance is 4 standard deviations of that count, bounded for overlapping windows by
sqrt(N (2w - 1) p) (each window is correlated with at most 2w - 2 others).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from floor.spc import WINDOW, ChartState, ControlChart, fired


def binom_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])


def poisson_pmf(mu: float, top: int) -> np.ndarray:
    return np.array([math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) for k in range(top + 1)])


def window_probabilities(chart: ControlChart, n: int, true_rate: float) -> dict[int, float]:
    """Per-window probability of each rule's pattern when counts follow ``true_rate`` (exact)."""
    top = int(n * true_rate * 10 + 50)
    pmf = binom_pmf(n, true_rate) if chart.kind == "p" else poisson_pmf(n * true_rate, top)
    assert chart.center is not None
    sigma = chart.sigma(n)
    z = (np.arange(len(pmf)) / n - chart.center) / sigma

    def prob(mask: np.ndarray) -> float:
        return float(pmf[mask].sum())

    out = {1: prob(np.abs(z) > 3)}
    two = 0.0
    three = 0.0
    for side in (1, -1):
        q2, q1 = prob(side * z > 2), prob(side * z > 1)
        two += q2 * (1 - (1 - q2) ** 2)  # the newest beyond, and at least 1 of the 2 before it
        three += q1 * (4 * q1**3 * (1 - q1) + q1**4)  # the newest beyond, and at least 3 of the 4 before
    out[2], out[3] = two, three
    out[4] = prob(z > 0) ** 8 + prob(z < 0) ** 8
    return out


def test_rules_fire_on_their_patterns_only():
    assert fired([0.1, 3.2], (1, 2, 3, 4)) == (1,)
    assert fired([2.5, 0.0, 2.1], (2,)) == (2,)
    assert fired([2.5, 0.0, -2.1], (2,)) == ()  # other side
    assert fired([2.5, 2.1, 0.3], (2,)) == ()  # the newest point must be one of them
    assert fired([1.5, 1.2, 0.2, 1.1, 1.3], (3,)) == (3,)
    assert fired([0.1] * 7 + [0.2], (4,)) == (4,)
    assert fired([0.1] * 6 + [0.0, 0.2], (4,)) == ()  # a point on the centre line breaks the run


@pytest.mark.parametrize(("kind", "n", "rate"), [("p", 200, 0.10), ("u", 50, 0.6)])
def test_in_control_false_alarms_match_theory(kind: str, n: int, rate: float) -> None:
    """10,000 in-control subgroups (known centre): each rule fires as often as theory says, within 4 sd."""
    chart = ControlChart("c", kind, center=rate, history=10)  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    total = 10_000
    counts = rng.binomial(n, rate, total) if kind == "p" else rng.poisson(n * rate, total)
    seen = dict.fromkeys(WINDOW, 0)
    for k, count in enumerate(counts):
        point = chart.add(int(count), n, f"t{k}")
        assert point is not None
        for rule in point.rules:
            seen[rule] += 1
    theory = window_probabilities(chart, n, rate)
    for rule, p in theory.items():
        w = WINDOW[rule]
        expected = (total - w + 1) * p
        tolerance = 4 * math.sqrt(total * (2 * w - 1) * p)
        print(f"{kind} rule {rule}: {seen[rule]} fired, theory {expected:.1f} +- {tolerance:.1f}")
        assert abs(seen[rule] - expected) <= tolerance, (rule, seen[rule], expected, tolerance)
        assert expected > 5, "the test needs enough expected alarms to mean something"


def test_a_step_is_caught_within_the_subgroups_the_rules_predict():
    """A class's rate steps from 4% to 12% of boards: rule 1 alone catches it within k subgroups,
    where (1 - P(rule 1 fires on a shifted point))^k < 1e-4; every seed does."""
    n, p0, p1 = 50, 0.04, 0.12
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        chart = ControlChart("open", "p", baseline=25)
        for k in range(25):
            chart.add(int(rng.binomial(n, p0)), n, f"b{k}")
        assert chart.state is ChartState.IN_CONTROL
        for k in range(30):  # in control before the step
            chart.add(int(rng.binomial(n, p0)), n, f"i{k}")
        p_detect = window_probabilities(chart, n, p1)[1]
        k_max = math.ceil(math.log(1e-4) / math.log(1 - p_detect))
        for k in range(1, 200):
            point = chart.add(int(rng.binomial(n, p1)), n, f"s{k}")
            assert point is not None
            if point.rules:
                delays.append(k)
                break
        assert delays and delays[-1] <= k_max, (seed, delays[-1:], k_max, p_detect)
        assert chart.state is ChartState.DRIFTING
    assert sum(delays) / len(delays) <= 3  # the average run length after the step is short (ARL1 ~ 1.3 here)


def test_a_class_never_seen_in_the_baseline_stands_out_when_it_appears():
    chart = ControlChart("spur", "p", baseline=5)
    for k in range(5):
        chart.add(0, 50, f"b{k}")
    assert chart.center == pytest.approx(0.5 / 250)
    point = chart.add(2, 50, "x")
    assert point is not None and 1 in point.rules


def test_back_in_control_after_quiet_subgroups_and_restart():
    chart = ControlChart("fail", "p", center=0.05, recover=3)
    chart.add(20, 50, "a")
    assert chart.state is ChartState.DRIFTING and chart.since == "a"
    for k in range(3):
        chart.add(2, 50, f"q{k}")
    assert chart.state is ChartState.IN_CONTROL and chart.since == "q2"
    chart.restart("r")
    assert chart.state is ChartState.BASELINE and chart.center is None and not chart.points

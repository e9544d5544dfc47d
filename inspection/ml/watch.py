"""The watch after a promotion: did a rate change between the previous model's boards and the new one's?

Rates per board: fail, uncertain (the model's own verdict), corrected (QA changed the verdict),
and for each class the share of boards where the model reported it. Each is compared over the
same number of boards on both sides with a two-sided two-proportion z-test (pooled variance);
a p-value under the threshold is a significant change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEST = "two-proportion z-test (two-sided, pooled)"


@dataclass(frozen=True)
class Change:
    metric: str
    boards: int
    rate: float
    previous_rate: float
    statistic: float
    p_value: float


def two_proportion(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the difference between k1/n1 and k2/n2; (0, 1) when there is no variance."""
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(var)
    return z, math.erfc(abs(z) / math.sqrt(2))


def rates(boards: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, int]:
    """Counts per metric over ``boards`` (each: model verdict, corrected, the classes the model reported)."""
    out = {
        "fail": sum(b["verdict"] == "fail" for b in boards),
        "uncertain": sum(b["verdict"] == "uncertain" for b in boards),
        "corrected": sum(bool(b["corrected"]) for b in boards),
    }
    for c in classes:
        out[f"class:{c}"] = sum(c in b["classes"] for b in boards)
    return out


def compare(
    before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]], classes: Sequence[str], p_threshold: float
) -> list[Change]:
    """The metrics whose rate changed significantly (same number of boards on each side)."""
    n = min(len(before), len(after))
    if n == 0:
        return []
    b, a = rates(before[:n], classes), rates(after[:n], classes)
    found = []
    for metric in a:
        z, p = two_proportion(a[metric], n, b[metric], n)
        if p < p_threshold:
            found.append(Change(metric, n, round(a[metric] / n, 4), round(b[metric] / n, 4), round(z, 3), p))
    return found

"""``twinspect replay``: run the whole pipeline over a finite board sequence and report.

Per board one JSON line (as verdicts arrive), then one summary line. With ground
truth (DeepPCB layout), a board counts as flagged when its verdict is fail or
uncertain (it goes to a person), and board recall / precision compare flagged boards
with the defective ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera.simulated import BoardPass
from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected, PartUninspected


@dataclass
class ReplayReport:
    """A listener that writes per-board lines and gathers the summary."""

    sequence: Sequence[BoardPass]
    write: Callable[[str], None]
    emit_lines: bool = True
    inspected: dict[int, Inspected] = field(default_factory=dict)  # by board appearance
    unmatched: list[Inspected] = field(default_factory=list)  # verdicts not matched to a shown board
    uninspected_events: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Any) -> None:
        if isinstance(event, PartUninspected):
            with self._lock:
                self.uninspected_events += 1
            return
        if not isinstance(event, Inspected):
            return
        with self._lock:
            if event.truth is not None:
                self.inspected[event.truth.appearance] = event
            else:
                self.unmatched.append(event)
            if self.emit_lines:
                self.write(json.dumps(board_line(event)))

    def summary(self, boards_seen: int, frames: int, wall_s: float, stage_ms: dict[str, float]) -> dict[str, Any]:
        with self._lock:
            done = list(self.inspected.values()) + self.unmatched
            out: dict[str, Any] = {
                "boards_shown": len(self.sequence),
                "boards_seen": boards_seen,
                "inspected": len(done),
                "uninspected": self.uninspected_events,
                "verdicts": {o.value: sum(d.verdict.outcome is o for d in done) for o in Outcome},
                "frames": frames,
                "wall_s": round(wall_s, 3),
                "fps": round(frames / wall_s, 2) if wall_s else 0.0,
                "boards_per_s": round(len(done) / wall_s, 3) if wall_s else 0.0,
                "stage_ms": stage_ms,
            }
            truth_known = [b for b in self.sequence if b.sprite.defective is not None]
            if truth_known:
                out.update(_recall_precision(truth_known, self.inspected))
                got = [self.inspected[b.appearance] for b in truth_known if b.appearance in self.inspected]
                out["good_boards"] = _group([d for d in got if d.truth is not None and not d.truth.defective])
                out["defective_boards"] = _group([d for d in got if d.truth is not None and d.truth.defective])
            alignment = _alignment(done)
            if alignment is not None:
                out["alignment"] = alignment
            return out


def board_line(done: Inspected) -> dict[str, Any]:
    v = done.verdict
    line = {
        "board": done.truth.name if done.truth else None,
        "verdict": v.outcome.value,
        "defects": v.defects.boxes_json(),
        "reasons": list(v.reasons),
        "frames_seen": done.frames_seen,
        "latency_ms": round(1000 * done.latency_s, 1),
        "part_id": v.part_id,
    }
    if v.reference is not None:
        line.update(
            recipe=v.reference.recipe,
            golden_sha256=v.reference.golden_sha256,
            alignment_score=v.reference.alignment_score,
        )
    return line


def _fires(done: Inspected, marker: str) -> bool:
    return any(marker in r for r in done.verdict.reasons)


def _group(done: list[Inspected]) -> dict[str, Any]:
    """Verdicts of one group of boards (good or defective), with how often each golden rule fired."""
    n = len(done)

    def share(k: int) -> float | None:
        return round(k / n, 4) if n else None

    fail = sum(d.verdict.outcome is Outcome.FAIL for d in done)
    unsure = sum(d.verdict.outcome is Outcome.UNCERTAIN for d in done)
    unexplained = sum(_fires(d, "unexplained difference") for d in done)
    misaligned = sum(_fires(d, "alignment failed") for d in done)
    return {
        "inspected": n,
        "fail": fail,
        "uncertain": unsure,
        "pass": n - fail - unsure,
        "fail_rate": share(fail),
        "uncertain_rate": share(unsure),
        "unexplained_difference": unexplained,
        "unexplained_difference_rate": share(unexplained),
        "alignment_failed": misaligned,
    }


def _alignment(done: list[Inspected]) -> dict[str, Any] | None:
    scores = np.array(
        [
            d.verdict.reference.alignment_score
            for d in done
            if d.verdict.reference is not None and np.isfinite(d.verdict.reference.alignment_score)
        ]
    )
    if not scores.size:
        return None
    return {
        "boards": int(scores.size),
        "score_min": round(float(scores.min()), 4),
        "score_p1": round(float(np.percentile(scores, 1)), 4),
        "score_p50": round(float(np.median(scores)), 4),
    }


def _recall_precision(shown: Sequence[BoardPass], inspected: dict[int, Inspected]) -> dict[str, Any]:
    """Recall over every defective board shown (missed and uninspected ones count against it)."""
    defective = [b for b in shown if b.sprite.defective]
    flagged = [
        b for b in shown if b.appearance in inspected and inspected[b.appearance].verdict.outcome is not Outcome.PASS
    ]
    hit = sum(1 for b in flagged if b.sprite.defective)
    return {
        "board_recall": round(hit / len(defective), 4) if defective else None,
        "board_precision": round(hit / len(flagged), 4) if flagged else None,
        "defective_shown": len(defective),
        "flagged": len(flagged),
    }

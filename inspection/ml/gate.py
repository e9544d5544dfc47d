"""The promotion gate: is a candidate model at least as good as the active one, on boards it was not trained on?

In order, each step refusing before the next runs:

1. **compatibility**: same classes in the same order, same input kind (``image`` / ``reference``);
2. **export parity**: the candidate's ONNX file loads, and answers like its PyTorch weights on
   sample boards (boxes within ``parity_box_px``, confidences within ``parity_conf``, no
   unmatched box); its INT8 file, when there is one, like its ONNX file;
3. **the gate set**: both models scored on the validation split (DeepPCB F, mAP50, each
   class's recall) and on every reviewed inspection of the line (the reviewed verdict is
   the truth: false rejects, missed defects). The candidate passes when each metric is at
   least the active model's minus its margin, each class's recall at least the floor, and
   its false-reject and miss rates at most the active model's plus their margins.

``GateResult.rows`` holds both models' figures side by side for the CLI and the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspection.core.detections import Detections, Detector
from inspection.core.errors import ModelError
from inspection.inference.cards import read_card
from inspection.inference.nms import box_iou

Judge = Callable[[Detections], str]  # detections -> 'pass' / 'fail' / 'uncertain' (the line's rules)
Load = Callable[[Path], Detector]


@dataclass(frozen=True)
class GateConfig:
    """What a candidate must reach; the margins are absolute (0.01 = one point)."""

    metrics: tuple[str, ...] = ("deeppcb_fscore", "map50")  # val split: candidate >= active - margin
    margin: float = 0.0
    class_recall_floor: float = 0.5  # val split: each class's recall of the candidate at least this
    false_reject_margin: float = 0.0  # reviewed boards: candidate's false-reject rate <= active's + this
    miss_margin: float = 0.0  # reviewed boards: candidate's miss rate <= active's + this
    parity_images: int = 4  # sample boards for the export parity check (0: skip)
    parity_box_px: float = 2.0
    parity_conf: float = 0.05
    split: str = "val"
    max_reviewed: int = 2000  # reviewed inspections replayed at most (newest first)


@dataclass
class GateResult:
    """The gate's figures: ``rows`` (metric, active, candidate, rule, ok); ``passed`` when every row is ok."""

    candidate: str
    active: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r["ok"] for r in self.rows)

    def failures(self) -> list[str]:
        return [f"{r['metric']}: {r['candidate']} ({r['rule']})" for r in self.rows if not r["ok"]]

    def add(self, metric: str, active: float | None, candidate: float | None, rule: str, ok: bool) -> None:
        self.rows.append({"metric": metric, "active": active, "candidate": candidate, "rule": rule, "ok": bool(ok)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "active": self.active,
            "passed": self.passed,
            "rows": self.rows,
            "notes": self.notes,
        }

    def table(self) -> list[str]:
        """Both models side by side, one line a metric."""
        out = [f"{'metric':28s} {'active':>10s} {'candidate':>10s}  rule"]
        for r in self.rows:
            a, c = (f"{v:.4f}" if isinstance(v, float) else str(v) for v in (r["active"], r["candidate"]))
            out.append(f"{r['metric']:28s} {a:>10s} {c:>10s}  {r['rule']}{'' if r['ok'] else '  FAILED'}")
        return out + [f"note: {n}" for n in self.notes]


def check_compatible(candidate: Path, active: Path | None, line_input: str | None = None) -> dict[str, Any]:
    """The candidate's card; ModelError when its classes or input kind differ from the active model's / line's."""
    card = read_card(candidate)
    kind = str(card.get("input", "image"))
    name = f"{card.get('name')}:{card.get('version')}"
    if line_input is not None and kind != line_input:
        raise ModelError(f"{name}: takes '{kind}' input, but the line serves '{line_input}' input")
    if active is not None:
        other = read_card(active)
        if list(card["class_names"]) != list(other["class_names"]):
            raise ModelError(
                f"{name}: classes {card['class_names']} differ from the active model's {other['class_names']}"
            )
        if kind != str(other.get("input", "image")):
            raise ModelError(f"{name}: takes '{kind}' input, the active model '{other.get('input', 'image')}'")
    return card


def _match(a: Detections, b: Detections) -> tuple[int, float, float]:
    """(unmatched boxes, largest box difference px, largest confidence difference) between two answers."""
    if not len(a) or not len(b):
        return abs(len(a) - len(b)), 0.0, 0.0
    iou = box_iou(a.xyxy, b.xyxy) * (a.class_id[:, None] == b.class_id[None, :])
    best = iou.argmax(axis=1)
    ok = iou[np.arange(len(a)), best] > 0.5
    unmatched = int((~ok).sum()) + max(0, len(b) - int(ok.sum()))
    if not ok.any():
        return unmatched, 0.0, 0.0
    box = float(np.abs(a.xyxy[ok] - b.xyxy[best[ok]]).max())
    conf = float(np.abs(a.confidence[ok] - b.confidence[best[ok]]).max())
    return unmatched, box, conf


def compare_answers(reference: Detector, other: Detector, images: Sequence[np.ndarray]) -> tuple[int, float, float]:
    """Run both on ``images``: (unmatched boxes, largest box difference, largest confidence difference)."""
    unmatched, box, conf = 0, 0.0, 0.0
    for a, b in zip(reference.detect(list(images)), other.detect(list(images)), strict=True):
        u, bx, cf = _match(a, b)
        unmatched, box, conf = unmatched + u, max(box, bx), max(conf, cf)
    return unmatched, box, conf


def parity(folder: Path, images: Sequence[np.ndarray], cfg: GateConfig, result: GateResult, load: Load) -> None:
    """Export parity: ONNX loads (else ModelError: a corrupt file), ONNX vs .pt, INT8 vs ONNX."""
    onnx = load(folder / "model.onnx")  # a corrupt or missing ONNX file fails here, before anything else
    if not images:
        result.notes.append("export parity: no sample boards (the gate set's dataset is not there)")
        return
    pt = folder / "model.pt"
    if pt.is_file():
        from inspection.inference.torch_detector import UltralyticsDetector

        torch_det = UltralyticsDetector(pt, conf=0.25, imgsz=onnx.imgsz)
        _parity_rows("onnx vs pt", compare_answers(torch_det, onnx, images), cfg, result)
    else:
        result.notes.append("export parity: no model.pt beside model.onnx, ONNX vs PyTorch not checked")
    int8 = folder / "model.int8.onnx"
    if int8.is_file():
        _parity_rows("int8 vs onnx", compare_answers(onnx, load(int8), images), cfg, result, int8=True)


def _parity_rows(
    what: str, found: tuple[int, float, float], cfg: GateConfig, result: GateResult, int8: bool = False
) -> None:
    unmatched, box, conf = found
    slack = 4.0 if int8 else 1.0  # INT8 moves boxes and scores more than an export does: a looser bound
    result.add(
        f"{what}: unmatched boxes", None, float(unmatched), "== 0" if not int8 else "recorded", not unmatched or int8
    )
    result.add(
        f"{what}: box diff px", None, round(box, 3), f"<= {cfg.parity_box_px * slack}", box <= cfg.parity_box_px * slack
    )
    result.add(
        f"{what}: conf diff", None, round(conf, 4), f"<= {cfg.parity_conf * slack}", conf <= cfg.parity_conf * slack
    )


def val_rows(active: dict[str, Any] | None, candidate: dict[str, Any], cfg: GateConfig, result: GateResult) -> None:
    """The validation split: headline metrics against the active model, each class's recall against the floor."""
    for m in cfg.metrics:
        c, a = candidate["summary"].get(m), active["summary"].get(m) if active else None
        ok = c is not None and (a is None or c >= a - cfg.margin)
        result.add(f"val {m}", a, c, f">= active - {cfg.margin}", ok)
    for name, c in candidate["recall"].items():
        a = active["recall"].get(name) if active else None
        ok = c is not None and c >= cfg.class_recall_floor
        result.add(f"val recall {name}", a, c, f">= {cfg.class_recall_floor}", ok)


def score_split(weights: Path, data: Path, split: str) -> dict[str, Any]:
    """Headline metrics and each class's recall of ``weights`` on a dataset split."""
    from inspection.ml.evaluate import evaluate_weights

    res = evaluate_weights(weights, data, split=split)
    recall = {
        k: (round(float(v["recall"]), 4) if v["instances"] else None) for k, v in res.metrics["per_class"].items()
    }
    return {"summary": res.summary(), "recall": recall}


@dataclass(frozen=True)
class Reviewed:
    """A reviewed board: its evidence crop and its reviewed verdict (the truth)."""

    image: np.ndarray
    truth: str


def reviewed_rates(detector: Detector, boards: Iterable[Reviewed], judge: Judge) -> dict[str, float | int]:
    """False-reject rate (fail or uncertain where the truth is pass) and miss rate (pass where it is fail)."""
    fr = miss = good = bad = 0
    for board in boards:
        outcome = judge(detector.detect([board.image])[0])
        if board.truth == "pass":
            good += 1
            fr += outcome != "pass"
        elif board.truth == "fail":
            bad += 1
            miss += outcome == "pass"
    return {
        "boards": good + bad,
        "false_reject_rate": round(fr / good, 4) if good else 0.0,
        "miss_rate": round(miss / bad, 4) if bad else 0.0,
    }


def reviewed_rows(
    active: dict[str, Any] | None, candidate: dict[str, Any], cfg: GateConfig, result: GateResult
) -> None:
    n = candidate["boards"]
    result.notes.append(f"reviewed inspections of the line replayed: {n}")
    if not n:
        return
    for key, margin in (("false_reject_rate", cfg.false_reject_margin), ("miss_rate", cfg.miss_margin)):
        a, c = (active or {}).get(key), candidate[key]
        ok = a is None or c <= a + margin
        result.add(f"reviewed {key}", a, c, f"<= active + {margin}", ok)

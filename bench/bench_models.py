"""Model delivery, measured (not a test): hot swap, shadow overhead, retrain dry run.

python bench/bench_models.py [--json] [--cameras 1 4] [--seconds 20] [--fps 15]

1. hot swap on the simulated line in real time (1 and 4 cameras by default): the time from the
   request (``ModelDesk.activate``) to the first verdict made by the new version, how long the
   swap itself took (build + warm + swap), and the frames the cameras dropped in the window
   around it compared with a window as long before it (the usual);
2. shadow overhead: p50 / p99 capture -> verdict on the same line without and with a shadow
   model beside the active one, and what the shadow ran and dropped;
3. ``twinspect retrain --dry-run``'s plan (reviewed inspections of the line counted, base
   dataset read) timed on the line's store.

The two versions are the shipped defect network registered twice (the swap and the shadow cost
the same as for a different network of the same architecture).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.cli.line import _simulated_line, default_boards  # noqa: E402
from api.model_runtime import build_desk  # noqa: E402
from api.runtime import build_engine  # noqa: E402
from api.settings import Settings  # noqa: E402
from inspection.pipeline.events import EngineEvent, Inspected  # noqa: E402
from inspection.store import ModelStates, Version, open_database  # noqa: E402

SHIPPED = REPO / "weights" / "defect-yolov8n-v1"


def registry(root: Path) -> Path:
    if not (SHIPPED / "model.onnx").is_file():  # v1 ships model.pt + INT8: rebuild its fp32 ONNX once
        from inspection.ml.export import export_onnx

        export_onnx(SHIPPED / "model.pt", imgsz=640, dynamic_batch=True)
    reg = root / "weights"
    for v in (1, 2):
        folder = reg / f"defect-yolov8n-v{v}"
        folder.mkdir(parents=True)
        for f in ("model.onnx", "model.int8.onnx", "model.pt"):
            (folder / f).symlink_to(SHIPPED / f)
        card = json.loads((SHIPPED / "card.json").read_text())
        (folder / "card.json").write_text(json.dumps({**card, "version": v}))
    return reg


class Line:
    """An engine on N real-time simulated cameras with its desk; verdicts timed as they come."""

    def __init__(self, root: Path, cameras: int, fps: float) -> None:
        reg = registry(root)
        settings = Settings(data_dir=root / "data")
        defect = settings.models.defect.model_copy(update={"weights": reg / "defect-yolov8n-v1"})
        settings = settings.model_copy(update={"models": settings.models.model_copy(update={"defect": defect})})
        settings = _simulated_line(
            settings, default_boards(), cameras, realtime=True, fps=fps, defect_rate=0.5, replay=False
        )
        self.db = open_database(f"sqlite:///{root / 'states.db'}")
        self.states = ModelStates(self.db)
        self.engine = build_engine(settings, store=False)
        self.desk = build_desk(settings, self.engine, None, self.states)
        self.verdicts: list[tuple[float, str, float]] = []  # (when, version, capture -> verdict s)
        self.engine.add_listener(self._on)

    def _on(self, event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            self.verdicts.append((time.monotonic(), event.model.version if event.model else "?", event.latency_s))

    def dropped(self) -> int:
        return sum(s.stats().dropped for s in self.engine.sources.values())

    def close(self) -> None:
        self.engine.stop()
        if self.desk.shadow_runner is not None:
            self.desk.shadow_runner.stop()
        self.db.dispose()


def bench_swap(cameras: int, seconds: float, fps: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        line = Line(Path(tmp), cameras, fps)
        line.engine.start()
        try:
            time.sleep(seconds / 2)
            d0 = line.dropped()
            time.sleep(seconds / 4)
            d1, t_ask = line.dropped(), time.monotonic()
            line.desk.activate(Version("defect-yolov8n", 2), "bench", "swap")
            t_done = time.monotonic()
            deadline = t_done + 30
            while time.monotonic() < deadline and not any(v == "2" for _, v, _ in line.verdicts):
                time.sleep(0.005)
            first = next((t for t, v, _ in line.verdicts if v == "2"), float("nan"))
            time.sleep(max(0.0, t_ask + seconds / 4 - time.monotonic()))
            d2 = line.dropped()
        finally:
            line.close()
    return {
        "cameras": cameras,
        "swap_s": round(t_done - t_ask, 3),
        "request_to_first_new_verdict_s": round(first - t_ask, 3),
        "dropped_before_window": d1 - d0,
        "dropped_swap_window": d2 - d1,
        "window_s": round(seconds / 4, 1),
        "verdicts": len(line.verdicts),
    }


def p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")


def bench_shadow(cameras: int, seconds: float, fps: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        line = Line(Path(tmp), cameras, fps)
        line.engine.start()
        try:
            time.sleep(2.0)  # warm-up
            t0 = time.monotonic()
            time.sleep(seconds)
            t1 = time.monotonic()
            line.desk.start_shadow(Version("defect-yolov8n", 2), "bench", "shadow")
            t2 = time.monotonic()
            time.sleep(seconds)
            t3 = time.monotonic()
            figures = line.desk.shadow_runner.figures() if line.desk.shadow_runner else {}
        finally:
            line.close()
    without = [lat for t, _, lat in line.verdicts if t0 <= t < t1]
    beside = [lat for t, _, lat in line.verdicts if t2 <= t < t3]
    return {
        "cameras": cameras,
        "without_shadow_ms": {"boards": len(without), "p50": p(without, 50), "p99": p(without, 99)},
        "with_shadow_ms": {"boards": len(beside), "p50": p(beside, 50), "p99": p(beside, 99)},
        "shadow": figures,
    }


def bench_dry_run() -> dict[str, Any]:
    """The plan on an empty line store over the whole DeepPCB train/val set imported (import not timed)."""
    from api.runtime import open_storage
    from inspection.ml.datasets.deeppcb import import_deeppcb
    from inspection.ml.retrain import plan_retrain

    with tempfile.TemporaryDirectory() as tmp:
        import_deeppcb(default_boards(), Path(tmp) / "deeppcb")
        settings = Settings(data_dir=Path(tmp) / "data")
        store, _ = open_storage(settings)
        t0 = time.monotonic()
        plan = plan_retrain(store, "line-1", SHIPPED, Path(tmp) / "datasets", 20, Path(tmp) / "deeppcb" / "data.yaml")
        out: dict[str, Any] = {"dry_run_s": round(time.monotonic() - t0, 3), "reviewed": plan.reviewed}
        out["base"] = plan.base_counts
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cameras", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--seconds", type=float, default=20.0, help="Length of each measured window set.")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["swap", "shadow", "retrain"])
    args = ap.parse_args()
    result: dict[str, Any] = {
        "swap": [bench_swap(c, args.seconds, args.fps) for c in args.cameras] if "swap" not in args.skip else [],
        "shadow": [bench_shadow(c, args.seconds, args.fps) for c in args.cameras] if "shadow" not in args.skip else [],
        "retrain": bench_dry_run() if "retrain" not in args.skip else {},
    }
    if args.json:
        print(json.dumps(result))
        return
    for s in result["swap"]:
        print(
            f"swap, {s['cameras']} camera(s): swap {s['swap_s']} s, request -> first verdict of the new model "
            f"{s['request_to_first_new_verdict_s']} s; frames dropped {s['dropped_swap_window']} in the "
            f"{s['window_s']} s around it vs {s['dropped_before_window']} in as long before"
        )
    for s in result["shadow"]:
        a, b = s["without_shadow_ms"], s["with_shadow_ms"]
        print(
            f"shadow, {s['cameras']} camera(s): capture -> verdict p50 / p99 {a['p50']} / {a['p99']} ms "
            f"({a['boards']} boards) without, {b['p50']} / {b['p99']} ms ({b['boards']} boards) with; "
            f"shadow {s['shadow']}"
        )
    print(f"retrain --dry-run: {result['retrain']}")


if __name__ == "__main__":
    main()

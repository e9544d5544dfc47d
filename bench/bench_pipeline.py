"""Benchmarks of the inspection engine (issue 3), measured side by side in one run.

    python bench/bench_pipeline.py [--boards DIR] [--n 20] [--rounds 3] [--latency-s 60] [--soak-min 10]

1. efficiency: `replay` frames/s and boards/s vs the pure ONNX Runtime `session.run` rate of
   the two models on the same frames and crops (no letterbox, no NMS, no tracking, no rendering):
   efficiency = (frames x part run + boards x defect run) / replay wall time, medians of
   alternating rounds;
2. latency: capture -> verdict p50 / p99 with 4 simulated cameras at 15 fps in real time;
3. memory: resident set size of the engine over a soak run (MB at start, at end, slope).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api.cli.line import _simulated_line  # noqa: E402
from api.runtime import build_engine, open_sync  # noqa: E402
from api.settings import load_settings  # noqa: E402
from camera.simulated import LineMotion, LineScene, replay_sequence  # noqa: E402
from inspection.inference.models import concurrency, weights_file  # noqa: E402
from inspection.inference.onnx_detector import OnnxDetector  # noqa: E402
from inspection.inference.preprocess import letterbox, to_tensor  # noqa: E402
from inspection.ml.datasets.boards import board_pool  # noqa: E402
from inspection.pipeline.events import Inspected  # noqa: E402
from inspection.pipeline.replay import ReplayReport  # noqa: E402


def subset(src: Path, n: int, dest: Path) -> Path:
    from tests.conftest import real_board_subset

    os.environ.setdefault("TWINSPECT_DEEPPCB", str(src))
    return real_board_subset(dest, n)


def tensors(det: OnnxDetector, images: list[np.ndarray]) -> list[np.ndarray]:
    """The images letterboxed for ``det`` (uint8: float tensors of every frame would need GBs)."""
    return [letterbox(im, det.imgsz)[0] for im in images]


def session_rate(det: OnnxDetector, boxed: list[np.ndarray]) -> float:
    """Seconds of pure session.run over letterboxed images, one image per call (tensors made untimed)."""
    det.session.run(None, {det.input_name: to_tensor([boxed[0]])})
    t = 0.0
    for b in boxed:
        tensor = to_tensor([b])
        t0 = time.perf_counter()
        det.session.run(None, {det.input_name: tensor})
        t += time.perf_counter() - t0
    return t


def parallel_rate(det: OnnxDetector, boxed: list[np.ndarray], runners: int) -> float:
    """Wall seconds of ``runners`` threads calling session.run side by side over the images (no pipeline)."""
    det.session.run(None, {det.input_name: to_tensor([boxed[0]])})
    items = iter(range(len(boxed)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(items, None)
            if i is None:
                return
            det.session.run(None, {det.input_name: to_tensor([boxed[i]])})

    threads = [threading.Thread(target=work) for _ in range(runners)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t0


def _replay_once(settings, boards: Path, seq) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Wall seconds of one whole replay of ``seq`` (the boards in DIR), frames processed."""
    with tempfile.TemporaryDirectory() as tmp:
        s = _simulated_line(
            settings.model_copy(update={"data_dir": Path(tmp)}),
            boards,
            1,
            realtime=False,
            fps=15.0,
            defect_rate=0.5,
            replay=True,
        )
        sync = open_sync(s)
        engine = build_engine(s, sync=sync)
        report = ReplayReport(seq, write=lambda _: None, emit_lines=False)
        engine.add_listener(report)
        t0 = time.monotonic()
        sync.start()
        engine.start()
        engine.wait()
        wall = time.monotonic() - t0
        done_frames = engine.status().frames
        engine.stop()
        sync.stop()
    return wall, done_frames


def efficiency(boards: Path, rounds: int) -> None:
    """Pure session.run and the replay pipeline, alternated ``rounds`` times; medians compared.

    Alternating rounds keep a noisy host (a shared VM, another process) from favouring one side.
    """
    settings = load_settings(None)
    pool = board_pool(boards)
    seq = replay_sequence(pool, 0.5, seed=0)
    scene = LineScene(pool, motion=LineMotion(), sequence=seq)
    frames, crops, seen = [], [], set()
    while (step := scene.step()) is not None:
        frames.append(step[0])
        for t in step[1]:  # the crop of each board once, when it is fully in view
            x1, y1, x2, y2 = t.xyxy.astype(int)
            if t.appearance not in seen and x1 > 0 and x2 < step[0].shape[1]:
                seen.add(t.appearance)
                crops.append(step[0][y1:y2, x1:x2])
    part = OnnxDetector(weights_file(settings.models.part.weights, "onnx"))
    defect = OnnxDetector(weights_file(settings.models.defect.weights, "onnx"))
    # the engine's own layout: runners side by side, intra-op threads each (settings models.*.runners/threads)
    layout = {
        m: concurrency(ms.providers, ms.backend, ms.runners, ms.threads)
        for m, ms in (("part", settings.models.part), ("defect", settings.models.defect))
    }
    part_l = OnnxDetector(weights_file(settings.models.part.weights, "onnx"), threads=layout["part"][1])
    defect_l = OnnxDetector(weights_file(settings.models.defect.weights, "onnx"), threads=layout["defect"][1])
    part_tensors = tensors(part, frames)
    defect_tensors = tensors(defect, crops)
    del frames
    ideals, layouts, walls, done_frames = [], [], [], 0
    for r in range(rounds):
        ideals.append(session_rate(part, part_tensors) + session_rate(defect, defect_tensors))
        layouts.append(
            parallel_rate(part_l, part_tensors, layout["part"][0])
            + parallel_rate(defect_l, defect_tensors, layout["defect"][0])
        )
        wall, done_frames = _replay_once(settings, boards, seq)
        walls.append(wall)
        print(
            f"  round {r + 1}: pure {ideals[-1]:.2f} s, pure in the engine's layout {layouts[-1]:.2f} s, "
            f"replay {wall:.2f} s"
        )
    ideal, best, wall = float(np.median(ideals)), float(np.median(layouts)), float(np.median(walls))
    n_frames = len(part_tensors)
    print(
        f"[efficiency] {len(seq)} boards, {n_frames} frames ({done_frames} processed), {len(crops)} crops, "
        f"median of {rounds} alternating rounds"
    )
    print(
        f"  pure session.run, one image per call (ONNX Runtime defaults): {ideal:.2f} s = "
        f"{n_frames / ideal:.1f} frames/s, {len(seq) / ideal:.2f} boards/s"
    )
    print(
        f"  pure session.run in the engine's layout (part {layout['part'][0]} runners x {layout['part'][1]} "
        f"thread(s), defect {layout['defect'][0]} x {layout['defect'][1]}): {best:.2f} s = "
        f"{n_frames / best:.1f} frames/s"
    )
    print(f"  replay pipeline:  {wall:.2f} s = {done_frames / wall:.1f} frames/s, {len(seq) / wall:.2f} boards/s")
    print(
        f"  efficiency vs pure session.run: {ideal / wall:.2f}; vs the same layout without the pipeline: "
        f"{best / wall:.2f}"
    )


def latency(boards: Path, seconds: float) -> None:
    settings = load_settings(None)
    lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        s = _simulated_line(
            settings.model_copy(update={"data_dir": Path(tmp)}),
            boards,
            4,
            realtime=True,
            fps=15.0,
            defect_rate=0.5,
            replay=False,
        )
        sync = open_sync(s)
        engine = build_engine(s, sync=sync)
        engine.add_listener(lambda e: lat.append(e.latency_s) if isinstance(e, Inspected) else None)
        sync.start()
        engine.start()
        time.sleep(seconds)
        dropped = sum(src.stats().dropped for src in engine.sources.values())
        frames_in = sum(src.stats().frames_in for src in engine.sources.values())
        engine.stop()
        sync.stop()
    a = np.array(lat) * 1000
    print(
        f"[latency] 4 cameras x 15 fps for {seconds:.0f} s: {len(a)} verdicts, frames in {frames_in}, dropped {dropped}"
    )
    if a.size:
        print(
            f"  capture -> verdict: p50 {np.percentile(a, 50):.0f} ms, p99 {np.percentile(a, 99):.0f} ms, "
            f"max {a.max():.0f} ms"
        )


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def soak(boards: Path, minutes: float) -> None:
    settings = load_settings(None)
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        s = _simulated_line(
            settings.model_copy(update={"data_dir": Path(tmp)}),
            boards,
            1,
            realtime=True,
            fps=15.0,
            defect_rate=0.5,
            replay=False,
        )
        sync = open_sync(s)
        engine = build_engine(s, sync=sync)
        sync.start()
        engine.start()
        t0 = time.monotonic()
        while (t := time.monotonic() - t0) < minutes * 60:
            samples.append((t, rss_mb()))
            time.sleep(5)
        verdicts = sum(engine.status().verdicts.values())
        events = sync.log.head
        engine.stop()
        sync.stop()
    t, m = np.array(samples).T
    half = len(m) // 2
    slope = np.polyfit(t[half:] / 60, m[half:], 1)[0] if half > 1 else float("nan")
    print(
        f"[memory] {minutes:.0f} min, {verdicts} verdicts, {events} events: RSS {m[0]:.0f} MB at start, "
        f"{m.max():.0f} MB peak, {m[-1]:.0f} MB at end; slope over the second half {slope:+.2f} MB/min"
    )


def main() -> None:
    from api.cli.main import limit_malloc_arenas

    limit_malloc_arenas()  # as the twinspect command does
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deeppcb", type=Path, default=REPO.parent / "shared" / "datasets" / "deeppcb-trainval")
    ap.add_argument("--n", type=int, default=20, help="tested boards (templates are mixed in 1:1)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating pure / replay rounds (medians)")
    ap.add_argument("--latency-s", type=float, default=60)
    ap.add_argument("--soak-min", type=float, default=10)
    ap.add_argument(
        "--only",
        choices=["efficiency", "latency", "soak"],
        help="run one part (a soak in a fresh process measures memory without the others' residue)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        boards = subset(args.deeppcb, args.n, Path(tmp) / "boards")
        if args.only in (None, "efficiency"):
            efficiency(boards, args.rounds)
        if args.only in (None, "latency") and args.latency_s > 0:
            latency(boards, args.latency_s)
        if args.only in (None, "soak") and args.soak_min > 0:
            soak(boards, args.soak_min)


if __name__ == "__main__":
    main()

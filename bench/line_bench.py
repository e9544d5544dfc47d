"""Run an engine over simulated cameras that play frames rendered ahead, and measure what a line asks of a box.

Shared by ``bench_capacity.py`` (cameras per box, overload, soak) and ``gpu_bench.py`` (8 cameras at
30 fps on a GPU). Rendering happens before the clock starts (``camera.prerendered``): one loop of
boards, every camera plays it from its own starting frame, so the renderer's cost is not the
engine's. A run plays the loop ``passes`` times (each camera finishes on an empty belt, so no board
is cut off by the end of the run), waits for every verdict, and reports:

- frames delivered and dropped (each camera's buffer drops the oldest when the engine is slow);
- parts seen, inspected and uninspected (coverage = inspected / seen);
- capture -> verdict latency p50 / p99 / max, of the verdicts after ``warmup_s``;
- the verdict backlog's and the engine's faults, if any (load shed is counted, never silent).

It imports the engine and camera rooms only (no api/, no settings): the caller builds the engine.
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera.frame import BoardTruth
from camera.prerendered import FrameLoop, PrerenderedLine
from inspection.pipeline.events import Inspected, PartUninspected

EngineFactory = Callable[[list[PrerenderedLine]], Any]  # the sources -> a built (not started) Engine


@dataclass
class LineRun:
    """What one run of ``cameras`` cameras at ``fps`` gave."""

    cameras: int
    fps: float
    wall_s: float
    frames_in: int = 0
    dropped: int = 0
    seen: int = 0
    inspected: int = 0
    uninspected: int = 0
    verdicts: int = 0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (capture wall time, capture->verdict ms)
    t_start: float = 0.0  # wall time the run started (after its warm-up: latencies count from here)
    uninspected_reasons: dict[str, int] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for t, ms in self.samples if t >= self.t_start]

    def latencies_after(self, t_wall: float) -> list[float]:
        return [ms for t, ms in self.samples if t >= t_wall]

    @property
    def coverage(self) -> float:
        return self.inspected / self.seen if self.seen else 1.0

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def holds(self, p99_ms: float) -> bool:
        """0 dropped, every part inspected, capture -> verdict p99 within the limit."""
        return self.dropped == 0 and self.uninspected == 0 and self.seen > 0 and self.p(99) <= p99_ms

    def line(self) -> str:
        lat = self.latencies_ms
        return (
            f"{self.cameras} cam x {self.fps:g} fps, {self.wall_s:.0f} s: frames {self.frames_in} "
            f"(dropped {self.dropped}), parts {self.seen} seen / {self.inspected} inspected / "
            f"{self.uninspected} uninspected (coverage {100 * self.coverage:.1f}%), {self.verdicts} verdicts; "
            f"capture->verdict p50 {self.p(50):.0f} ms, p99 {self.p(99):.0f} ms, max {max(lat, default=0):.0f} ms"
            + (f"; faults: {'; '.join(self.faults)[:200]}" if self.faults else "")
        )


def clean_starts(loop: FrameLoop, margin_px: float = 40.0) -> list[int]:
    """Frames a camera can start on: every board in view is still on the side of the frame's middle (the
    trigger line of the simulated line) it came in from, by ``margin_px``. A camera started elsewhere
    would see a board already past the trigger leave uninspected, a start artefact, not a shed part."""
    mid = loop.frames[0].shape[1] / 2

    def cx(t: BoardTruth) -> float:
        return float(t.xyxy[0] + t.xyxy[2]) / 2

    entry: dict[int, float] = {}  # appearance -> which side of the middle it entered on (+1 / -1)
    for truth in loop.truth:
        for t in truth:
            entry.setdefault(t.appearance, 1.0 if cx(t) >= mid else -1.0)
    return [
        i for i, truth in enumerate(loop.truth) if all((cx(t) - mid) * entry[t.appearance] > margin_px for t in truth)
    ]


def sources(
    loop: FrameLoop, cameras: int, passes: int, fps: float | None = None, first_extra: int = 0
) -> list[PrerenderedLine]:
    """``cameras`` cameras over one loop, started 1/cameras of the loop apart, each ending on an empty belt;
    the first camera plays ``first_extra`` passes more than the others (an overload that ends)."""
    n = len(loop.frames)
    clean = clean_starts(loop)
    out = []
    for i in range(cameras):
        start = next((j for j in clean if j >= (i * n) // cameras), 0)
        frames = (passes + (first_extra if i == 0 else 0)) * n + (n - start) % n
        out.append(PrerenderedLine(f"cam{i + 1}", loop, start=start, frames=frames, fps=fps))
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for row in fh:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_line(
    make_engine: EngineFactory,
    loop: FrameLoop,
    cameras: int,
    passes: int = 2,
    fps: float | None = None,
    warmup_s: float = 3.0,
    rss_every_s: float = 0.0,
    stop_after_s: float | None = None,
    first_extra: int = 0,
) -> LineRun:
    """Play ``passes`` of the loop on ``cameras`` cameras through the engine; see the module docstring."""
    srcs = sources(loop, cameras, passes, fps, first_extra)
    engine = make_engine(srcs)
    run = LineRun(cameras, fps or loop.fps, 0.0)
    lock = threading.Lock()

    def listen(event: object) -> None:
        with lock:
            if isinstance(event, Inspected):
                run.verdicts += 1
                run.samples.append((event.t_wall, event.latency_s * 1000))
            elif isinstance(event, PartUninspected):
                run.uninspected_reasons[event.reason] = run.uninspected_reasons.get(event.reason, 0) + 1

    engine.add_listener(listen)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(run, stop, rss_every_s), daemon=True)
    t0 = time.monotonic()
    run.t_start = time.time() + warmup_s
    engine.start()
    if rss_every_s:
        sampler.start()
    engine.wait(timeout=stop_after_s)
    run.wall_s = time.monotonic() - t0
    stop.set()
    _collect(engine, run)
    engine.stop()
    return run


def _sample_rss(run: LineRun, stop: threading.Event, every: float) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        run.rss_mb.append((time.monotonic() - t0, rss_mb()))
        stop.wait(every)


def _collect(engine: Any, run: LineRun) -> None:
    status = engine.status()
    for cam in status.cameras:
        run.frames_in += cam.source.frames_in
        run.dropped += cam.source.dropped
        run.seen += cam.parts.seen
        run.inspected += cam.parts.inspected
        run.uninspected += cam.parts.uninspected
    run.faults = [f"{f.component}: {f.reason}" for f in status.faults]


def rss_slope(samples: list[tuple[float, float]]) -> float:
    """MB per minute over the second half of the samples (nan with fewer than 4)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2 or len(samples) < 4:
        return float("nan")
    t, m = np.array(half).T
    return float(np.polyfit(t / 60, m, 1)[0])


def host() -> str:
    """The machine a figure came from: CPU model, cores, load, Python."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((r.split(":", 1)[1].strip() for r in fh if r.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, load {load:.1f}, Python {platform.python_version()}"

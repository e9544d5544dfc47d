"""Capacity per box (issue 15): how many simulated cameras at 15 fps (1280x720) one box holds, overload, soak.

    python bench/bench_capacity.py [--cameras 1,2,3] [--passes 2] [--overload N] [--soak-min 30]
                                   [--only capacity|overload|soak]

The product's own engine (``build_engine`` with its event log and store, the configured models
and precision) runs over simulated cameras that play frames rendered before the clock starts
(``camera/prerendered.py``: one loop of real DeepPCB boards, shared read-only by every camera,
each camera starting at its own frame), so the simulator's rendering is not counted in the
engine's budget. Each camera count plays the loop ``--passes`` times; a count *holds* when 0
frames were dropped, every part was inspected (coverage 100%) and capture -> verdict p99 is
within ``--p99-ms`` (250). Beside the 1-camera run it times one part inference and one defect
inference on the same pixels (the floor a verdict's latency cannot go under: the aim is
latency at 1 camera <= 2x that).

- capacity: the counts in ``--cameras``; prints each and the largest that holds;
- overload: ``--overload`` cameras (default: the largest count + 2) for one pass while camera 1
  plays two more: what was shed is counted (dropped frames, part.uninspected with its reasons),
  and the latency once the overload has ended shows whether the engine recovered;
- soak: ``--soak-cameras`` (default 1) for ``--soak-min`` minutes, RSS every 5 s, slope over the
  second half (aim <= 0.05 MB/min). The 30-minute soak: ``--only soak --soak-min 30``.

Prints the host it ran on; a training job or a test suite beside it changes every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from line_bench import LineRun, host, rss_slope, run_line  # noqa: E402

from api.cli.line import _simulated_line  # noqa: E402
from api.runtime import _detector, build_engine, open_sync  # noqa: E402
from api.settings import Settings, load_settings  # noqa: E402
from camera.prerendered import FrameLoop, render_loop  # noqa: E402
from inspection.ml.datasets.boards import board_pool  # noqa: E402


def subset(src: Path, n: int, dest: Path) -> Path:
    from tests.conftest import real_board_subset

    os.environ.setdefault("TWINSPECT_DEEPPCB", str(src))
    return real_board_subset(dest, n)


def line_run(settings: Settings, boards: Path, loop: FrameLoop, cameras: int, **kw: Any) -> LineRun:
    """One run of the product's engine (event log and store in a fresh data dir) over prerendered cameras."""
    with tempfile.TemporaryDirectory() as tmp:
        s = _simulated_line(
            settings.model_copy(update={"data_dir": Path(tmp)}),
            boards,
            cameras,
            realtime=True,
            fps=loop.fps,
            defect_rate=0.5,
            replay=False,
        )
        sync = open_sync(s)
        sync.start()
        try:
            return run_line(lambda srcs: build_engine(s, sources=list(srcs), sync=sync), loop, cameras, **kw)
        finally:
            sync.stop()


def model_floor(settings: Settings, loop: FrameLoop) -> tuple[float, float]:
    """Median ms of one part inference on a frame and one defect inference on a board crop (same pixels)."""
    part, _ = _detector(settings.models.part, settings.models.part.conf)
    defect, _ = _detector(settings.models.defect, settings.models.defect.conf)
    busy = [i for i, t in enumerate(loop.truth) if t][:: max(1, len(loop.truth) // 20)][:20]
    crops = []
    for i in busy:
        x1, y1, x2, y2 = loop.truth[i][0].xyxy.astype(int)
        crops.append(np.ascontiguousarray(loop.frames[i][y1:y2, x1:x2]))
    part.detect([loop.frames[busy[0]]])
    defect.detect([crops[0]])
    tp, td = [], []
    for i, crop in zip(busy, crops, strict=True):
        t0 = time.perf_counter()
        part.detect([loop.frames[i]])
        t1 = time.perf_counter()
        defect.detect([crop])
        td.append(time.perf_counter() - t1)
        tp.append(t1 - t0)
    return statistics.median(tp) * 1000, statistics.median(td) * 1000


def capacity(settings: Settings, boards: Path, loop: FrameLoop, counts: list[int], passes: int, p99: float) -> int:
    held = 0
    for k in counts:
        if k == 1:
            part_ms, defect_ms = model_floor(settings, loop)
        run = line_run(settings, boards, loop, k, passes=passes)
        ok = run.holds(p99)
        print(f"  {'HOLDS' if ok else 'fails'}: {run.line()}", flush=True)
        if run.uninspected_reasons:
            print(f"    uninspected: {run.uninspected_reasons}")
        if k == 1 and run.latencies_ms:
            floor = part_ms + defect_ms
            print(
                f"    model floor (part {part_ms:.0f} ms + defect {defect_ms:.0f} ms, one image each) {floor:.0f} ms: "
                f"1-camera p50 {run.p(50) / floor:.2f}x, p99 {run.p(99) / floor:.2f}x of it"
            )
        if ok:
            held = max(held, k)
    print(f"[capacity] largest camera count that holds (0 dropped, 100% coverage, p99 <= {p99:.0f} ms): {held}")
    return held


def overload(settings: Settings, boards: Path, loop: FrameLoop, cameras: int) -> None:
    run = line_run(settings, boards, loop, cameras, passes=1, first_extra=2)
    end_of_overload = run.t_start + loop.seconds  # the others stop after one pass; camera 1 plays two more
    after = run.latencies_after(end_of_overload + 2.0)
    print(f"[overload] {run.line()}")
    print(
        f"  shed, counted: {run.dropped} frames dropped, {run.uninspected} parts uninspected {run.uninspected_reasons}"
    )
    if after:
        print(
            f"  after the overload ended (camera 1 alone, {len(after)} verdicts): "
            f"p50 {np.percentile(after, 50):.0f} ms, p99 {np.percentile(after, 99):.0f} ms"
        )


def soak(settings: Settings, boards: Path, loop: FrameLoop, cameras: int, minutes: float) -> None:
    passes = max(1, round(minutes * 60 / loop.seconds))
    run = line_run(settings, boards, loop, cameras, passes=passes, rss_every_s=5.0)
    m = [mb for _, mb in run.rss_mb]
    print(f"[soak] {run.line()}")
    if m:
        print(
            f"  RSS {m[0]:.0f} MB at start, {max(m):.0f} MB peak, {m[-1]:.0f} MB at end; "
            f"slope over the second half {rss_slope(run.rss_mb):+.3f} MB/min ({len(m)} samples)"
        )


def main() -> None:
    from api.cli.main import limit_malloc_arenas

    limit_malloc_arenas()  # as the twinspect command does
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deeppcb", type=Path, default=REPO.parent / "shared" / "datasets" / "deeppcb-trainval")
    ap.add_argument("--n", type=int, default=8, help="boards in the rendered loop")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--cameras", default="1,2,3", help="camera counts to try")
    ap.add_argument("--passes", type=int, default=2, help="passes of the loop per count (~24 s each at 8 boards)")
    ap.add_argument("--p99-ms", type=float, default=250.0)
    ap.add_argument("--overload", type=int, default=0, help="cameras of the overload run (0: largest count + 2)")
    ap.add_argument("--soak-min", type=float, default=0.0, help="minutes of the soak (0: none)")
    ap.add_argument("--soak-cameras", type=int, default=1)
    ap.add_argument("--only", choices=["capacity", "overload", "soak"])
    args = ap.parse_args()
    print(f"[host] {host()}")
    settings = load_settings(None)
    with tempfile.TemporaryDirectory() as tmp:
        boards = subset(args.deeppcb, args.n, Path(tmp) / "boards")
        t0 = time.monotonic()
        loop = render_loop(board_pool(boards), boards=2 * args.n, fps=args.fps)
        print(
            f"[render ahead] {len(loop.frames)} frames 1280x720 ({loop.seconds:.1f} s a pass, {loop.boards} boards) "
            f"in {time.monotonic() - t0:.1f} s, {loop.nbytes / 2**20:.0f} MiB shared by every camera"
        )
        counts = [int(c) for c in args.cameras.split(",")]
        if args.only in (None, "capacity"):
            capacity(settings, boards, loop, counts, args.passes, args.p99_ms)
        if args.only in (None, "overload"):
            overload(settings, boards, loop, args.overload or max(counts) + 2)
        if args.only in (None, "soak") and args.soak_min > 0:
            soak(settings, boards, loop, args.soak_cameras, args.soak_min)


if __name__ == "__main__":
    main()

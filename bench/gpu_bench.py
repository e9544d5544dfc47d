#!/usr/bin/env python3
"""The GPU serving bench (issue 15): PyTorch path boards/s and p99 per batch size, and the engine at 8 x 30 fps.

``pack`` (here, on the CPU machine) writes ``build/gpu-bench/`` (ignored by git): the wheels the GPU
image lacks and the engine imports (Ultralytics, which loads the .pt; pydantic, SQLAlchemy and
Alembic, imported by the pipeline's config and the store), and a few real DeepPCB boards. ``run``
(there, through ``bench/gpu_bench.sh``) measures, within ``--budget-s``:

1. each model (part at 1280x720 frames, defect at 640x640 boards) through ``TorchDetector.detect``:
   host uint8 images in, boxes in source pixels out (upload, letterbox, forward, NMS and copy back
   all timed), per batch size 1..64, in fp32, fp16 and fp16 with CUDA graphs: boards/s and the
   p50 / p99 of one call; ONNX Runtime on the CPU cores beside it for the ratio, and how far fp16's
   boxes are from fp32's on the same boards;
2. the engine (part model, tracker, trigger, defect model, rules; no store) with 8 simulated cameras
   at 30 fps, frames rendered ahead (``camera/prerendered.py``): dropped frames, coverage, capture ->
   verdict p50 / p99, in the fastest mode of step 1.

``--cpu-smoke`` runs the same code on the CPU, tiny (the suite runs it: tests/bench/test_gpu_bench.py).
Writes ``OUT/gpu_bench.json``; ``gpu_bench.sh`` tees the log to ``OUT/gpu_bench.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DEFAULT_PACK = REPO / "build" / "gpu-bench"
# what the GPU image lacks and the engine needs, at requirements.lock's versions (cp312 wheels for it)
WHEELS = (
    "pydantic==2.14.3",
    "pydantic_core==2.50.4",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "SQLAlchemy==2.1.9",
    "alembic==1.20.1",
    "Mako==1.4.3",
)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
MODES = {"fp32": {"half": False}, "fp16": {"half": True}, "fp16+graphs": {"half": True, "cuda_graphs": True}}


class Clock:
    """The run's deadline: every section asks whether it still fits."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget_s = time.monotonic(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)


def cmd_pack(args: argparse.Namespace) -> int:
    import gpu_pack

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_wheels:
        gpu_pack.fetch_wheel(out)
        have = {p.name.split("-")[0].lower().replace("_", "-") for p in out.glob("*.whl")}
        want = [w for w in WHEELS if w.split("==")[0].lower().replace("_", "-") not in have]
        if want:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
                + ["--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--platform", "any"]
                + ["-d", str(out), *want],
                check=True,
            )
    boards = out / "boards"
    if not boards.is_dir():
        from tests.conftest import real_board_subset

        os.environ.setdefault("TWINSPECT_DEEPPCB", str(args.src))
        real_board_subset(boards, args.boards)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    tree = gpu_pack.travelling_bytes(REPO)
    total = size + tree
    print(f"[pack] {out}: {size / 2**20:.2f} MiB; working tree {tree / 2**20:.1f} MiB; travels {total / 2**20:.1f} MiB")
    if total > 0.95 * gpu_pack.TRAVEL_LIMIT:
        print(f"[pack] too big: a device run carries at most {gpu_pack.TRAVEL_LIMIT >> 20} MiB", file=sys.stderr)
        return 1
    return 0


def model_file(weights: Path, suffix: str) -> Path:
    from inspection.inference.models import weights_file

    return weights_file(weights, "torch").with_suffix(suffix)


def boards_and_frames(pack: Path, n_loop: int, fps: float) -> tuple[list[Any], Any]:
    """The packed boards (as the defect model sees them) and a line loop rendered from them."""
    import cv2

    from camera.prerendered import render_loop
    from inspection.ml.datasets.boards import board_pool

    boards = [cv2.imread(str(p)) for p in sorted((pack / "boards").rglob("*_test.jpg"))]
    loop = render_loop(board_pool(pack / "boards"), boards=n_loop, fps=fps)
    return [b for b in boards if b is not None], loop


def time_calls(
    det: Any, images: list[Any], batch: int, seconds: float, max_calls: int, warmup: int = 3
) -> dict[str, float]:
    """boards/s and per-call p50 / p99 of ``det.detect`` on batches of ``batch`` images (after warm-up)."""
    import numpy as np

    batch_imgs = [images[i % len(images)] for i in range(batch)]
    for _ in range(warmup):
        det.detect(batch_imgs)
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end and len(times) < max_calls:
        t0 = time.perf_counter()
        det.detect(batch_imgs)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "batch": batch,
        "calls": len(times),
        "images_per_s": round(batch * len(times) / float(np.sum(times)), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def sweep(name: str, pt: Path, images: list[Any], opts: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Every mode x batch size of one model; a mode that fails is reported and the others go on."""
    from inspection.inference.torch_detector import TorchDetector

    out: dict[str, Any] = {}
    for mode in opts["modes"]:
        if clock.left() < opts["reserve_s"]:
            out[mode] = {"skipped": "budget"}
            continue
        try:
            det = TorchDetector(pt, device=opts["device"], **MODES[mode])
            rows = []
            for b in opts["batches"]:
                rows.append(time_calls(det, images, b, opts["seconds"], opts["max_calls"], opts["warmup"]))
                r = rows[-1]
                print(
                    f"  {name:6s} {mode:12s} batch {b:3d}: {r['images_per_s']:9.1f} images/s, "
                    f"p50 {r['p50_ms']:7.2f} ms, p99 {r['p99_ms']:7.2f} ms",
                    flush=True,
                )
            out[mode] = {"provider": det.provider, "rows": rows}
            del det
        except Exception as exc:  # report and go on: one mode's failure must not lose the others
            out[mode] = {"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
            print(f"  {name} {mode}: FAILED {out[mode]['error']}", flush=True)
    return out


def onnx_cpu(onnx: Path, images: list[Any], opts: dict[str, Any]) -> dict[str, Any]:
    """ONNX Runtime on this machine's CPU cores (batch 1 and 8): the ratio's other side."""
    from inspection.inference.onnx_detector import OnnxDetector

    det = OnnxDetector(onnx, providers=["CPUExecutionProvider"])
    rows = [
        time_calls(det, images, b, opts["seconds"], opts["max_calls"], opts["warmup"]) for b in opts["onnx_batches"]
    ]
    for r in rows:
        print(f"  onnx cpu batch {r['batch']}: {r['images_per_s']:.1f} images/s, p99 {r['p99_ms']:.1f} ms", flush=True)
    return {"provider": det.provider, "rows": rows}


def agreement(pt: Path, images: list[Any], device: str) -> dict[str, Any]:
    """fp16's boxes against fp32's on the same boards: matched share (IoU >= 0.9, same class), score drift."""
    import numpy as np

    from inspection.inference.nms import box_iou
    from inspection.inference.torch_detector import TorchDetector

    ref = TorchDetector(pt, device=device, half=False).detect(images)
    got = TorchDetector(pt, device=device, half=True).detect(images)
    matched = total = 0
    drift: list[float] = []
    for a, b in zip(ref, got, strict=True):
        total += len(a)
        if len(a) and len(b):
            iou = box_iou(a.xyxy, b.xyxy)
            j = iou.argmax(1)
            ok = (iou.max(1) >= 0.9) & (a.class_id == b.class_id[j])
            matched += int(ok.sum())
            drift += list(np.abs(a.confidence[ok] - b.confidence[j][ok]))
    return {"boxes_fp32": total, "matched_fp16": matched, "max_score_diff": float(max(drift, default=0.0))}


def engine_run(part_pt: Path, defect_pt: Path, loop: Any, opts: dict[str, Any], mode: str) -> dict[str, Any]:
    """The engine with ``opts['cameras']`` cameras at the loop's fps, both models in ``mode``, no store."""
    from line_bench import run_line

    from inspection.inference.models import model_input
    from inspection.inference.torch_detector import TorchDetector
    from inspection.pipeline.engine import Engine, EngineConfig
    from inspection.pipeline.events import ModelInfo
    from inspection.pipeline.parts import PartsConfig
    from inspection.pipeline.trigger import LineTriggerConfig

    if model_input(defect_pt.parent) == "reference":
        return {"skipped": f"{defect_pt.parent.name} takes reference input: pass --engine-defect an image model"}
    part = TorchDetector(part_pt, conf=0.4, device=opts["device"], **MODES[mode])
    defect = TorchDetector(defect_pt, conf=0.2, device=opts["device"], **MODES[mode])
    h, w = loop.frames[0].shape[:2]
    trigger = LineTriggerConfig(start=(w / 2, 0.0), end=(w / 2, float(h)), direction="right_to_left")
    config = EngineConfig(parts=PartsConfig(trigger=trigger), max_batch=opts["engine_batch"], max_wait_ms=2.0)
    model = ModelInfo(defect_pt.parent.name, "bench")
    run = run_line(
        lambda srcs: Engine(config, list(srcs), part, defect, model),
        loop,
        opts["cameras"],
        passes=opts["passes"],
        warmup_s=2.0,
    )
    print(f"[engine] {mode}: {run.line()}", flush=True)
    return {
        "mode": mode,
        "cameras": run.cameras,
        "fps": run.fps,
        "wall_s": round(run.wall_s, 1),
        "frames_in": run.frames_in,
        "dropped": run.dropped,
        "seen": run.seen,
        "inspected": run.inspected,
        "uninspected": run.uninspected,
        "coverage": run.coverage,
        "verdicts": run.verdicts,
        "p50_ms": round(run.p(50), 1),
        "p99_ms": round(run.p(99), 1),
        "faults": run.faults,
    }


def best_mode(result: dict[str, Any], batch: int = 8) -> str:
    """The mode with the most images/s at ``batch`` (fp32 when none ran)."""
    rates = {
        m: next((r["images_per_s"] for r in v.get("rows", []) if r["batch"] == batch), 0.0) for m, v in result.items()
    }
    return max(rates, key=lambda m: rates[m]) if any(rates.values()) else "fp32"


def environment(device: str) -> dict[str, Any]:
    import torch
    from line_bench import host

    env = {"host": host(), "torch": torch.__version__, "device": device, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        torch.backends.cudnn.benchmark = True  # fixed shapes per batch size: let cuDNN pick its kernels once
    print(f"[host] {json.dumps(env)}", flush=True)
    return env


def options(args: argparse.Namespace) -> dict[str, Any]:
    if args.cpu_smoke:
        return {
            "device": "cpu",
            "modes": ["fp32"],
            "batches": [1, 2],
            "onnx_batches": [1],
            "seconds": 0.1,
            "max_calls": 1,
            "warmup": 1,
            "reserve_s": 0,
            "cameras": 1,
            "fps": 5.0,
            "loop_boards": 1,
            "passes": 1,
            "engine_batch": 4,
        }
    return {
        "device": "cuda:0",
        "modes": list(MODES),
        "batches": list(BATCHES),
        "onnx_batches": [1, 8],
        "seconds": args.seconds,
        "max_calls": 400,
        "warmup": 3,
        "reserve_s": 90,
        "cameras": args.cameras,
        "fps": args.fps,
        "loop_boards": 10,
        "passes": 1,
        "engine_batch": 16,
    }


def cmd_run(args: argparse.Namespace) -> int:
    clock = Clock(args.budget_s)
    opts = options(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"smoke": args.cpu_smoke, "env": environment(opts["device"]), "options": opts}
    if args.cpu_smoke:
        import torch

        torch.set_num_threads(1)  # a busy 2-core test host: one thread is the steadiest

    def save() -> None:
        (out / "gpu_bench.json").write_text(json.dumps(result, indent=1))

    boards, loop = boards_and_frames(args.pack, opts["loop_boards"], opts["fps"])
    frames = [f for f, t in zip(loop.frames, loop.truth, strict=True) if t][:64]
    print(f"[data] {len(boards)} boards, loop of {len(loop.frames)} frames at {loop.fps:g} fps", flush=True)
    part_pt, defect_pt = model_file(args.part, ".pt"), model_file(args.defect, ".pt")
    result["models"] = {"part": str(part_pt.relative_to(REPO)), "defect": str(defect_pt.relative_to(REPO))}
    result["defect"] = sweep("defect", defect_pt, boards, opts, clock)
    save()
    result["part"] = sweep("part", part_pt, frames, opts, clock)
    save()
    result["defect_onnx_cpu"] = onnx_cpu(model_file(args.defect, ".onnx"), boards, opts)
    if not args.cpu_smoke:
        result["fp16_vs_fp32"] = agreement(defect_pt, boards[:32], opts["device"])
        print(f"[agreement] {result['fp16_vs_fp32']}", flush=True)
    save()
    mode = best_mode(result["defect"])
    from inspection.inference.models import model_input

    engine_defect = args.engine_defect or args.defect
    if args.engine_defect is None and model_input(args.defect) == "reference":
        engine_defect = REPO / "weights" / "defect-yolov8n-v1"  # the engine here has no recipe store: an image model
        print(f"[engine] {args.defect.name} takes reference input: the engine run serves {engine_defect.name}")
    engine_pt = model_file(engine_defect, ".pt")
    try:
        result["engine"] = engine_run(part_pt, engine_pt, loop, opts, mode)
    except Exception as exc:  # report it: the figures before it stay
        result["engine"] = {"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
        print(f"[engine] FAILED {result['engine']['error']}", flush=True)
    result["wall_s"] = round(time.monotonic() - clock.t0, 1)
    save()
    print(f"[done] {result['wall_s']} s; {out / 'gpu_bench.json'}", flush=True)
    return 0 if "error" not in result["engine"] else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="build/gpu-bench: wheels the GPU image lacks and some real boards")
    p.add_argument("--out", type=Path, default=DEFAULT_PACK)
    p.add_argument("--src", type=Path, default=REPO.parent / "shared" / "datasets" / "deeppcb-trainval")
    p.add_argument("--boards", type=int, default=12)
    p.add_argument("--no-wheels", action="store_true", help="boards only (the suite's CPU smoke)")
    r = sub.add_parser("run", help="measure (on the GPU machine, through gpu_bench.sh)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    r.add_argument("--part", type=Path, default=REPO / "weights" / "part-yolov8n")
    r.add_argument("--defect", type=Path, default=REPO / "weights" / "defect-yolov8n")
    r.add_argument(
        "--engine-defect",
        type=Path,
        help="the engine run's defect model (default: --defect, or defect-yolov8n-v1 when that takes reference input)",
    )
    r.add_argument("--cameras", type=int, default=8)
    r.add_argument("--fps", type=float, default=30.0)
    r.add_argument("--seconds", type=float, default=2.0, help="timed seconds per mode and batch size")
    r.add_argument("--budget-s", type=float, default=420.0)
    r.add_argument("--cpu-smoke", action="store_true", help="the same path on the CPU, tiny")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        return cmd_pack(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())

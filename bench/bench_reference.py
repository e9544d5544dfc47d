"""Benchmark: golden-reference inspection against the plain model, measured side by side.

    python bench/bench_reference.py [--only align cost accuracy replay] [--n 60]
        [--plain weights/defect-yolov8n-v1] [--reference weights/defect-yolov8n]

- align:    registration of rendered boards (the simulated line's rotation, scale, keystone and
            lighting) to their goldens, p50/p99 ms per board for ECC (the default) and
            features+RANSAC, next to one defect inference (fp32, one image, one thread: what an
            engine runner does) on the same machine; the aim is alignment <= 10% of an inference.
            The differences and the 3-plane composition are timed too (the rest of the stage).
- cost:     inference ms of the reference model vs the plain model (fp32 and INT8), same images.
- accuracy: twinspect eval of the plain model on the plain validation split and of the reference
            model on the reference split (the same 187 boards): mAP50, DeepPCB F, per-class AP50.
- replay:   twinspect replay of the validation boards, half good, with each model: defective-board
            recall, good boards failed and uncertain, and how often each golden rule fired.

Paths take turns within each section, so a drifting host affects both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEEPPCB = Path(os.environ.get("TWINSPECT_DEEPPCB", REPO.parent / "shared" / "datasets" / "deeppcb-trainval"))


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def rendered_boards(n: int) -> list[tuple[np.ndarray, np.ndarray, object, bool]]:
    """Crops (with the engine's 16 px margin) of ``n`` boards as the simulated line shows them:
    (crop, board box in the crop, golden, defective)."""
    from camera.config import SimulatedCamera
    from camera.simulated import LineMotion, LineScene, board_crops, replay_sequence
    from inspection.ml.datasets.boards import board_pool
    from inspection.reference.recipes import golden_from_image

    cam = SimulatedCamera(type="simulated", id="c", boards=DEEPPCB)
    pool = board_pool(DEEPPCB)
    motion = LineMotion(
        angle_jitter_deg=cam.angle_jitter_deg,
        scale_jitter=cam.scale_jitter,
        perspective=cam.perspective,
        light_jitter=cam.light_jitter,
        seed=1,
    )
    scene = LineScene(pool, motion=motion, sequence=replay_sequence(pool, 0.5, seed=0)[: n + 8])
    sprites = {s.product: s for s in pool.good}
    return [
        (
            c.crop,
            c.board_xyxy,
            golden_from_image(str(c.truth.product), f"{i:064x}", sprites[c.truth.product].image),
            bool(c.truth.defective),
        )
        for i, c in enumerate(board_crops(scene, limit=n))
    ]


def bench_align(n: int, weights: Path) -> dict[str, object]:
    import cv2

    from inspection.inference.onnx_detector import OnnxDetector
    from inspection.reference.align import align
    from inspection.reference.differences import DifferenceConfig, find_differences
    from inspection.reference.planes import compose
    from inspection.reference.recipes import AlignSettings

    cv2.setNumThreads(1)  # an engine aligner thread, as the defect runners: one core each
    boards = rendered_boards(n)
    det = OnnxDetector(weights_file(weights), threads=1)
    times: dict[str, list[float]] = {"ecc": [], "features": [], "differences+compose": [], "inference": []}
    ok = {"ecc": 0, "features": 0}
    for crop, box, golden, _ in boards:
        for method in ("ecc", "features"):
            t0 = time.perf_counter()
            a = align(crop, box, golden, AlignSettings(method=method))  # type: ignore[arg-type]
            times[method].append(1000 * (time.perf_counter() - t0))
            ok[method] += a.ok
        a = align(crop, box, golden)
        aligned = a.aligned if a.aligned is not None else golden.image
        t0 = time.perf_counter()
        find_differences(aligned, golden.image, DifferenceConfig())
        image = compose(aligned, golden.image)
        times["differences+compose"].append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        det.detect([image])
        times["inference"].append(1000 * (time.perf_counter() - t0))
    infer = float(np.median(times["inference"]))
    return {
        "boards": len(boards),
        "ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in times.items()},
        "aligned_ok": {k: f"{v}/{len(boards)}" for k, v in ok.items()},
        "ecc_share_of_inference": round(float(np.median(times["ecc"])) / infer, 3),
        "stage_share_of_inference": round(
            (float(np.median(times["ecc"])) + float(np.median(times["differences+compose"]))) / infer, 3
        ),
    }


def weights_file(weights: Path, precision: str = "fp32") -> Path:
    from inspection.inference.models import weights_file as wf

    return wf(weights, "onnx", precision)  # type: ignore[arg-type]


def bench_cost(plain: Path, reference: Path, n: int) -> dict[str, object]:
    from inspection.inference.onnx_detector import OnnxDetector
    from inspection.ml.images import read_image

    files = sorted((REPO / "datasets" / "deeppcb-ref" / "images" / "val").glob("*.png"))[:n]
    images = [read_image(p) for p in files]
    out: dict[str, object] = {}
    for precision in ("fp32", "int8"):
        dets = {
            "plain": OnnxDetector(weights_file(plain, precision), threads=1),
            "reference": OnnxDetector(weights_file(reference, precision), threads=1),
        }
        ms: dict[str, list[float]] = {k: [] for k in dets}
        for img in images:  # the two take turns image by image
            for name, det in dets.items():
                t0 = time.perf_counter()
                det.detect([img])
                ms[name].append(1000 * (time.perf_counter() - t0))
        out[precision] = {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in ms.items()}
        out[precision]["reference/plain"] = round(float(np.median(ms["reference"]) / np.median(ms["plain"])), 3)
    return out


def twinspect(*args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    if r.returncode:
        raise SystemExit(f"twinspect {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def bench_accuracy(plain: Path, reference: Path) -> dict[str, object]:
    out = {}
    for name, weights, data in (
        ("plain", plain, "datasets/deeppcb/data.yaml"),
        ("reference", reference, "datasets/deeppcb-ref/data.yaml"),
    ):
        s = json.loads(twinspect("eval", "-w", str(weights), "--data", data, "--json"))
        out[name] = {
            "map50": s["map50"],
            "deeppcb_f": s["deeppcb_fscore"],
            "map50_95": s["map50_95"],
            "per_class_ap50": s["per_class_ap50"],
        }
    return out


def bench_replay(plain: Path, reference: Path) -> dict[str, object]:
    out = {}
    for name, weights in (("plain", plain), ("reference", reference)):
        env = {"TWINSPECT_MODELS__DEFECT__WEIGHTS": str(weights)}
        lines = twinspect(
            "replay", "--boards", str(DEEPPCB), "--split", "val", "--json", "--no-store", env=env
        ).splitlines()
        s = json.loads(lines[-1])["summary"]
        out[name] = {
            k: s.get(k)
            for k in (
                "board_recall",
                "board_precision",
                "good_boards",
                "defective_boards",
                "alignment",
                "verdicts",
                "boards_per_s",
            )
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=["align", "cost", "accuracy", "replay"])
    ap.add_argument("--n", type=int, default=60, help="boards for align and cost")
    ap.add_argument("--plain", type=Path, default=REPO / "weights" / "defect-yolov8n-v1")
    ap.add_argument("--reference", type=Path, default=REPO / "weights" / "defect-yolov8n")
    args = ap.parse_args()
    if not (args.plain / "model.onnx").is_file():  # v1 ships model.pt + INT8; its fp32 ONNX is rebuilt once
        twinspect("export", str(args.plain), "--check", "0")
    report: dict[str, object] = {"cpus": os.cpu_count()}
    if "align" in args.only:
        report["align"] = bench_align(args.n, args.reference if args.reference.exists() else args.plain)
    if "cost" in args.only:
        report["cost"] = bench_cost(args.plain, args.reference, args.n)
    if "accuracy" in args.only:
        report["accuracy"] = bench_accuracy(args.plain, args.reference)
    if "replay" in args.only:
        report["replay"] = bench_replay(args.plain, args.reference)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

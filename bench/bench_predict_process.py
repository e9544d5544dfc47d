"""Benchmark: whole-process ``twinspect predict`` with the shipped default model vs Ultralytics predict.

    python bench/bench_predict_process.py [--weights weights/defect-yolov8n] [--n 200] [--rounds 3]

Issue 15 item 1 counts what a user runs: a process started over a folder, model load, decoding
and output included. Same boards for every path (the first N validation boards of the imported
reference dataset, ``datasets/deeppcb-ref``), whole processes taking turns round after round,
medians compared:

- ours:          ``twinspect predict --json`` over a folder in the DeepPCB layout (each ID_test.jpg
                 beside its ID_temp.jpg): it reads both JPEGs, registers the board to its golden
                 (alignment on, as the engine does), composes the 3-plane input, infers (the card's
                 serving precision: INT8 for v2), maps the boxes back, prints one JSON line a board
- ours --no-align: the same, taking the DeepPCB pairs as registered (they are)
- ul-pt / ul-onnx: a Python process running ``YOLO(model.pt|model.onnx).predict(folder, stream=True)``
                 over the same boards' composed planes as the importer wrote them (PNG), printing one
                 JSON line a board. Ultralytics has no golden pairing, so it gets the planes ready-made:
                 it does less work than ours (no second JPEG, no alignment, no composing).

Accuracy beside speed: mAP50 of every path's JSON output against the same labels (the box
coordinates are in the board's pixels for ours and in the planes' pixels for Ultralytics: the
planes are the board in golden pixels, and DeepPCB pairs are registered, so both are the same).
Then each stage's share of ours' CPU work, timed one board at a time in this process:
start-up (a whole process over one board), decoding, alignment, composing, inference, output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspection.inference.models import model_input, weights_file  # noqa: E402
from inspection.ml.datasets.yolo import load_data_yaml  # noqa: E402
from inspection.ml.metrics import DetectionMetrics  # noqa: E402

SOURCE = REPO.parent / "shared" / "datasets" / "deeppcb-trainval"

UL_SCRIPT = """
import json, sys
from ultralytics import YOLO
model = YOLO(sys.argv[1], task="detect")
for r in model.predict(sys.argv[2], stream=True, conf=0.25, iou=0.45, imgsz=640, verbose=False):
    b = r.boxes
    print(json.dumps({"image": r.path, "boxes": [
        {"xyxy": [round(float(v), 1) for v in xyxy], "confidence": round(float(c), 4), "class_name": r.names[int(k)]}
        for xyxy, c, k in zip(b.xyxy.tolist(), b.conf.tolist(), b.cls.tolist())]}))
"""


def boards(data: Path, n: int) -> list[tuple[str, Path, Path, Path]]:
    """(id, test JPEG, template JPEG, composed planes) of the first ``n`` validation boards."""
    spec = load_data_yaml(data)
    src = {p.name.removesuffix("_test.jpg"): p for p in SOURCE.rglob("*_test.jpg")}
    out = []
    for planes in sorted(spec.images("val")):
        board_id = planes.stem.removesuffix("_test")
        test = src.get(board_id)
        if test is None:
            continue
        temp = test.with_name(f"{board_id}_temp.jpg")
        out.append((board_id, test, temp, planes))
        if len(out) == n:
            break
    if len(out) < n:
        raise SystemExit(f"only {len(out)} validation boards of {data} found under {SOURCE}")
    return out


def run(cmd: list[str]) -> tuple[float, list[dict]]:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def score(spec, chosen, rows):  # type: ignore[no-untyped-def]
    """mAP50 of one path's JSON rows (matched to boards by file stem) against the labels."""
    by_id = {Path(r["image"]).stem.removesuffix("_test"): r for r in rows}
    ids = {name: i for i, name in enumerate(spec.names)}
    metrics = DetectionMetrics(spec.names)
    for board_id, _, _, planes in chosen:
        boxes = by_id[board_id]["boxes"]
        xyxy = np.array([b["xyxy"] for b in boxes], np.float32).reshape(-1, 4)
        conf = np.array([b["confidence"] for b in boxes], np.float32)
        cls = np.array([ids[b["class_name"]] for b in boxes], np.int64)
        gt, gcls = spec.read_labels(planes, (640, 640))
        metrics.add(xyxy, conf, cls, gt, gcls)
    return metrics.result()["map50"]


def stage_shares(weights: Path, chosen, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Seconds per board of each stage of ours, one board at a time, one thread for inference."""
    from inspection.inference.models import load_detector
    from inspection.ml.images import read_image
    from inspection.ml.pairing import GoldenCache, to_board_pixels
    from inspection.reference.align import align
    from inspection.reference.planes import compose, gray

    det = load_detector(weights, conf=0.25, iou=0.45, backend="onnx", threads=1, precision="auto")
    t = dict.fromkeys(("decode", "align", "compose", "inference", "output"), 0.0)
    for _, test, temp, _ in chosen[:n]:
        t0 = time.perf_counter()
        board = gray(read_image(test))
        golden = GoldenCache().get(temp)
        t1 = time.perf_counter()
        h, w = board.shape
        result = align(board, np.array([0, 0, w, h], np.float32), golden)
        t2 = time.perf_counter()
        planes = compose(result.aligned if result.aligned is not None else board, golden.image)
        t3 = time.perf_counter()
        found = det.detect([planes])[0]
        t4 = time.perf_counter()
        found = to_board_pixels(found, result.homography, (w, h))
        json.dumps({"image": str(test), "boxes": [[float(v) for v in b] for b in found.xyxy]})
        t5 = time.perf_counter()
        for key, a, b in (
            ("decode", t0, t1),
            ("align", t1, t2),
            ("compose", t2, t3),
            ("inference", t3, t4),
            ("output", t4, t5),
        ):
            t[key] += b - a
    return {k: v / n for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "defect-yolov8n")
    ap.add_argument("--data", type=Path, default=REPO / "datasets" / "deeppcb-ref" / "data.yaml")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stages", type=int, default=60, help="boards timed stage by stage")
    args = ap.parse_args()
    weights = args.weights.resolve()
    if model_input(weights) != "reference":
        raise SystemExit(f"{weights}: not a reference model; bench/bench_predict.py covers plain models")
    spec = load_data_yaml(args.data)
    chosen = boards(args.data, args.n)
    pt, onnx = weights_file(weights, "pt"), weights_file(weights, "onnx")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        pairs, planes = Path(tmp, "pairs"), Path(tmp, "planes")
        pairs.mkdir()
        planes.mkdir()
        for _, test, temp, plane in chosen:
            os.symlink(test, pairs / test.name)
            os.symlink(temp, pairs / temp.name)
            os.symlink(plane, planes / plane.name)
        ours = [str(bin_dir / "twinspect"), "predict", "-w", str(weights), "--json", "--conf", "0.25"]
        paths = {
            "ours (align)": [*ours, str(pairs)],
            "ours (--no-align)": [*ours, "--no-align", str(pairs)],
            "Ultralytics pt predict": [sys.executable, "-c", UL_SCRIPT, str(pt), str(planes)],
            "Ultralytics onnx predict": [sys.executable, "-c", UL_SCRIPT, str(onnx), str(planes)],
        }
        times: dict[str, list[float]] = {k: [] for k in paths}
        rows: dict[str, list[dict]] = {}  # type: ignore[type-arg]
        for r in range(args.rounds):
            for label, cmd in paths.items():
                took, out = run(cmd)
                assert len(out) == args.n, f"{label}: {len(out)} rows for {args.n} boards"
                times[label].append(took)
                rows[label] = out
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
        one = [str(bin_dir / "twinspect"), "predict", "-w", str(weights), "--json", str(pairs / chosen[0][1].name)]
        startup = statistics.median(run(one)[0] for _ in range(3))

    host = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    print(f"\nmachine: {host}; {args.n} boards, weights {weights}")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'path':28s} {'s (median)':>10s} {'boards/s':>9s} {'mAP50':>7s}")
    for label, t in med.items():
        print(f"{label:28s} {t:10.2f} {args.n / t:9.1f} {score(spec, chosen, rows[label]):7.3f}")
    for label in ("ours (align)", "ours (--no-align)"):
        print(
            f"ratio {label} / Ultralytics: pt predict {med['Ultralytics pt predict'] / med[label]:.2f}x, "
            f"onnx predict {med['Ultralytics onnx predict'] / med[label]:.2f}x"
        )
    stages = stage_shares(weights, chosen, min(args.stages, args.n))
    total = startup + sum(stages.values()) * args.n
    print(f"\nours, CPU work by stage (one board at a time, 1 inference thread; {args.n} boards):")
    print(f"  {'start-up (process over 1 board)':32s} {startup:7.2f} s   {100 * startup / total:5.1f}%")
    for key, per in stages.items():
        print(f"  {key:32s} {1000 * per:7.2f} ms/board {100 * per * args.n / total:5.1f}%")


if __name__ == "__main__":
    main()

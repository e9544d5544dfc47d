"""Benchmark: our ONNX Runtime serving path vs Ultralytics predict, same boards, one run.

    python bench/bench_predict.py [--weights weights/defect-yolov8n] [--n 100] [--rounds 3]

Every path gets the same decoded images (BGR arrays), so the figures compare
preprocessing + inference + NMS, not JPEG decoding; the paths take turns, round after
round, and the medians are compared:

- ours:         inspection.inference.onnx_detector.OnnxDetector (letterbox + ORT + numpy NMS), one image
                at a time with ONNX Runtime's default threads, and as the engine and
                ``twinspect predict`` run it: images side by side on single-threaded runners
                (one per core, results in order), fp32 and INT8
- ul-pt:        ultralytics YOLO(model.pt).predict
- ul-onnx:      ultralytics YOLO(model.onnx).predict

It then times the ``twinspect predict --json`` command end to end over the same files
(process start and model load included). Accuracy is reported beside speed: the mAP50
of each backend on the same boards, so a faster path cannot hide a worse one.
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

from inspection.inference.models import concurrency, model_input, weights_file  # noqa: E402
from inspection.inference.onnx_detector import DEFAULT_PROVIDERS  # noqa: E402
from inspection.ml.datasets.yolo import load_data_yaml  # noqa: E402
from inspection.ml.images import read_image  # noqa: E402
from inspection.ml.metrics import DetectionMetrics  # noqa: E402


def timed(fn, images, warmup=5):  # type: ignore[no-untyped-def]
    for img in images[:warmup]:
        fn(img)
    out = []
    t0 = time.perf_counter()
    for img in images:
        out.append(fn(img))
    return time.perf_counter() - t0, out


def side_by_side(det, images, runners):  # type: ignore[no-untyped-def]
    """Seconds for all images through ``runners`` side by side (the engine's worker), answers in order."""
    from inspection.inference.worker import InferenceWorker, detect_in_order

    worker = InferenceWorker(det, "bench", max_batch=1, max_wait_ms=0, runners=runners).start()
    for _ in detect_in_order(worker, enumerate(images[:5])):
        pass
    t0 = time.perf_counter()
    out = [d for _, _, d in detect_in_order(worker, enumerate(images))]
    t = time.perf_counter() - t0
    worker.stop()
    return t, out


def score(spec, paths, images, preds):  # type: ignore[no-untyped-def]
    m = DetectionMetrics(spec.names)
    for p, img, (xyxy, conf, cls) in zip(paths, images, preds, strict=True):
        gt, gcls = spec.read_labels(p, (img.shape[1], img.shape[0]))
        m.add(xyxy, conf, cls, gt, gcls)
    return m.result()["map50"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "defect-yolov8n")
    ap.add_argument("--data", type=Path, default=REPO / "datasets" / "deeppcb" / "data.yaml")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--conf", type=float, default=0.001, help="low, so the accuracy check sees the whole curve")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over every path (medians)")
    args = ap.parse_args()

    spec = load_data_yaml(args.data)
    paths = spec.images(args.split)[: args.n]
    images = [read_image(p) for p in paths]
    onnx_path = weights_file(args.weights, "onnx", "fp32")  # INT8 is timed as its own path below
    pt_path = weights_file(args.weights, "torch")
    print(f"{len(images)} boards from {spec.split_dir(args.split)}, imgsz 640, batch 1, {os.cpu_count()} CPU cores")

    from inspection.inference.offline import ultralytics
    from inspection.inference.onnx_detector import OnnxDetector

    def ours_one(path: Path, threads: int = 0):  # type: ignore[no-untyped-def]
        det = OnnxDetector(path, conf=args.conf, iou=0.6, threads=threads)
        return lambda: timed(lambda im: det.detect([im])[0], images)

    def ul_one(path: Path):  # type: ignore[no-untyped-def]
        model = ul.YOLO(str(path), task="detect")

        def run():  # type: ignore[no-untyped-def]
            t, res = timed(lambda im: model.predict(im, imgsz=640, conf=args.conf, iou=0.6, verbose=False)[0], images)
            return t, [
                (r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy(), r.boxes.cls.cpu().numpy().astype(int))
                for r in res
            ]

        return run

    def detections(dets):  # type: ignore[no-untyped-def]
        return [(d.xyxy, d.confidence, d.class_id) for d in dets]

    ul = ultralytics()
    runners, threads = concurrency(DEFAULT_PROVIDERS, "onnx")
    int8_path = onnx_path.with_name(onnx_path.stem + ".int8.onnx")
    paths_run = {"ours fp32, one at a time": ours_one(onnx_path)}
    par = f"{runners} runners x {threads} thread"
    fp32_par = OnnxDetector(onnx_path, conf=args.conf, iou=0.6, threads=threads)
    paths_run[f"ours fp32, {par}"] = lambda: side_by_side(fp32_par, images, runners)
    if int8_path.is_file():
        paths_run["ours INT8, one at a time"] = ours_one(int8_path)
        int8_par = OnnxDetector(int8_path, conf=args.conf, iou=0.6, threads=threads)
        paths_run[f"ours INT8, {par}"] = lambda: side_by_side(int8_par, images, runners)
    paths_run["Ultralytics pt predict"] = ul_one(pt_path)
    paths_run["Ultralytics onnx predict"] = ul_one(onnx_path)

    times: dict[str, list[float]] = {k: [] for k in paths_run}
    preds: dict[str, list] = {}  # type: ignore[type-arg]
    for r in range(args.rounds):  # alternating rounds: a noisy host cannot favour one path
        for label, run in paths_run.items():
            t, out = run()
            times[label].append(t)
            preds.setdefault(label, out if label.startswith("Ultralytics") else detections(out))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {1000 * v[-1] / len(images):.1f}" for k, v in times.items()))

    n = len(images)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"median of {args.rounds} rounds:")
    print(f"{'path':34s} {'img/s':>8s} {'ms/img':>8s} {'mAP50':>7s}")
    for label, t in med.items():
        print(f"{label:34s} {n / t:8.1f} {1000 * t / n:8.1f} {score(spec, paths, images, preds[label]):7.3f}")
    for label, t in med.items():
        if label.startswith("ours"):
            print(
                f"ratio {label} / Ultralytics: pt predict {med['Ultralytics pt predict'] / t:.2f}x, "
                f"onnx predict {med['Ultralytics onnx predict'] / t:.2f}x"
            )

    if model_input(args.weights) == "reference":
        print(
            "twinspect predict end to end: skipped; a reference model's predict takes board + golden pairs and "
            "aligns them (bench/bench_reference.py and replay time that), not these composed planes"
        )
        return
    cli = [
        str(Path(sys.executable).parent / "twinspect"),
        "predict",
        "-w",
        str(args.weights),
        "--json",
        "--conf",
        "0.25",
        *map(str, paths),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cli, capture_output=True, text=True, check=True)
    t_cli = time.perf_counter() - t0
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == n
    print(
        f"twinspect predict --json, {n} files end to end (process start + model load + decode): "
        f"{t_cli:.2f} s = {n / t_cli:.1f} img/s"
    )


if __name__ == "__main__":
    main()

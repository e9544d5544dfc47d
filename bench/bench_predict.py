"""Benchmark: our ONNX Runtime serving path vs Ultralytics predict, same boards, one run.

    python bench/bench_predict.py [--weights weights/defect-yolov8n] [--boards DIR] [--n 100]

All three paths get the same decoded images (BGR arrays) one at a time, so the figures
compare preprocessing + inference + NMS, not JPEG decoding:

- ours:         inspection.onnx_detector.OnnxDetector (letterbox + ORT + numpy NMS)
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspection.datasets.yolo import load_data_yaml  # noqa: E402
from inspection.images import read_image  # noqa: E402
from inspection.metrics import DetectionMetrics  # noqa: E402
from inspection.models import weights_file  # noqa: E402


def timed(fn, images, warmup=5):  # type: ignore[no-untyped-def]
    for img in images[:warmup]:
        fn(img)
    out = []
    t0 = time.perf_counter()
    for img in images:
        out.append(fn(img))
    return time.perf_counter() - t0, out


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
    args = ap.parse_args()

    spec = load_data_yaml(args.data)
    paths = spec.images(args.split)[: args.n]
    images = [read_image(p) for p in paths]
    onnx_path = weights_file(args.weights, "onnx")
    pt_path = weights_file(args.weights, "torch")
    print(f"{len(images)} boards from {spec.split_dir(args.split)}, imgsz 640, batch 1, "
          f"{os.cpu_count()} CPU cores")

    from inspection.onnx_detector import OnnxDetector

    ours = OnnxDetector(onnx_path, conf=args.conf, iou=0.6)
    t_ours, det_ours = timed(lambda im: ours.detect([im])[0], images)
    int8_path = onnx_path.with_name(onnx_path.stem + ".int8.onnx")
    ours8 = OnnxDetector(int8_path, conf=args.conf, iou=0.6) if int8_path.is_file() else None
    t_ours8, det_ours8 = timed(lambda im: ours8.detect([im])[0], images) if ours8 else (0.0, [])

    from inspection.offline import ultralytics

    ul = ultralytics()
    results = {}
    for label, path in (("ul-pt", pt_path), ("ul-onnx", onnx_path)):
        model = ul.YOLO(str(path), task="detect")
        t, res = timed(lambda im, m=model: m.predict(im, imgsz=640, conf=args.conf, iou=0.6, verbose=False)[0],
                       images)
        preds = [(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy(), r.boxes.cls.cpu().numpy().astype(int))
                 for r in res]
        results[label] = (t, preds)

    n = len(images)
    map_ours = score(spec, paths, images, [(d.xyxy, d.confidence, d.class_id) for d in det_ours])
    rows = [("ours (ONNX Runtime fp32)", t_ours, map_ours)]
    if ours8:
        rows.append(("ours (ONNX Runtime INT8)", t_ours8,
                     score(spec, paths, images, [(d.xyxy, d.confidence, d.class_id) for d in det_ours8])))
    rows += [(f"Ultralytics {k[3:]} predict", t, score(spec, paths, images, p)) for k, (t, p) in results.items()]
    print(f"{'path':28s} {'img/s':>8s} {'ms/img':>8s} {'mAP50':>7s}")
    for label, t, m in rows:
        print(f"{label:28s} {n / t:8.1f} {1000 * t / n:8.1f} {m:7.3f}")
    print(f"ratio ours / Ultralytics pt predict:   {results['ul-pt'][0] / t_ours:.2f}x")
    print(f"ratio ours / Ultralytics onnx predict: {results['ul-onnx'][0] / t_ours:.2f}x")
    if ours8:
        print(f"ratio ours INT8 / Ultralytics pt predict:   {results['ul-pt'][0] / t_ours8:.2f}x")
        print(f"ratio ours INT8 / Ultralytics onnx predict: {results['ul-onnx'][0] / t_ours8:.2f}x")

    cli = [str(Path(sys.executable).parent / "twinspect"), "predict", "-w", str(args.weights), "--json",
           "--conf", "0.25", *map(str, paths)]
    t0 = time.perf_counter()
    proc = subprocess.run(cli, capture_output=True, text=True, check=True)
    t_cli = time.perf_counter() - t0
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == n
    print(f"twinspect predict --json, {n} files end to end (process start + model load + decode): "
          f"{t_cli:.2f} s = {n / t_cli:.1f} img/s")


if __name__ == "__main__":
    main()

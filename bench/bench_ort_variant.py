"""Can ``onnxruntime-gpu`` simply be the one runtime? Its CPU provider against the CPU wheel's, side by side.

    pip install --no-deps --target /tmp/ortgpu onnxruntime-gpu==1.31.1   # the lock's version, once
    python bench/bench_ort_variant.py --gpu-site /tmp/ortgpu [--rounds 3] [--n 20]

Each round runs the defect model's fp32 ONNX file on the CPU provider (one board per call, the same
real boards) in a fresh process with the CPU wheel, then in one with the GPU wheel first on the path;
medians of the alternating rounds, and each build's size on disk. Prints the host.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import glob, json, sys, time
import cv2, onnxruntime as ort
sys.path.insert(0, sys.argv[1])
from inspection.inference.onnx_detector import OnnxDetector
files = sorted(glob.glob(sys.argv[2] + "/PCBData/*/*/*_test.jpg"))[: int(sys.argv[3])]
imgs = [cv2.imread(f) for f in files]
det = OnnxDetector(sys.argv[4], providers=["CPUExecutionProvider"])
det.detect(imgs[:1])
t0 = time.perf_counter()
for im in imgs:
    det.detect([im])
ms = (time.perf_counter() - t0) * 1000 / len(imgs)
have = ort.get_available_providers()
print(json.dumps({"ms": ms, "version": ort.__version__, "file": ort.__file__, "providers": have}))
"""


def run(site: str | None, boards: Path, n: int, model: Path) -> dict[str, object]:
    env_path = [site] if site else []
    code = f"import sys; sys.path[:0] = {env_path!r}\n" + CHILD
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO), str(boards), str(n), str(model)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from line_bench import host

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu-site", required=True, help="a --target folder holding onnxruntime-gpu")
    ap.add_argument("--deeppcb", type=Path, default=REPO.parent / "shared" / "datasets" / "deeppcb-trainval")
    ap.add_argument("--model", type=Path, default=None, help="ONNX file (default: the shipped default's fp32 file)")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"[host] {host()}")
    cpu, gpu = [], []
    if args.model is None:
        from inspection.inference.cards import resolve_model_dir

        args.model = resolve_model_dir(REPO / "weights" / "defect-yolov8n") / "model.onnx"
    for r in range(args.rounds):
        a = run(None, args.deeppcb, args.n, args.model)
        b = run(args.gpu_site, args.deeppcb, args.n, args.model)
        cpu.append(float(a["ms"]))  # type: ignore[arg-type]
        gpu.append(float(b["ms"]))  # type: ignore[arg-type]
        print(f"  round {r + 1}: onnxruntime {cpu[-1]:.1f} ms, onnxruntime-gpu {gpu[-1]:.1f} ms ({b['version']})")
    assert "site-packages" in str(a["file"]) and args.gpu_site in str(b["file"]), (a["file"], b["file"])
    import onnxruntime

    cpu_size = size_mb(Path(onnxruntime.__file__).parent)
    gpu_size = size_mb(Path(args.gpu_site) / "onnxruntime")
    c, g = statistics.median(cpu), statistics.median(gpu)
    print(
        f"[ort variant] CPU provider, one board per call, median of {args.rounds}: onnxruntime {c:.1f} ms, "
        f"onnxruntime-gpu {g:.1f} ms (gpu / cpu {g / c:.2f}); installed {cpu_size:.0f} MB vs {gpu_size:.0f} MB; "
        f"the GPU build lists {b['providers']}"
    )


if __name__ == "__main__":
    main()

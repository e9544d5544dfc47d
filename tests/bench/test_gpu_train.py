"""bench/gpu_train.sh's CPU path end to end, so the GPU script cannot rot between GPU sessions.

Real DeepPCB boards are packed by bench/gpu_pack.py, then ``gpu_train.sh --cpu-smoke`` rebuilds
them with our importer (in shards), trains YOLOv8n one tiny epoch through the polars stand-in,
and writes OUT; ``gpu_pack.py collect`` turns OUT back into a registrable run folder. Every
Python process of the run has outside connections forbidden and cannot import what the GPU image
lacks (a sitecustomize on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.ml.datasets.deeppcb import import_deeppcb
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.training import augmentation
from tests.conftest import REPO, deeppcb_source

sys.path.insert(0, str(REPO / "bench"))
import gpu_pack  # noqa: E402

RUN = "defect-ref-yolov8n"

# Modules in this project's environment that the GPU image lacks (KINDS.md's package list): the
# run must not need them. polars may only resolve to the stand-in in bench/gpu_stubs.
GPU_IMAGE_LACKS = (
    "alembic",
    "annotated_types",
    "dotenv",
    "fastapi",
    "graphql",
    "greenlet",
    "httptools",
    "jsonschema_rs",
    "mako",
    "multipart",
    "nats",
    "onnxslim",
    "opentelemetry",
    "paho",
    "playwright",
    "psycopg",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pyrate_limiter",
    "python_multipart",
    "schemathesis",
    "sqlalchemy",
    "starlette",
    "thop",
    "typer",
    "typing_inspection",
    "ultralytics_platform",
    "uvicorn",
    "watchfiles",
    "websockets",
)

_GUARD = """
import importlib.abc
import importlib.machinery
import socket
import sys
_log = {log!r}
_lacks = set({lacks!r})


class _GpuImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _lacks:
            raise ImportError(f"{{name}} is not on the GPU image")
        if name == "polars":
            spec = importlib.machinery.PathFinder.find_spec(name)
            if spec is None or "gpu_stubs" not in str(spec.origin):
                raise ImportError("polars is not on the GPU image (only the stand-in is)")
        return None


sys.meta_path.insert(0, _GpuImage())

def _refuse(*args, **kwargs):
    with open(_log, "a") as fh:
        fh.write(repr(args[:2]) + "\\n")
    raise OSError("network access attempted")

_connect = socket.socket.connect

def _connect_local(self, addr):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(addr)
    return _connect(self, addr)

socket.getaddrinfo = _refuse
socket.create_connection = _refuse
socket.socket.connect = _connect_local
"""


def _pack(out: Path, boards: int, *extra: str) -> Path:
    subprocess.run(
        [
            sys.executable,
            "bench/gpu_pack.py",
            "build",
            "--src",
            str(deeppcb_source()),
            "--out",
            str(out),
            "--boards",
            str(boards),
            "--no-wheel",
            "--processes",
            "1",
            *extra,
        ],
        cwd=REPO,
        check=True,
        timeout=180,
        capture_output=True,
    )
    return out


def _gpu_train(root: Path, pack: Path, *args: str) -> subprocess.CompletedProcess[str]:
    guard = root / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(_GUARD.format(log=str(root / "net-attempts.txt"), lacks=GPU_IMAGE_LACKS))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TWINSPECT_GPU_SITE")}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(guard))
    return subprocess.run(
        ["bash", "bench/gpu_train.sh", str(root / "out"), "--pack", str(pack), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("gpu-train")
    pack = _pack(root / "pack", 6)
    # --split-mib 4: the 6 MB checkpoint comes back in two parts, as YOLOv8s's does on the GPU
    proc = _gpu_train(root, pack, "--cpu-smoke", "--work", str(root / "work"), "--split-mib", "4")
    return root, proc


def test_smoke_run_writes_the_outputs(smoke):
    root, proc = smoke
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not (root / "net-attempts.txt").exists(), (root / "net-attempts.txt").read_text()
    assert "polars 0.0.0+twinspect-stub" in proc.stdout  # the stand-in, as on the GPU image
    out = root / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["smoke"] is True and summary["out_within_tool_limits"] is True
    assert summary["dataset"]["splits"]["train"]["images"] > 0 and summary["dataset"]["splits"]["val"]["images"] > 0
    assert summary["dataset"]["pack"] == {
        "mode": "compact",
        "images": 12,
        "exact": summary["dataset"]["pack"]["exact"],
        "same_as_packer": 12,
    }
    model = summary["models"][RUN]
    assert model["status"] == "ok" and model["epochs_done"] == 1
    assert set(model["final"]) == {"mAP50", "mAP50-95", "precision", "recall"}
    assert all(0.0 <= v <= 1.0 for v in model["final"].values())
    assert [row["epoch"] for row in model["curve"]] == [1]
    assert model["init"] == "weights/defect-yolov8n-v3/model.pt"
    spec = load_data_yaml(REPO / "datasets" / "deeppcb-ref" / "data.yaml")
    assert spec.input == "reference"
    for key, value in augmentation(spec).items():  # the same plane-safe augmentation as twinspect train
        assert model["args"][key] == value
    parts = model["files"]["weights/best.pt"]["parts"]
    assert len(parts) == 2 and all((out / RUN / p).is_file() for p in parts)
    assert (out / RUN / "results.csv").is_file() and (out / "gpu_train.log").is_file()
    assert (out / "extras.tar.gz").is_file()
    assert sorted(summary["out_files"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_collect_gives_a_registrable_run_that_loads(smoke, tmp_path):
    root, proc = smoke
    assert proc.returncode == 0, proc.stdout[-4000:]
    res = subprocess.run(
        [sys.executable, "bench/gpu_pack.py", "collect", str(root / "out"), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / RUN
    best = run / "weights" / "best.pt"
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert hashlib.sha256(best.read_bytes()).hexdigest() == summary["models"][RUN]["files"]["weights/best.pt"]["sha256"]
    assert (run / "args.yaml").is_file() and "models register" in res.stdout
    from inspection.inference.offline import ultralytics
    from inspection.ml.training import read_history

    assert [row["epoch"] for row in read_history(run)] == [1.0]
    model = ultralytics().YOLO(str(best))
    assert tuple(model.names[i] for i in sorted(model.names)) == DEEPPCB_CLASSES
    assert "optimizer" not in model.ckpt or model.ckpt["optimizer"] is None
    assert model.ckpt["train_results"]["epoch"] == [1]  # written through the polars stand-in
    img = cv2.imread(str(next((root / "work" / "dataset" / "images" / "val").iterdir())))
    assert img.shape[2] == 3
    model.predict(img, imgsz=64, device="cpu", verbose=False)


def test_sharded_import_equals_one_import(smoke, tmp_path):
    root, proc = smoke
    assert proc.returncode == 0, proc.stdout[-4000:]
    pack = root / "pack" / gpu_pack.PACK_NAME
    gpu_pack.unpack(pack, tmp_path / "src")
    import_deeppcb(tmp_path / "src", tmp_path / "one", input_kind="reference", seed=0)
    sharded = root / "work" / "dataset"

    def tree(base: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(base)): p.read_bytes()
            for kind in ("images", "labels")
            for p in (base / kind).rglob("*")
            if p.is_file() and p.suffix != ".cache"
        }  # Ultralytics' own

    one, many = tree(tmp_path / "one"), tree(sharded)
    splits = json.loads((root / "out" / "summary.json").read_text())["dataset"]["splits"]
    assert one.keys() == many.keys() and len(one) == 2 * sum(s["images"] for s in splits.values())
    assert one == many
    assert load_data_yaml(sharded / "data.yaml").input == "reference"


def test_pack_rebuilds_the_boards(tmp_path):
    src = deeppcb_source()
    compact = _pack(tmp_path / "c", 3) / gpu_pack.PACK_NAME
    exact = _pack(tmp_path / "e", 3, "--exact") / gpu_pack.PACK_NAME
    assert compact.stat().st_size < exact.stat().st_size
    for pack, kind in ((compact, "compact"), (exact, "exact")):
        stats = gpu_pack.unpack(pack, tmp_path / kind, processes=2)
        assert stats["images"] == 6 and stats["same_as_packer"] == 6
        for rebuilt in sorted((tmp_path / kind / "PCBData").rglob("*.jpg")):
            original = cv2.imread(str(src / rebuilt.relative_to(tmp_path / kind)), cv2.IMREAD_GRAYSCALE)
            mine = cv2.imread(str(rebuilt), cv2.IMREAD_GRAYSCALE)  # what the importer reads
            equal = float(np.mean(mine == original))
            if kind == "exact" or rebuilt.name.endswith("_temp.jpg"):
                assert equal == 1.0, rebuilt
            else:  # tested boards: the JPEG chain regenerates nearly every pixel
                assert equal > 0.9, (rebuilt, equal)
                assert float(np.mean(np.abs(mine.astype(int) - original))) < 1.0
        labels = sorted((tmp_path / kind / "PCBData").rglob("*_not/*.txt"))
        assert len(labels) == 3
        for lbl in labels:
            assert lbl.read_text() == (src / lbl.relative_to(tmp_path / kind)).read_text()


def test_missing_pack_is_a_clear_error(tmp_path):
    proc = _gpu_train(tmp_path, tmp_path / "no-pack", "--cpu-smoke")
    assert proc.returncode == 2
    assert "no pack" in proc.stdout
    assert "no pack" in json.loads((tmp_path / "out" / "summary.json").read_text())["error"]

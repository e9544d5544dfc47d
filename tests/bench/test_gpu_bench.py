"""bench/gpu_bench.sh's CPU path end to end, so the GPU serving bench cannot rot between GPU sessions; and
the GPU variant of the environment that scripts/setup.sh installs on a box with an NVIDIA GPU.

The smoke run packs a few real boards (no wheels: this environment has them), then runs the whole
script on the CPU, tiny: both models through TorchDetector, ONNX Runtime beside them, the engine
over prerendered cameras. Every Python process of the run cannot import what the GPU image lacks,
except the packages the pack carries as wheels, and has outside connections refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_gpu_train import _GUARD, GPU_IMAGE_LACKS
from tests.conftest import REPO, deeppcb_source

sys.path.insert(0, str(REPO / "bench"))
import gpu_bench  # noqa: E402

CARRIED = {"pydantic", "pydantic_core", "annotated_types", "typing_inspection", "sqlalchemy", "alembic", "mako"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("gpu-bench")
    pack = root / "pack"
    subprocess.run(
        [sys.executable, "bench/gpu_bench.py", "pack", "--out", str(pack), "--boards", "2", "--no-wheels"]
        + ["--src", str(deeppcb_source())],
        cwd=REPO,
        check=True,
        timeout=120,
        capture_output=True,
    )
    guard = root / "guard"
    guard.mkdir()
    lacks = tuple(m for m in GPU_IMAGE_LACKS if m not in CARRIED)
    (guard / "sitecustomize.py").write_text(_GUARD.format(log=str(root / "net-attempts.txt"), lacks=lacks))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TWINSPECT_GPU_SITE")}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(guard))
    proc = subprocess.run(
        ["bash", "bench/gpu_bench.sh", str(root / "out"), "--pack", str(pack), "--cpu-smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    return root, proc


@pytest.mark.slow
def test_smoke_run_measures_both_models_and_the_engine(smoke: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, proc = smoke
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not (root / "net-attempts.txt").exists()
    result = json.loads((root / "out" / "gpu_bench.json").read_text())
    assert result["smoke"] is True and result["env"]["device"] == "cpu"
    for model in ("defect", "part"):
        rows = result[model]["fp32"]["rows"]
        assert [r["batch"] for r in rows] == [1, 2] and all(r["images_per_s"] > 0 for r in rows)
        assert result[model]["fp32"]["provider"] == "torch:cpu:fp32"
    assert result["defect_onnx_cpu"]["provider"] == "CPUExecutionProvider"
    engine = result["engine"]
    assert engine["mode"] == "fp32" and engine["cameras"] == 1 and engine["frames_in"] > 0
    assert engine["seen"] >= 1 and engine["inspected"] + engine["uninspected"] <= engine["seen"]
    assert (root / "out" / "gpu_bench.log").read_text().count("[done]") == 1


def test_best_mode_is_the_fastest_at_batch_8() -> None:
    rows = lambda rate: {"rows": [{"batch": 8, "images_per_s": rate}]}  # noqa: E731
    assert gpu_bench.best_mode({"fp32": rows(10.0), "fp16": rows(30.0), "fp16+graphs": {"error": "x"}}) == "fp16"
    assert gpu_bench.best_mode({"fp32": {"skipped": "budget"}}) == "fp32"


@pytest.mark.parametrize(("gpu", "runtime"), [("1", "onnxruntime-gpu=="), ("0", "onnxruntime==")])
def test_setup_installs_onnxruntime_gpu_only_where_there_is_a_gpu(gpu: str, runtime: str) -> None:
    out = subprocess.run(
        ["bash", "scripts/setup.sh", "--print-lock"],
        cwd=REPO,
        env={**os.environ, "TWINSPECT_GPU": gpu},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    lock = (REPO / "requirements.lock").read_text()
    pinned = next(row for row in lock.splitlines() if row.startswith("onnxruntime=="))
    assert f"{runtime}{pinned.split('==')[1]}" in out.splitlines()
    others = [r for r in out.splitlines() if not r.startswith("onnxruntime")]
    assert others == [r for r in lock.splitlines() if not r.startswith("onnxruntime")]  # nothing else changes

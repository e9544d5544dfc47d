"""ruff (lint and format) and mypy stay clean over the product packages."""

from __future__ import annotations

import subprocess
import sys

from tests.code_checks import PACKAGES, mypy_result
from tests.conftest import REPO


def test_ruff_is_clean():
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PACKAGES, "tests", "bench", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_applied():
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *PACKAGES, "tests", "bench", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean():
    code, output = mypy_result()  # started beside the run when the session began (tests/code_checks.py)
    assert code == 0, output


def test_serving_path_does_not_import_torch():
    code = (
        "import sys; import api.cli.main, inspection.inference.models, inspection.inference.onnx_detector, "
        "inspection.ml.evaluate; "
        "print('torch' in sys.modules, 'ultralytics' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False False"


def test_predict_starts_without_the_web_app_or_the_database():
    """`twinspect predict` builds only its own command: start-up is part of every run (issue 15)."""
    code = (
        "import sys; from api.cli.main import build_app, named_command; "
        "build_app(named_command(['predict', '--weights', 'w', 'x.jpg'])); "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'alembic', 'pydantic_settings', 'api.settings') "
        "if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"

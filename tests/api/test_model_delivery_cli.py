"""twinspect models promote / rollback / history on a data dir: refusals are one error line and exit 2."""

from __future__ import annotations

from tests.api.test_model_delivery import add_version
from tests.cli import run_cli


def errors(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("twinspect: error:")]


def test_promote_rollback_and_history_from_the_command_line(tmp_path):
    registry = tmp_path / "weights"
    for v in (1, 2):
        add_version(registry, v)
    common = ["--data-dir", str(tmp_path / "data"), "--weights-dir", str(registry), "--line", "line-1"]
    r = run_cli("models", "rollback", *common)
    assert r.returncode == 2 and len(errors(r.stderr)) == 1 and "no previous defect model" in r.stderr
    assert run_cli("models", "activate", "defect-yolov8n:1", *common).returncode == 0
    promote = ["models", "promote", "defect-yolov8n:2", "--data", str(tmp_path / "none.yaml"), *common]
    r = run_cli(*promote)
    assert r.returncode == 2 and len(errors(r.stderr)) == 1 and "the gate refused it: val split" in r.stderr
    assert "metric" in r.stdout and "active" in r.stdout and "candidate" in r.stdout and "FAILED" in r.stdout
    r = run_cli(*promote, "--force", "--reason", "known good on the new product")
    assert r.returncode == 0, r.stderr
    assert "promoted (FORCED past the gate)" in r.stdout
    r = run_cli("models", "history", *common)
    assert "activated      defect-yolov8n:2 (from defect-yolov8n:1)" in r.stdout and "FORCED" in r.stdout
    r = run_cli("models", "rollback", "--reason", "too many false rejects", *common)
    assert r.returncode == 0 and "defect-yolov8n:1 active again (was defect-yolov8n:2)" in r.stdout

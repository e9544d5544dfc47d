"""twinspect.yaml: defaults, environment overrides, and every bad field named by its dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import ConfigError, Settings, load_settings
from tests.cli import run_cli


def test_defaults_have_descriptions():
    for name, field in Settings.model_fields.items():
        assert field.description, name
    s = load_settings(None)
    assert s.models.defect.conf == 0.25 and s.runs_dir == s.data_dir / "runs"


def test_environment_overrides_file(tmp_path, monkeypatch):
    cfg = tmp_path / "twinspect.yaml"
    cfg.write_text("data_dir: /srv/a\nmodels:\n  defect:\n    weights: weights/x\n    conf: 0.3\n")
    monkeypatch.setenv("TWINSPECT_MODELS__DEFECT__CONF", "0.5")
    s = load_settings(cfg)
    assert s.models.defect.conf == 0.5
    assert s.models.defect.weights == Path("weights/x")
    assert s.data_dir == Path("/srv/a")


def test_every_bad_field_is_reported(tmp_path):
    cfg = tmp_path / "twinspect.yaml"
    cfg.write_text("log_level: LOUD\nsurprise: 1\nmodels:\n  defect:\n    weights: w\n    conf: 2.0\n    bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = str(err.value)
    for path in ("log_level", "surprise", "models.defect.conf", "models.defect.bogus"):
        assert f"{cfg}: {path}:" in text
    assert len(text.splitlines()) == 4


def test_config_check_cli(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("log_level: DEBUG\n")
    r = run_cli("config", "check", str(good))
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  part:\n    iou: 0\n    threads: -1\n")
    r = run_cli("config", "check", str(bad))
    assert r.returncode == 2
    assert "models.part.iou" in r.stderr and "models.part.threads" in r.stderr


def test_config_check_not_yaml_and_missing(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    r = run_cli("config", "check", str(broken))
    assert r.returncode == 2 and "not valid YAML at line" in r.stderr
    r = run_cli("config", "check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "config file not found" in r.stderr


def test_one_nested_field_can_be_overridden_from_the_environment(monkeypatch):
    from api.settings import SHIPPED_WEIGHTS, load_settings

    monkeypatch.setenv("TWINSPECT_MODELS__DEFECT__CONF", "0.3")
    monkeypatch.setenv("TWINSPECT_MODELS__PART__THREADS", "1")
    s = load_settings(None)
    assert s.models.defect.conf == 0.3 and s.models.defect.weights == SHIPPED_WEIGHTS / "defect-yolov8n"
    assert s.models.part.threads == 1 and s.models.part.conf == 0.4

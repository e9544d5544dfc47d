"""The one settings model: ``twinspect.yaml`` plus ``TWINSPECT_*`` environment overrides.

Built once in ``main()`` (or a CLI command) and passed down; nothing reads the
environment at import time or in a loop. Environment variables override the file:
``TWINSPECT_DATA_DIR=/srv/tw`` or, for nested fields, ``TWINSPECT_MODELS__DEFECT__CONF=0.3``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from api.delivery_settings import DeliverySettings
from camera.config import CameraConfig
from floor.config import BeltSettings, GateSettings, OpcUaSettings, SparkplugSettings, SpcSettings
from inspection.core.errors import InspectionError
from inspection.inference.nms import DEFECT_MERGE_IOU
from inspection.pipeline.parts import PartsConfig
from inspection.pipeline.rules import RulesConfig
from inspection.reference.recipes import NAME_RE as RECIPE_NAME_RE
from sync.config import SyncSettings

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


class ConfigError(InspectionError):
    """The config file is missing, not YAML, or has bad fields (one line per field)."""


def default_data_dir() -> Path:
    """Per-user data folder: ``$XDG_DATA_HOME/twinspect`` or ``~/.local/share/twinspect``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "twinspect"


class ModelSettings(BaseModel):
    """One detector: its weights and how its boxes are filtered."""

    model_config = ConfigDict(extra="forbid")

    weights: Path = Field(description="Model folder in weights/ (with card.json) or an .onnx/.pt file.")
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum confidence of a kept box.")
    iou: float = Field(0.45, gt=0.0, le=1.0, description="IoU above which NMS suppresses the lower box.")
    merge_iou: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="After the class-aware NMS, a box overlapping a higher-scored box of another class by "
        "more than this is dropped: one place, one label (1.0: off).",
    )
    backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="onnx: ONNX Runtime with our letterbox and NMS (the serving path); "
        "torch: PyTorch on the model's .pt, batched, fp16 with letterbox and NMS on the GPU "
        "(for a GPU box whose ONNX Runtime has no GPU provider; imports torch).",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="PyTorch device of the torch backend: auto (the first CUDA device, else the CPU), cpu, cuda:N.",
    )
    precision: Literal["auto", "fp32", "int8"] = Field(
        "auto",
        description="ONNX model to serve: auto (the card's choice: int8 where twinspect eval put it within "
        "0.5 points of fp32 at registration), fp32, or int8 (ONNX Runtime static quantization, faster on CPU; "
        "its accuracy is on the model card).",
    )
    runners: int = Field(
        0,
        ge=0,
        le=64,
        description="Images of this model run side by side (each camera keeps "
        "that many frames in flight, results in order); 0 = automatic: one per CPU core (at most "
        "4) on the CPU provider, 1 on a GPU.",
    )
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="ONNX Runtime intra-op threads of each runner; 0 = automatic: "
        "the cores shared out between the runners on the CPU provider, ONNX Runtime's default on "
        "a GPU.",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime providers in order of preference; the first available is used.",
    )


class DefectModelSettings(ModelSettings):
    """The defect model; every field has a default, so one field can be overridden alone."""

    weights: Path = Field(
        SHIPPED_WEIGHTS / "defect-yolov8n",
        description="Model folder in weights/ (with card.json) or an .onnx/.pt file.",
    )
    merge_iou: float = Field(
        DEFECT_MERGE_IOU,
        gt=0.0,
        le=1.0,
        description="After the class-aware NMS, a box overlapping a higher-scored box of another class by "
        "more than this is dropped: one defect, one label (1.0: off; twinspect eval scores F this way).",
    )


class PartModelSettings(ModelSettings):
    """The part model; every field has a default, so one field can be overridden alone."""

    weights: Path = Field(
        SHIPPED_WEIGHTS / "part-yolov8n", description="Model folder in weights/ (with card.json) or an .onnx/.pt file."
    )
    conf: float = Field(0.4, ge=0.0, le=1.0, description="Minimum confidence of a kept box.")


class ModelsSettings(BaseModel):
    """The two models of an inspection line."""

    model_config = ConfigDict(extra="forbid")

    defect: DefectModelSettings = Field(
        default_factory=DefectModelSettings, description="Defect model run on each board crop (DeepPCB classes)."
    )
    part: PartModelSettings = Field(
        default_factory=PartModelSettings, description="Part model that finds whole boards in the overview frame."
    )

    def of(self, role: str) -> ModelSettings:
        """The model of ``role`` ('defect' or 'part')."""
        return self.defect if role == "defect" else self.part


class LineSettings(BaseModel):
    """One inspection line: its cameras, how parts are tracked and triggered, and the verdict rules."""

    model_config = ConfigDict(extra="forbid")

    line_id: str = Field(
        "line-1",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Line id (letters, digits, - and _: it is an MQTT topic level and a NATS token).",
    )
    cameras: list[CameraConfig] = Field(default_factory=list, description="Cameras watching the line.")
    parts: PartsConfig = Field(default_factory=PartsConfig, description="Tracking and trigger settings.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="How defect boxes become a verdict.")
    max_batch: int = Field(8, ge=1, le=64, description="Largest inference batch across cameras.")
    max_wait_ms: float = Field(4.0, ge=0, le=1000, description="Longest wait to fill a batch, in ms.")
    camera_tokens: dict[str, str] = Field(
        default_factory=dict, description="Bearer token each push camera must send, by camera id."
    )
    recipe: str | None = Field(
        None,
        pattern=RECIPE_NAME_RE.pattern,
        description="Recipe (product) whose golden image every board of this line is compared with; unset: the "
        "camera names each part's product (the simulated DeepPCB line) or the defect model needs no golden.",
    )


class StorageSettings(BaseModel):
    """Where inspections are stored."""

    model_config = ConfigDict(extra="forbid")

    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite (WAL) in the data dir.")


class ServerSettings(BaseModel):
    """The HTTP server of the API and web UI."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")


class MetricsSettings(BaseModel):
    """Prometheus metrics at /metrics."""

    model_config = ConfigDict(extra="forbid")

    public: bool = Field(
        False,
        description="Serve /metrics without a token, for a scraper inside a trusted network. "
        "Default: any twinspect token, sent as Authorization: Bearer (Prometheus: authorization.credentials_file).",
    )


class Settings(BaseSettings):
    """twinspect configuration (``twinspect.yaml``)."""

    model_config = SettingsConfigDict(env_prefix="TWINSPECT_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where runs, the database, evidence images and the event log live.",
    )
    log_level: str = Field(
        "INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Logging level: DEBUG, INFO, WARNING or ERROR."
    )
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="The part and defect models.")
    line: LineSettings = Field(default_factory=LineSettings, description="The inspection line.")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="Storage of inspections.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings, description="Prometheus metrics (/metrics).")
    sync: SyncSettings = Field(default_factory=SyncSettings, description="Event log, feeds, MQTT, NATS, twin.")
    opcua: OpcUaSettings = Field(default_factory=OpcUaSettings, description="OPC UA server (OPC 40100 model).")
    gate: GateSettings = Field(default_factory=GateSettings, description="Reject gate decisions with a deadline.")
    sparkplug: SparkplugSettings = Field(default_factory=SparkplugSettings, description="Sparkplug B edge node.")
    spc: SpcSettings = Field(default_factory=SpcSettings, description="Statistical process control (p/u-charts).")
    belt: BeltSettings = Field(default_factory=BeltSettings, description="The line model the twin expects.")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Model delivery: promotion gate, shadow runs, watch."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return env_settings, init_settings

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def goldens_dir(self) -> Path:
        """The recipes' golden images, content-addressed (``ab/cd/<sha256>.<ext>``)."""
        return self.data_dir / "goldens"

    @property
    def database_url(self) -> str:
        return self.storage.database_url or f"sqlite:///{self.data_dir / 'twinspect.db'}"


def env_override(loc: tuple[Any, ...]) -> str | None:
    """The TWINSPECT_* variable that set the field at ``loc`` (or a section above it), if one is set."""
    names = {k.upper(): k for k in os.environ if k.upper().startswith("TWINSPECT_")}
    for depth in range(len(loc), 0, -1):
        name = "TWINSPECT_" + "__".join(str(p) for p in loc[:depth]).upper()
        if name in names:
            return names[name]
    return None


def format_errors(exc: ValidationError, source: str) -> list[str]:
    """One line per bad field: ``FILE: dotted.path: message``, or ``environment VAR: ...`` when a variable set it."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        var = env_override(tuple(err["loc"]))
        where = f"environment {var}" if var else source
        lines.append(f"{where}: {path}: {err['msg']}")
    return lines


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of settings")
    return data


def load_settings(path: Path | None = None) -> Settings:
    """Settings from a YAML file (optional) and the environment; ConfigError lists every bad field."""
    data = read_yaml(path) if path is not None else {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = format_errors(exc, str(path) if path else "environment")
        raise ConfigError("\n".join(lines)) from exc

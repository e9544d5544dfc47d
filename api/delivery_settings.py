"""Settings of model delivery: the promotion gate, shadow runs, the watch after a promotion."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inspection.ml.gate import GateConfig
from inspection.pipeline.shadow import ShadowConfig


class PromotionGateSettings(BaseModel):
    """What a candidate must reach to be promoted (margins are absolute: 0.01 = one point)."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[str] = Field(
        ["deeppcb_fscore", "map50"],
        description="Validation-split metrics the candidate must reach: at least the active model's minus margin.",
    )
    margin: float = Field(0.0, ge=0, le=1, description="How far below the active model a metric may be.")
    class_recall_floor: float = Field(0.5, ge=0, le=1, description="Each class's recall of the candidate, at least.")
    false_reject_margin: float = Field(
        0.0, ge=0, le=1, description="Reviewed boards: false-reject rate at most the active model's plus this."
    )
    miss_margin: float = Field(
        0.0, ge=0, le=1, description="Reviewed boards: miss rate at most the active's plus this."
    )
    parity_images: int = Field(4, ge=0, le=256, description="Sample boards of the export parity check (0: skip).")
    parity_box_px: float = Field(2.0, gt=0, description="Largest box difference ONNX vs PyTorch, pixels.")
    parity_conf: float = Field(0.05, gt=0, le=1, description="Largest confidence difference ONNX vs PyTorch.")
    data: Path | None = Field(None, description="Data YAML of the gate set (default: the candidate's training data).")
    split: str = Field("val", description="Split of the gate set the candidate was not trained on.")

    def config(self) -> GateConfig:
        return GateConfig(
            metrics=tuple(self.metrics),
            margin=self.margin,
            class_recall_floor=self.class_recall_floor,
            false_reject_margin=self.false_reject_margin,
            miss_margin=self.miss_margin,
            parity_images=self.parity_images,
            parity_box_px=self.parity_box_px,
            parity_conf=self.parity_conf,
            split=self.split,
        )


class ShadowSettings(BaseModel):
    """A shadow model beside the active one."""

    model_config = ConfigDict(extra="forbid")

    sample: float = Field(1.0, gt=0, le=1, description="Share of boards the shadow sees (0.25: every 4th).")
    max_queue: int = Field(16, ge=1, le=4096, description="Boards waiting for the shadow; beyond: dropped, counted.")

    def config(self) -> ShadowConfig:
        return ShadowConfig(sample=self.sample, max_queue=self.max_queue)


class WatchSettings(BaseModel):
    """The watch after a promotion: rates compared with the previous model's over as many boards."""

    model_config = ConfigDict(extra="forbid")

    boards: int = Field(200, ge=10, description="Boards on each side of the comparison.")
    p_value: float = Field(
        0.01, gt=0, lt=1, description="Two-proportion z-test: a p-value under this raises model.alert."
    )


class DeliverySettings(BaseModel):
    """Model delivery: the promotion gate, shadow runs, the watch after a promotion."""

    model_config = ConfigDict(extra="forbid")

    gate: PromotionGateSettings = Field(default_factory=PromotionGateSettings, description="The promotion gate.")
    shadow: ShadowSettings = Field(default_factory=ShadowSettings, description="Shadow runs.")
    watch: WatchSettings = Field(default_factory=WatchSettings, description="The watch after a promotion.")

"""Request and response models of model delivery (/api/v1/models/lines/...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(:|-v)[0-9]{1,9}$"


class VersionOut(BaseModel):
    name: str
    version: int
    role: str
    state: str = Field(description="registered, shadow, active or retired on this line.")
    input: str = Field(description="image, or reference (board + golden).")
    classes: list[str]
    created_at: str | None
    val_metrics: dict[str, float | None]


class ChangeOut(BaseModel):
    id: int
    line_id: str
    role: str
    action: str
    model: str
    previous: str | None
    who: str
    why: str
    at: str
    forced: bool
    announced: bool


class ModelLineOut(BaseModel):
    line_id: str
    active: str | None
    shadow: str | None
    role: str = Field("defect", description="Which of the line's models: defect or part.")
    served: str | None = Field(description="The model of this role the running engine serves right now.")
    versions: list[VersionOut]
    history: list[ChangeOut]
    shadow_run: dict[str, Any] | None = Field(description="The running shadow's counts: run, dropped, stored.")
    watch: dict[str, Any] | None = Field(
        None, description="The watch after the last promotion: boards so far, and the rates that changed (alerts)."
    )


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_REF, description="The candidate, NAME:VERSION.")
    reason: str = Field("promotion", min_length=1, max_length=2000)
    force: bool = Field(False, description="Promote past a failed gate: admin only, audited as forced.")


class ShadowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(pattern=MODEL_REF, description="NAME:VERSION to run in shadow; null stops it.")
    reason: str = Field("shadow run", min_length=1, max_length=2000)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("rollback", min_length=1, max_length=2000)
    role: Literal["defect", "part"] = Field("defect", description="Which of the line's models rolls back.")


class ChangeResultOut(BaseModel):
    change: ChangeOut | None
    gate: dict[str, Any] | None = None

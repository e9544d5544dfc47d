"""Trigger geometry (a line segment or a polygon zone) and the per-track crossing state.

A trigger splits the frame into *before*, *band* and *after*: the band is ±``hysteresis_px``
around the line (or the zone's border). A track *crosses* when its reference point is seen
clearly before and later clearly after, in the configured direction; positions inside the
band never change anything. So jitter at the line never fires, a track fires at most
once, and a board moving the wrong way (after -> before) never fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Anchor = Literal["center", "left", "right", "top", "bottom"]
_ANCHOR_FRACTION: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
}
_DIRECTION_VECTOR: dict[str, tuple[float, float]] = {
    "left_to_right": (1.0, 0.0),
    "right_to_left": (-1.0, 0.0),
    "top_to_bottom": (0.0, 1.0),
    "bottom_to_top": (0.0, -1.0),
}


class Side(IntEnum):
    """Where a reference point lies relative to a trigger."""

    BEFORE = -1
    BAND = 0
    AFTER = 1


class LineTriggerConfig(BaseModel):
    """A trigger line segment in frame pixels, crossed in one direction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["line"] = Field("line", description="Trigger kind: a line segment.")
    start: tuple[float, float] = Field(description="First end of the segment (x, y) in frame pixels.")
    end: tuple[float, float] = Field(description="Second end of the segment (x, y) in frame pixels.")
    direction: Literal["left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top"] = Field(
        "left_to_right", description="Direction of travel that counts; the opposite never fires."
    )
    hysteresis_px: float = Field(
        10.0,
        ge=0,
        description="Half-width of the dead band around the line: the "
        "reference point must go from beyond -N px to beyond +N px.",
    )
    anchor: Anchor = Field("center", description="Reference point of a board box that must cross.")

    @model_validator(mode="after")
    def _check_geometry(self) -> LineTriggerConfig:
        seg = np.subtract(self.end, self.start)
        length = float(np.hypot(*seg))
        if length == 0:
            raise ValueError("trigger line start and end are the same point")
        normal = np.array([-seg[1], seg[0]]) / length
        if abs(float(normal @ np.array(_DIRECTION_VECTOR[self.direction]))) < 0.2:
            raise ValueError(f"direction {self.direction} runs (almost) along the trigger line")
        return self


class ZoneTriggerConfig(BaseModel):
    """A polygon zone in frame pixels; entering (or leaving) it counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["zone"] = Field("zone", description="Trigger kind: a polygon zone.")
    polygon: tuple[tuple[float, float], ...] = Field(
        min_length=3, description="Zone corners (x, y) in frame pixels, in order."
    )
    direction: Literal["enter", "exit"] = Field("enter", description="Whether entering or leaving the zone counts.")
    hysteresis_px: float = Field(10.0, ge=0, description="Half-width of the dead band around the zone border.")
    anchor: Anchor = Field("center", description="Reference point of a board box that must cross.")


TriggerConfig = Annotated[LineTriggerConfig | ZoneTriggerConfig, Field(discriminator="type")]


class Trigger(Protocol):
    """Trigger geometry: which side of it each reference point lies on."""

    anchor: str

    def side(self, points: np.ndarray) -> np.ndarray: ...


def anchor_points(xyxy: np.ndarray, anchor: str) -> np.ndarray:
    """(N, 2) reference points of (N, 4) boxes."""
    fx, fy = _ANCHOR_FRACTION[anchor]
    x = xyxy[:, 0] + fx * (xyxy[:, 2] - xyxy[:, 0])
    y = xyxy[:, 1] + fy * (xyxy[:, 3] - xyxy[:, 1])
    return np.stack([x, y], axis=1).astype(np.float64)


@dataclass(frozen=True, eq=False)
class LineTrigger:
    """A segment; distance is signed along the travel direction; beyond the segment's ends is band."""

    start: np.ndarray  # (2,)
    unit: np.ndarray  # (2,) along the segment
    normal: np.ndarray  # (2,) unit normal pointing to the after side
    length: float
    hysteresis_px: float
    anchor: str

    @classmethod
    def from_config(cls, config: LineTriggerConfig) -> LineTrigger:
        start, end = np.asarray(config.start, np.float64), np.asarray(config.end, np.float64)
        length = float(np.hypot(*(end - start)))
        unit = (end - start) / length
        normal = np.array([-unit[1], unit[0]])
        if normal @ np.asarray(_DIRECTION_VECTOR[config.direction]) < 0:
            normal = -normal
        return cls(start, unit, normal, length, config.hysteresis_px, config.anchor)

    def side(self, points: np.ndarray) -> np.ndarray:
        """(N,) int8 ``Side`` values of (N, 2) points."""
        rel = points - self.start
        dist = rel @ self.normal
        along = rel @ self.unit
        within = (along >= -self.hysteresis_px) & (along <= self.length + self.hysteresis_px)
        out = np.zeros(len(points), np.int8)
        out[within & (dist < -self.hysteresis_px)] = Side.BEFORE
        out[within & (dist > self.hysteresis_px)] = Side.AFTER
        return out


@dataclass(frozen=True, eq=False)
class ZoneTrigger:
    """A polygon; before/after are outside/inside (swapped for ``exit``), the border ± N px is band."""

    polygon: np.ndarray  # (K, 2)
    enter: bool
    hysteresis_px: float
    anchor: str

    @classmethod
    def from_config(cls, config: ZoneTriggerConfig) -> ZoneTrigger:
        return cls(
            np.asarray(config.polygon, np.float64), config.direction == "enter", config.hysteresis_px, config.anchor
        )

    def side(self, points: np.ndarray) -> np.ndarray:
        """(N,) int8 ``Side`` values of (N, 2) points."""
        a = self.polygon
        b = np.roll(a, -1, axis=0)
        p = points[:, None, :]
        ab = b - a
        s = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clip(1e-12), 0, 1)
        border = np.hypot(*np.moveaxis(p - (a + s[..., None] * ab), -1, 0)).min(axis=1)
        x, y = points[:, 0:1], points[:, 1:2]
        straddles = (a[:, 1] > y) != (b[:, 1] > y)
        x_cross = a[:, 0] + (y - a[:, 1]) * ab[:, 0] / np.where(ab[:, 1] == 0, 1e-12, ab[:, 1])
        inside = (straddles & (x < x_cross)).sum(axis=1) % 2 == 1
        out = np.zeros(len(points), np.int8)
        clear = border > self.hysteresis_px
        out[clear & (inside == self.enter)] = Side.AFTER
        out[clear & (inside != self.enter)] = Side.BEFORE
        return out


def build_trigger(config: LineTriggerConfig | ZoneTriggerConfig) -> LineTrigger | ZoneTrigger:
    """The trigger geometry described by ``config``."""
    if isinstance(config, LineTriggerConfig):
        return LineTrigger.from_config(config)
    return ZoneTrigger.from_config(config)


@dataclass(frozen=True)
class CrossingState:
    """Where one track stands with respect to the trigger; ``step`` returns the next state."""

    armed: bool = False  # seen clearly before the trigger
    crossed: bool = False  # went from clearly before to clearly after (sticky)

    def step(self, side: int) -> CrossingState:
        if self.crossed:
            return self
        if side == Side.BEFORE:
            return CrossingState(armed=True)
        if side == Side.AFTER and self.armed:
            return CrossingState(armed=True, crossed=True)
        return self

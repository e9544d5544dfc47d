"""What the API needs from the rest of twinspect, passed to ``create_app``.

The app never builds the engine or reads config itself; ``main()`` (the CLI) builds a
``Services`` and hands it over, and tests hand over their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from api.model_desk import ModelDesk
    from api.tokens import TokenStore
    from floor.service import FloorService
    from inspection.pipeline.telemetry import Fault
    from inspection.reference.goldens import GoldenFiles
    from inspection.reference.recipe_store import RecipeStore
    from inspection.store import InspectionStore
    from sync.service import SyncService


class EngineView(Protocol):
    """The running inspection engine as the API sees it."""

    def status(self) -> dict[str, Any]:
        """Line state, counters, coverage, cameras with their state, recent verdicts."""

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        """The latest annotated frame of a camera, JPEG-encoded, or None before the first frame."""

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        """The evidence crop (with boxes) of a recent verdict, or None if unknown."""

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        """Feed a pushed image to a push camera; returns its frame sequence number."""

    def camera_token_ok(self, camera_id: str, token: str | None) -> bool:
        """Whether ``token`` may push frames for ``camera_id``."""

    def push_limit(self, camera_id: str) -> int | None:
        """The largest body push camera ``camera_id`` accepts (its ``max_bytes``); None: no such push camera."""

    def metrics(self) -> bytes:
        """Prometheus text format."""

    def faults(self) -> list[Fault]:
        """What fails right now (storage refusing writes): /readyz answers 503 while there is any."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def boards_in_view(self) -> dict[str, int]:
        """Boards each camera tracks right now."""

    def set_line_recipe(self, recipe: str | None) -> None:
        """Compare every board of the line with this recipe's golden from now on (None: the camera names it)."""


@dataclass
class Services:
    engine: EngineView | None  # None on a hub: it serves feeds and twins, it runs no cameras
    sync: SyncService | None = None
    tokens: TokenStore | None = None  # required by create_app: every endpoint checks its caller's role
    max_push_bytes: int = 8 * 1024 * 1024
    heartbeat_s: float = 15.0
    max_page: int = 1000
    inspections: InspectionStore | None = None  # stored inspections and their evidence (QA review, stats, export)
    model_dirs: dict[str, Path] = field(default_factory=dict)  # active model weights by role (defect, part)
    class_names: tuple[str, ...] = ()  # the defect classes in model order; empty: the DeepPCB classes
    # A review that changes a verdict goes out as a review.corrected event on the line's stream. Not on a
    # hub: each line's stream (its sequence) belongs to its edge; there a review changes the hub's rows only.
    review_events: bool = True
    recipes: RecipeStore | None = None  # recipes and golden images (same database); None: no recipe endpoints
    goldens: GoldenFiles | None = None  # golden images without recipes (a hub: its edges' goldens, by sha256)
    floor: FloorService | None = None  # OPC UA, reject gate, Sparkplug B, process control (None: none enabled)
    model_desk: ModelDesk | None = None  # model delivery on the running line (None: no line, or none here)
    part_desk: ModelDesk | None = None  # the same for the line's part model
    metrics_public: bool = False  # /metrics without a token (settings metrics.public: a trusted network's scraper)

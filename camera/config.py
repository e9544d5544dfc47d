"""Camera configuration: one pydantic model per kind of camera, chosen by ``type``.

``CameraConfig`` is a discriminated union (``rtsp``, ``http``, ``file``, ``usb``, ``push``,
``simulated``); ``build_source(config, boards)`` turns one into a :class:`~camera.source.FrameSource`
(a simulated camera reads its boards with the ``BoardReader`` it is handed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from camera.boards import BoardReader
from camera.errors import CameraError
from camera.source import FrameSource, ReconnectPolicy


class ReconnectConfig(BaseModel):
    """When a camera counts as lost and how reconnect attempts back off."""

    model_config = ConfigDict(extra="forbid")

    initial_delay_s: float = Field(0.5, gt=0, description="Wait before the first reconnect attempt (seconds).")
    max_delay_s: float = Field(10.0, gt=0, description="Longest wait between reconnect attempts (seconds).")
    multiplier: float = Field(2.0, ge=1.0, description="Each failed attempt multiplies the wait by this.")
    jitter: float = Field(
        0.2, ge=0.0, lt=1.0, description="Random spread of each wait: a factor in [1 - jitter, 1 + jitter]."
    )
    stall_timeout_s: float = Field(
        5.0, gt=0, description="No frame for this long: the camera is offline and is reconnected."
    )

    def policy(self) -> ReconnectPolicy:
        return ReconnectPolicy(
            self.initial_delay_s, self.max_delay_s, self.multiplier, self.jitter, self.stall_timeout_s
        )


class _Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Camera id, unique on this edge box (letters, digits, '_', '.', '-').",
    )
    buffer_size: int = Field(
        8, ge=1, le=1024, description="Frames kept for the consumer; when full the oldest is dropped and counted."
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig, description="Offline detection and reconnect backoff."
    )


class _StreamCamera(_Camera):
    open_timeout_s: float = Field(5.0, gt=0, description="Give up opening the stream after this many seconds.")
    read_timeout_s: float = Field(3.0, gt=0, description="A read that waits longer than this fails (seconds).")

    @model_validator(mode="after")
    def _read_within_stall(self) -> _StreamCamera:
        if self.read_timeout_s > self.reconnect.stall_timeout_s:
            raise ValueError("read_timeout_s must not exceed reconnect.stall_timeout_s")
        return self


class RtspCamera(_StreamCamera):
    """An RTSP stream, e.g. an IP camera."""

    type: Literal["rtsp"] = Field(description="RTSP stream camera.")
    url: str = Field(pattern=r"^rtsps?://\S+$", description="Stream URL, rtsp://host[:port]/path.")


class HttpCamera(_StreamCamera):
    """An HTTP stream (MJPEG or any format FFmpeg reads over HTTP)."""

    type: Literal["http"] = Field(description="HTTP / MJPEG stream camera.")
    url: str = Field(pattern=r"^https?://\S+$", description="Stream URL, http(s)://host[:port]/path.")


class FileCamera(_Camera):
    """A video file played as a camera."""

    type: Literal["file"] = Field(description="Video file played as a camera.")
    path: Path = Field(description="Video file (any container and codec FFmpeg reads).")
    loop: bool = Field(False, description="Start again at the end; otherwise the source stops at the end.")
    realtime: bool = Field(True, description="Deliver frames at the file's frame rate (else as fast as read).")


class UsbCamera(_Camera):
    """A local USB / V4L2 camera."""

    type: Literal["usb"] = Field(description="USB (V4L2) camera.")
    index: int = Field(0, ge=0, description="Device index, e.g. 0 for /dev/video0.")
    width: int | None = Field(None, gt=0, description="Requested frame width in pixels (device default if unset).")
    height: int | None = Field(None, gt=0, description="Requested frame height in pixels (device default if unset).")
    fps: float | None = Field(None, gt=0, description="Requested frame rate (device default if unset).")


class PushCamera(_Camera):
    """A camera that pushes JPEG or PNG images over HTTP."""

    type: Literal["push"] = Field(description="Camera pushing JPEG/PNG images over HTTP.")
    max_bytes: int = Field(16 * 1024 * 1024, gt=0, description="Largest accepted image body in bytes.")
    max_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image, width x height.")


class SimulatedCamera(_Camera):
    """A simulated PCB line showing DeepPCB boards or any folder of part images."""

    type: Literal["simulated"] = Field(description="Simulated conveyor line.")
    boards: Path = Field(description="DeepPCB folder (tested boards and templates) or a folder of part images.")
    list_name: str | None = Field(
        None, description="DeepPCB list file whose boards are shown (default: trainval.txt, else test.txt)."
    )
    split: Literal["all", "train", "val"] = Field(
        "all",
        description="DeepPCB boards shown: all, or one side of the importer's deterministic split "
        "(val = sha256(board id) % 100 < val_percent).",
    )
    val_percent: int = Field(20, ge=1, le=99, description="The validation share of that split.")
    mode: Literal["endless", "replay"] = Field(
        "endless", description="endless: random boards forever; replay: each tested board once, then stop."
    )
    width: int = Field(1280, ge=64, description="Frame width in pixels.")
    height: int = Field(720, ge=64, description="Frame height in pixels.")
    board_px: int = Field(560, ge=8, description="Board side in frame pixels.")
    speed_px_s: float = Field(300.0, gt=0, description="Belt speed in frame pixels per second.")
    fps: float = Field(15.0, gt=0, le=240, description="Frames per second.")
    spacing_px: float = Field(120.0, ge=0, description="Gap between consecutive boards in pixels.")
    spacing_jitter_px: float = Field(0.0, ge=0, description="Random variation of the gap, +- pixels.")
    y_jitter_px: float = Field(0.0, ge=0, description="Random vertical offset of each board, +- pixels.")
    angle_jitter_deg: float = Field(2.0, ge=0, le=45, description="Random board rotation, +- degrees.")
    scale_jitter: float = Field(0.03, ge=0, le=0.5, description="Random board size, a factor 1 +- this.")
    perspective: float = Field(
        0.008,
        ge=0,
        le=0.1,
        description="Random keystone: each board corner moves by up to this share of the board side.",
    )
    light_jitter: float = Field(
        0.1, ge=0, le=0.5, description="Random board lighting: gain 1 +- this, offset +- 40x this grey levels."
    )
    defect_rate: float = Field(0.5, gt=0, le=1, description="Share of defective boards (DeepPCB boards only).")
    seed: int = Field(0, description="Seed of board order, placement and belt texture.")
    realtime: bool = Field(True, description="Sleep to the fps; else as fast as the consumer reads, no drops.")
    split_count: int = Field(1, ge=1, description="Replay: the sequence is shared by this many cameras.")
    split_index: int = Field(0, ge=0, description="Replay: this camera's share, 0 .. split_count - 1.")

    @model_validator(mode="after")
    def _check(self) -> SimulatedCamera:
        if self.split_index >= self.split_count:
            raise ValueError("split_index must be < split_count")
        if self.board_px > self.height:
            raise ValueError("board_px must fit in the frame height")
        return self


CameraConfig = Annotated[
    RtspCamera | HttpCamera | FileCamera | UsbCamera | PushCamera | SimulatedCamera, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(CameraConfig)


def parse_camera_config(data: Any) -> CameraConfig:
    """One camera config from plain data (a YAML mapping); raises pydantic.ValidationError."""
    config: CameraConfig = _ADAPTER.validate_python(data)
    return config


def build_source(config: CameraConfig, boards: BoardReader | None = None) -> FrameSource:
    """The frame source a config describes (not started); a simulated camera reads its boards with ``boards``."""
    common: dict[str, Any] = {"buffer_size": config.buffer_size, "policy": config.reconnect.policy()}
    if isinstance(config, RtspCamera | HttpCamera):
        from camera.opencv_source import OpenCVSource

        return OpenCVSource(
            config.id, config.url, open_timeout_s=config.open_timeout_s, read_timeout_s=config.read_timeout_s, **common
        )
    if isinstance(config, FileCamera):
        from camera.opencv_source import OpenCVSource

        return OpenCVSource(config.id, config.path, loop=config.loop, realtime=config.realtime, **common)
    if isinstance(config, UsbCamera):
        from camera.opencv_source import OpenCVSource

        size = (config.width, config.height) if config.width and config.height else None
        return OpenCVSource(config.id, config.index, size=size, device_fps=config.fps, **common)
    if isinstance(config, PushCamera):
        from camera.push import PushSource

        return PushSource(config.id, max_bytes=config.max_bytes, max_pixels=config.max_pixels, **common)
    return _build_simulated(config, common, boards)


def _build_simulated(config: SimulatedCamera, common: dict[str, Any], boards: BoardReader | None) -> FrameSource:
    from camera.simulated import LineMotion, SimulatedLine, replay_sequence, split_sequence
    from camera.synth import LineStyle

    if boards is None:
        raise CameraError(f"camera {config.id!r}: a simulated camera needs a board reader (build_source(..., boards=))")
    pool = boards(config.boards, config.list_name, config.split, config.val_percent)
    motion = LineMotion(
        speed_px_s=config.speed_px_s,
        fps=config.fps,
        spacing_px=config.spacing_px,
        spacing_jitter_px=config.spacing_jitter_px,
        y_jitter_px=config.y_jitter_px,
        angle_jitter_deg=config.angle_jitter_deg,
        scale_jitter=config.scale_jitter,
        perspective=config.perspective,
        light_jitter=config.light_jitter,
        defect_rate=config.defect_rate,
        seed=config.seed,
    )
    sequence = None
    if config.mode == "replay":
        full = replay_sequence(pool, config.defect_rate, config.seed)
        sequence = split_sequence(full, config.split_count)[config.split_index]
    style = LineStyle(width=config.width, height=config.height, board_px=config.board_px)
    return SimulatedLine(
        config.id, pool, style=style, motion=motion, sequence=sequence, realtime=config.realtime, **common
    )

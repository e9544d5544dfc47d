"""``twinspect demo / serve / replay``: run the inspection engine."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import ConfigOption, DataDirOption, settings_from
from api.settings import Settings


def default_boards() -> Path:
    """The DeepPCB folder: $TWINSPECT_DEEPPCB, else ../shared/datasets/deeppcb-trainval beside the checkout."""
    env = os.environ.get("TWINSPECT_DEEPPCB")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "datasets" / "deeppcb-trainval"


def _simulated_line(
    settings: Settings,
    boards: Path,
    cameras: int,
    realtime: bool,
    fps: float,
    defect_rate: float,
    replay: bool,
    speed: float = 300.0,
    spacing: float = 120.0,
    list_name: str | None = None,
    split: str = "all",
) -> Settings:
    """Settings with the line replaced by N simulated cameras over ``boards``."""
    from camera.config import SimulatedCamera
    from inspection.pipeline.parts import PartsConfig
    from inspection.pipeline.trigger import LineTriggerConfig

    cams = [
        SimulatedCamera(
            type="simulated",
            id=f"cam{i + 1}",
            boards=boards,
            mode="replay" if replay else "endless",
            realtime=realtime,
            fps=fps,
            defect_rate=defect_rate,
            split_count=cameras,
            split_index=i,
            speed_px_s=speed,
            spacing_px=spacing,
            list_name=list_name,
            split=split,  # type: ignore[arg-type]
            seed=i if not replay else 0,
        )
        for i in range(cameras)
    ]
    w, h = cams[0].width, cams[0].height
    trigger = LineTriggerConfig(start=(w / 2, 0.0), end=(w / 2, float(h)), direction="right_to_left")
    parts = PartsConfig(**{**settings.line.parts.model_dump(), "trigger": trigger})
    line = settings.line.model_copy(update={"cameras": cams, "parts": parts})
    return settings.model_copy(update={"line": line})


def _serve(settings: Settings, engine_settings: Settings, banner: str, demo_token: bool = False) -> None:
    import uvicorn

    from api.app import create_app
    from api.errors import NotFound
    from api.floor_wiring import build_floor
    from api.live_view import LiveView
    from api.model_runtime import ModelWatcher, build_desk, served_settings
    from api.runtime import build_engine, open_recipes, open_sync
    from api.services import Services
    from api.tokens import Role, TokenStore
    from inspection.store import ModelStates

    sync = open_sync(settings)
    tokens = TokenStore(sync.log.engine)
    states = ModelStates(sync.log.engine)
    engine_settings = served_settings(engine_settings, states)  # the line's active version, from its history
    engine = build_engine(engine_settings, sync=sync)
    desk = build_desk(engine_settings, engine, sync, states)
    part_desk = build_desk(engine_settings, engine, sync, states, role="part")
    services = Services(
        LiveView(engine, sync.twins),
        sync,
        tokens,
        heartbeat_s=settings.sync.feeds.heartbeat_s,
        max_page=settings.sync.feeds.max_page,
        inspections=engine.recorder.inspections if engine.recorder else None,
        model_dirs={"defect": engine_settings.models.defect.weights, "part": engine_settings.models.part.weights},
        class_names=tuple(engine.defect_worker.detector.class_names),
        recipes=open_recipes(settings, sync.log.engine),
        model_desk=desk,
        part_desk=part_desk,
        metrics_public=settings.metrics.public,
    )
    app = create_app(services)
    floor = build_floor(engine_settings, engine, sync, services)  # OPC UA, gate, Sparkplug B, SPC, belt model
    floor.start()
    url = f"http://{settings.server.host}:{settings.server.port}/"
    typer.echo(f"twinspect: {banner} at {url}")
    typer.echo(
        "  open it in a browser: the review queue, live frames with tracked boards, the dashboard; "
        f"metrics at {url}metrics; data in {settings.data_dir}; Ctrl-C stops"
    )
    if demo_token:
        with contextlib.suppress(NotFound):
            tokens.revoke("demo-admin")  # one demo token at a time
        _, clear = tokens.create(Role.ADMIN, "demo-admin")
        typer.echo(f"  sign in at {url}signin with the demo admin token (new at every start):")
        typer.echo(f"  {clear}")
    else:
        typer.echo("  sign in with a token from: twinspect tokens create --role qa")
    if floor.opcua is not None:
        typer.echo(f"  OPC UA (OPC 40100 model) at {floor.opcua.endpoint}")
    watcher = ModelWatcher(desk, part_desk).start()  # the CLI's model changes reach the running line
    try:
        uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level="warning")
    finally:
        watcher.stop()
        floor.stop()


def demo_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    boards: Annotated[
        Path | None,
        typer.Option(
            help="DeepPCB folder (or any folder of board images); default: $TWINSPECT_DEEPPCB or "
            "../shared/datasets/deeppcb-trainval."
        ),
    ] = None,
    cameras: Annotated[int, typer.Option(help="Simulated cameras.")] = 1,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """A simulated PCB line on the shipped weights, with the web UI on http://HOST:PORT/ (prints an admin token)."""
    settings = settings_from(config, data_dir)
    settings = settings.model_copy(update={"server": settings.server.model_copy(update={"host": host, "port": port})})
    boards = boards or default_boards()
    line = _simulated_line(settings, boards, cameras, realtime=True, fps=15.0, defect_rate=0.5, replay=False)
    _serve(settings, line, f"simulated PCB line ({cameras} camera(s), boards from {boards})", demo_token=True)


def serve_cmd(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Run the cameras of the config file with the engine, API and web UI."""
    settings = settings_from(config, data_dir)
    _serve(settings, settings, f"line {settings.line.line_id} with {len(settings.line.cameras)} camera(s)")


def replay_cmd(
    boards: Annotated[Path, typer.Option(help="DeepPCB folder (ground truth from its labels) or image folder.")],
    defect_rate: Annotated[float, typer.Option(help="Share of defective boards (DeepPCB layout).")] = 0.5,
    fps: Annotated[float, typer.Option(help="Simulated camera frame rate (sets the motion per frame).")] = 15.0,
    cameras: Annotated[int, typer.Option(help="Simulated cameras sharing the boards.")] = 1,
    speed: Annotated[float, typer.Option(help="Belt speed in frame pixels per second.")] = 300.0,
    spacing: Annotated[float, typer.Option(help="Gap between boards in pixels.")] = 120.0,
    list_name: Annotated[
        str | None, typer.Option("--list", help="DeepPCB list: trainval or test (default: trainval, else test).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="DeepPCB boards: all, or val / train of the importer's split (sha256(board id) % 100 < 20 is val)."
        ),
    ] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per board, then a summary line.")] = False,
    store: Annotated[bool, typer.Option(help="Store inspections (in --data-dir, else a temporary folder).")] = True,
    realtime: Annotated[
        bool, typer.Option(help="Run the belt at --fps in real time (the reject gate's deadlines are real).")
    ] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the whole pipeline over every board in DIR as fast as the machine allows."""
    from api.runtime import build_engine, open_sync
    from camera.simulated import replay_sequence
    from inspection.ml.datasets.boards import board_pool
    from inspection.pipeline.replay import ReplayReport

    _check_replay_options(defect_rate, list_name, split)
    list_file = f"{list_name}.txt" if list_name else None
    settings = settings_from(config, data_dir)
    with tempfile.TemporaryDirectory(prefix="twinspect-replay-") as tmp:
        if data_dir is None:
            settings = settings.model_copy(update={"data_dir": Path(tmp)})
        line = _simulated_line(
            settings,
            boards,
            cameras,
            realtime=realtime,
            fps=fps,
            defect_rate=defect_rate,
            replay=True,
            speed=speed,
            spacing=spacing,
            list_name=list_file,
            split=split,
        )
        sequence = replay_sequence(board_pool(boards, list_file, split, 20), defect_rate, seed=0)
        sync = open_sync(settings) if store else None
        engine = build_engine(line, store=store, sync=sync)
        report = ReplayReport(sequence, write=lambda s: print(s, flush=True), emit_lines=as_json)
        engine.add_listener(report)
        floor = _replay_floor(line, engine, sync)
        t0 = time.monotonic()
        if sync is not None:
            sync.start()
        engine.start()
        finished = engine.wait(timeout=None)
        wall = time.monotonic() - t0
        status = engine.status()
        floor_status = _stop_floor(floor, sum(c.parts.inspected for c in status.cameras))
        engine.stop()
        if sync is not None:
            sync.stop(drain_s=60.0)
    summary = report.summary(status.seen, status.frames, wall, dict(status.stage_ms))
    _print_summary({**summary, **floor_status}, as_json)
    if not finished:
        sys.exit(1)


def _replay_floor(settings: Settings, engine: Any, sync: Any) -> Any:
    """The reject gate (with the simulated gate), SPC and belt model of a replay, when the config enables them."""
    if not (settings.gate.enabled or settings.spc.enabled or settings.belt.enabled):
        return None
    from api.floor_wiring import floor_config
    from floor.service import FloorService

    gate = settings.gate.model_copy(update={"simulated": True})
    config = floor_config(settings.model_copy(update={"gate": gate}))
    config = type(config)(
        config.opcua.model_copy(update={"enabled": False}),
        gate,
        config.sparkplug,
        config.spc,
        config.belt,
        config.data_dir,
    )
    floor = FloorService.build(config, engine, sync)
    floor.start()
    return floor


def _stop_floor(floor: Any, inspected: int) -> dict[str, Any]:
    """Wait for the simulated gate to act on every inspected board; the gate's figures for the summary."""
    if floor is None:
        return {}
    if floor.simulated_gate is not None:
        floor.simulated_gate.wait(inspected, floor.gate.travel_s + 30.0)
    out = floor.status()
    floor.stop()
    return {k: v for k, v in out.items() if k in ("gate", "simulated_gate")}


def _check_replay_options(defect_rate: float, list_name: str | None, split: str) -> None:
    from camera.errors import CameraError

    if not 0 < defect_rate <= 1:
        raise CameraError(f"--defect-rate: must be in (0, 1], got {defect_rate}")
    if list_name not in (None, "trainval", "test"):
        raise CameraError(f"--list: must be trainval or test, got {list_name!r}")
    if split not in ("all", "train", "val"):
        raise CameraError(f"--split: must be all, train or val, got {split!r}")


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        for k, v in summary.items():
            typer.echo(f"{k:16s} {v}")

"""Camera configs: one model per type, strict fields, and the factory that builds each source."""

from __future__ import annotations

import pydantic
import pytest
from pydantic import BaseModel

from camera import config as cfg
from camera.config import build_source, parse_camera_config
from camera.frame import SourceState
from camera.opencv_source import OpenCVSource
from camera.push import PushSource
from camera.simulated import SimulatedLine
from inspection.ml.datasets.boards import board_pool


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"type": "rtsp", "id": "a", "url": "rtsp://10.0.0.5:554/stream1"}, OpenCVSource),
        ({"type": "http", "id": "b", "url": "http://cam.local/mjpeg"}, OpenCVSource),
        ({"type": "file", "id": "c", "path": "clip.mp4", "loop": True}, OpenCVSource),
        ({"type": "usb", "id": "d", "index": 1, "width": 640, "height": 480}, OpenCVSource),
        ({"type": "push", "id": "e", "max_bytes": 1000}, PushSource),
    ],
)
def test_each_type_builds_its_source(data: dict, kind: type):
    source = build_source(parse_camera_config(data))
    assert isinstance(source, kind) and source.camera_id == data["id"]
    assert source.state is SourceState.STOPPED  # built, not started


def test_options_reach_the_source():
    src = build_source(
        parse_camera_config(
            {
                "type": "file",
                "id": "f",
                "path": "x.mp4",
                "loop": True,
                "realtime": False,
                "buffer_size": 3,
                "reconnect": {"initial_delay_s": 0.2, "max_delay_s": 1.5, "stall_timeout_s": 4},
            }
        )
    )
    assert isinstance(src, OpenCVSource)
    assert src.loop and not src.realtime and src.is_file and src.buffer.maxsize == 3
    assert (src.policy.initial_delay_s, src.policy.max_delay_s, src.policy.stall_timeout_s) == (0.2, 1.5, 4)
    usb = build_source(parse_camera_config({"type": "usb", "id": "u", "index": 2, "width": 640, "height": 480}))
    assert isinstance(usb, OpenCVSource) and usb.uri == 2 and usb.size == (640, 480) and not usb.is_file


@pytest.mark.parametrize(
    "data",
    [
        {"type": "rtsp", "id": "a", "url": "rtsp://h/s", "colour": "red"},  # unknown field
        {"type": "ftp", "id": "a", "url": "ftp://h/s"},  # unknown type
        {"type": "rtsp", "id": "a", "url": "http://h/s"},  # wrong scheme for the type
        {"type": "http", "id": "bad id!", "url": "http://h/s"},
        {"type": "http", "id": "a", "url": "http://h/s", "read_timeout_s": 9},  # longer than the stall timeout
        {"type": "simulated", "id": "s", "boards": "x", "split_count": 2, "split_index": 2},
        {"type": "push", "id": "p", "reconnect": {"jitter": 2}},
    ],
)
def test_bad_configs_are_refused(data: dict):
    with pytest.raises(pydantic.ValidationError):
        parse_camera_config(data)


def test_every_field_is_described():
    models: list[type[BaseModel]] = [
        cfg.ReconnectConfig,
        cfg.RtspCamera,
        cfg.HttpCamera,
        cfg.FileCamera,
        cfg.UsbCamera,
        cfg.PushCamera,
        cfg.SimulatedCamera,
    ]
    for model in models:
        assert model.model_config.get("extra") == "forbid"
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_simulated_replay_split_across_cameras(deeppcb_factory):
    src = deeppcb_factory(boards=5, size=96)
    base = {
        "type": "simulated",
        "boards": str(src),
        "mode": "replay",
        "width": 256,
        "height": 128,
        "board_px": 96,
        "seed": 3,
        "split_count": 2,
        "realtime": False,
    }
    cams = [
        build_source(parse_camera_config({**base, "id": f"s{i}", "split_index": i}), boards=board_pool)
        for i in range(2)
    ]
    assert all(isinstance(c, SimulatedLine) for c in cams)
    seqs = [c.scene.sequence for c in cams]  # type: ignore[attr-defined]
    assert seqs[0] is not None and seqs[1] is not None
    names = sorted(p.sprite.name for s in seqs for p in s)
    assert len(names) == 10 and sum(n.endswith("_test.jpg") for n in names) == 5
    endless = build_source(parse_camera_config({**base, "id": "e", "mode": "endless"}), boards=board_pool)
    assert endless.scene.sequence is None  # type: ignore[attr-defined]

"""Pushed images: good JPEG/PNG bodies become frames, bad ones are rejected with the reason."""

from __future__ import annotations

import struct
import time

import cv2
import numpy as np
import pytest

from camera.errors import CameraError, FrameRejected
from camera.frame import SourceState
from camera.push import PushSource, header_size
from camera.source import ReconnectPolicy


def encode(ext: str, w: int = 40, h: int = 30) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.fixture
def cam() -> PushSource:
    src = PushSource("dock", max_bytes=100_000, max_pixels=1_000_000, policy=ReconnectPolicy(stall_timeout_s=0.2))
    src.start()
    return src


def test_jpeg_and_png_become_frames(cam: PushSource):
    assert cam.state is SourceState.STARTING
    a = cam.push(encode(".jpg"), "image/jpeg")
    b = cam.push(encode(".png"), "image/png; charset=binary")
    c = cam.push(encode(".png"))  # no content type: sniffed
    assert (a.seq, b.seq, c.seq) == (0, 1, 2)
    assert b.image.shape == (30, 40, 3) and tuple(b.image[0, 0]) == (0, 0, 255)
    assert cam.read(0) is a and cam.read(0) is b
    stats = cam.stats()
    assert stats.state is SourceState.RUNNING and stats.online and stats.frames_in == 3


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"", "image/jpeg", "empty body"),
        (b"hello, not an image", None, "not an image"),
        (b"%PDF-1.7 ...", "image/jpeg", "not an image"),
        (b"\xff\xd8\xff" + bytes(200), "image/jpeg", "cannot read the image size from the JPEG header"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10" + bytes(200), "image/jpeg", "does not decode"),
        (b"GIF89a....", "image/gif", "unsupported content type 'image/gif'"),
    ],
)
def test_non_images_are_rejected_with_the_reason(cam: PushSource, body: bytes, ctype: str | None, reason: str):
    with pytest.raises(FrameRejected, match=reason):
        cam.push(body, ctype)
    assert cam.stats().frames_in == 0


def test_oversized_body_is_rejected_before_decoding(cam: PushSource):
    big = encode(".png", 400, 300)
    cam.max_bytes = len(big) - 1
    with pytest.raises(FrameRejected, match=r"too large: \d+ bytes > max_bytes"):
        cam.push(big, "image/png")
    assert isinstance(FrameRejected("x"), CameraError)
    stats = cam.stats()
    assert stats.bad_frames == 1 and stats.frames_in == 0 and stats.last_error and "too large" in stats.last_error


def test_declared_type_must_match_the_body(cam: PushSource):
    with pytest.raises(FrameRejected, match="content type says png but the body is jpeg"):
        cam.push(encode(".jpg"), "image/png")


def test_pixel_bomb_is_rejected_from_the_header(cam: PushSource):
    png = bytearray(encode(".png", 10, 10))
    png[16:24] = struct.pack(">II", 50_000, 50_000)  # claims 2.5 gigapixels
    with pytest.raises(FrameRejected, match="50000x50000 pixels > max_pixels"):
        cam.push(bytes(png), "image/png")


def test_header_size_reads_jpeg_and_png():
    assert header_size(encode(".jpg", 37, 23), "jpeg") == (37, 23)
    assert header_size(encode(".png", 37, 23), "png") == (37, 23)


def test_push_to_a_stopped_camera_is_rejected():
    src = PushSource("dock")
    with pytest.raises(FrameRejected, match="not started"):
        src.push(encode(".jpg"), "image/jpeg")


def test_camera_that_stops_pushing_goes_offline(cam: PushSource):
    cam.push(encode(".jpg"), "image/jpeg")
    assert cam.stats().online
    time.sleep(0.3)
    stats = cam.stats()
    assert not stats.online and stats.state is SourceState.RECONNECTING
    cam.push(encode(".jpg"), "image/jpeg")
    assert cam.state is SourceState.RUNNING
    cam.stop()
    assert cam.state is SourceState.STOPPED and cam.read(0) is not None and cam.read(1) is not None
    assert cam.read(5) is None


def test_a_full_buffer_drops_the_oldest_push():
    src = PushSource("dock", buffer_size=2)
    src.start()
    frames = [src.push(encode(".jpg"), "image/jpeg") for _ in range(5)]
    assert src.stats().dropped == 3
    assert src.read(0) is frames[3] and src.read(0) is frames[4]

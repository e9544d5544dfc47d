"""Image limits fail closed (camera.decode): the size comes from the header, too large or unreadable is refused.

The attack of issue 10: a 630-byte JPEG whose frame header declares 20000x20000, with stray
bytes before that header. The old reader gave up at the stray bytes, the pixel check was
skipped, and the decoder allocated 1.2 GB for 5 s on the event loop. Every decoder of outside
images goes through the same helper: pushed frames, ``twinspect predict``'s ``read_image``, the
DeepPCB importer's image check and golden images.
"""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.tokens import TokenStore
from camera.decode import ImageTooLarge, UnreadableSize, decode, read_header
from camera.errors import FrameRejected, ImageError
from camera.push import PushSource, header_size
from inspection.ml.datasets.deeppcb import image_size
from inspection.ml.images import read_image
from inspection.reference.goldens import check_golden
from inspection.reference.recipes import RecipeError
from tests.api.test_live_api import FakeView


def small_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return buf.tobytes()


def declaring(jpeg: bytes, width: int, height: int, before_sof: bytes = b"") -> bytes:
    """``jpeg`` with its frame header (SOF0) declaring ``width`` x ``height``, ``before_sof`` inserted before it."""
    at = jpeg.index(b"\xff\xc0")
    out = bytearray(jpeg)
    out[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(out[:at]) + before_sof + bytes(out[at:])


BOMB = declaring(small_jpeg(), 20_000, 20_000, before_sof=b"\x00\x13\x37")  # stray bytes before the SOF


def test_the_bomb_is_small_and_its_size_is_read_past_stray_bytes():
    assert len(BOMB) < 700
    assert header_size(BOMB, "jpeg") == (20_000, 20_000)
    assert read_header(BOMB).pixels == 400_000_000


@pytest.mark.parametrize(
    "before_sof",
    [
        b"\xff\xff\xff",  # fill bytes
        b"\x00\x13\x37\xff\x00\x42",  # stray bytes and a stuffed 0xFF00 (not a marker)
        b"\xff\xfe\x00\x07comme",  # a comment segment
        b"\xff\xe5\x00\x04\xc0\xc0",  # an APP5 segment whose content looks like a SOF marker
        b"\xff\xd3",  # a marker without length (RST3)
    ],
    ids=["fill", "stray", "comment", "app5", "rst"],
)
def test_jpeg_frame_headers_are_found_past_anything_the_decoder_skips(before_sof: bytes):
    data = declaring(small_jpeg(), 20_000, 15_000, before_sof)
    assert read_header(data).width == 20_000 and read_header(data).height == 15_000
    with pytest.raises(ImageTooLarge, match="20000x15000 pixels > max_pixels 1000000"):
        decode(data, max_pixels=1_000_000)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "no frame header"),  # truncated before any SOF
        (b"\xff\xd8\xff\xda\x00\x08" + bytes(40), "the scan (SOS) before any frame header"),
        (b"\xff\xd8\xff\xe0\x00\x01" + bytes(40), "bad length 1"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x10" + bytes(20), "declares 16x0"),  # a height given by DNL later
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dtEXt" + bytes(20), "the first chunk is not IHDR"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "truncated"),
        (b"BM" + bytes(12) + struct.pack("<I", 16) + bytes(20), "unknown info header"),
        (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0), "no ImageWidth"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8Z" + bytes(20), "unknown first chunk"),
    ],
    ids=[
        "jpeg-truncated",
        "jpeg-sos-first",
        "jpeg-bad-length",
        "jpeg-dnl",
        "png-no-ihdr",
        "png-truncated",
        "bmp-header",
        "tiff-no-size",
        "webp-chunk",
    ],
)
def test_an_image_whose_size_cannot_be_read_is_refused(data: bytes, why: str):
    with pytest.raises(UnreadableSize, match="cannot read the image size from the .* header: .*" + re.escape(why)):
        decode(data, max_pixels=10**9)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".tiff", ".webp"])
def test_header_sizes_of_real_encoders(ext: str):
    ok, buf = cv2.imencode(ext, np.zeros((23, 37, 3), np.uint8))
    assert ok
    header = read_header(buf.tobytes())
    assert (header.width, header.height) == (37, 23)
    assert decode(buf.tobytes(), max_pixels=37 * 23).shape == (23, 37, 3)
    with pytest.raises(ImageTooLarge, match="37x23 pixels > max_pixels 850"):
        decode(buf.tobytes(), max_pixels=850)


def test_a_push_camera_refuses_the_bomb_before_decoding():
    cam = PushSource("door", max_pixels=40_000_000)
    cam.start()
    with pytest.raises(FrameRejected, match="image too large: 20000x20000 pixels > max_pixels 40000000"):
        cam.push(BOMB, "image/jpeg")
    unreadable = small_jpeg()[: small_jpeg().index(b"\xff\xc0")]  # cut before its frame header
    with pytest.raises(FrameRejected, match="cannot read the image size from the JPEG header"):
        cam.push(unreadable, "image/jpeg")
    stats = cam.stats()
    assert stats.frames_in == 0 and stats.bad_frames == 2
    assert cam.push(small_jpeg(), "image/jpeg").image.shape == (16, 16, 3)


def test_predict_import_and_goldens_refuse_the_bomb(tmp_path: Path):
    path = tmp_path / "board.jpg"
    path.write_bytes(BOMB)
    with pytest.raises(ImageError, match="board.jpg: image too large: 20000x20000 pixels > max_pixels 100000000"):
        read_image(path)
    problems: list[str] = []
    assert image_size(path, problems) is None
    assert len(problems) == 1 and "20000x20000 pixels > max_pixels" in problems[0]
    with pytest.raises(RecipeError, match=r"^g.jpg: 20000x20000 image; at most 20000 pixels a side and 100000000"):
        check_golden(BOMB, "g.jpg")
    path.write_bytes(small_jpeg())
    assert read_image(path).shape == (16, 16, 3) and image_size(path, problems) == (16, 16)


class LoopWatchingView(FakeView):
    """Records whether each push ran on the event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.on_loop: list[bool] = []

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return super().push(camera_id, data, content_type)


def test_the_push_route_decodes_in_a_worker_thread_and_reads_bearer_in_any_case(token_store: TokenStore):
    view = LoopWatchingView()
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    with TestClient(create_app(Services(view, tokens=token_store))) as client:
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = client.post(
                "/api/v1/cameras/door/frames",
                content=png.tobytes(),
                headers={"Authorization": f"{scheme} s3cret", "Content-Type": "image/png"},
            )
            assert r.status_code == 202, (scheme, r.text)
    assert view.on_loop == [False, False, False]

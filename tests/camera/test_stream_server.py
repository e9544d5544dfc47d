"""A real HTTP/MJPEG stream server (ffmpeg) killed and restarted under the OpenCV source."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from camera.frame import SourceState
from camera.opencv_source import OpenCVSource
from camera.source import ReconnectPolicy
from tests.conftest import free_port, wait_until

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"






class MjpegServer:
    """ffmpeg serving a generated test pattern as multipart JPEG over HTTP, one client at a time."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
             "-i", "testsrc=size=160x120:rate=15", "-f", "mpjpeg", "-q:v", "8", "-listen", "1", self.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(5)


@pytest.fixture
def server() -> Iterator[MjpegServer]:
    srv = MjpegServer(free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


def test_stream_killed_goes_offline_and_resumes_when_restarted(server: MjpegServer):
    policy = ReconnectPolicy(initial_delay_s=0.1, max_delay_s=0.4, jitter=0.1, stall_timeout_s=2.0)
    cam = OpenCVSource("line1", server.url, open_timeout_s=2.0, read_timeout_s=1.0, policy=policy, buffer_size=4)
    cam.start()
    try:
        assert wait_until(lambda: cam.stats().frames_in >= 10, timeout=15), cam.stats()
        live = cam.stats()
        assert live.state is SourceState.RUNNING and live.online and live.fps > 3
        frame = cam.read(2)
        assert frame is not None and frame.image.shape == (120, 160, 3) and frame.camera_id == "line1"

        server.kill()
        assert wait_until(lambda: cam.state is SourceState.RECONNECTING, timeout=5), cam.stats()
        assert wait_until(lambda: not cam.stats().online, timeout=5)
        down = cam.stats()
        assert down.reconnects >= 1 and down.last_error
        while cam.read(0) is not None:  # drain what came before the outage
            pass
        last_seq = cam.stats().frames_in - 1

        time.sleep(0.5)  # a few failed reconnect attempts against a closed port
        assert cam.state is SourceState.RECONNECTING
        server.start()
        assert wait_until(lambda: cam.state is SourceState.RUNNING, timeout=15), cam.stats()
        fresh = cam.read(5)
        assert fresh is not None and fresh.seq > last_seq
        back = cam.stats()
        assert back.online and back.reconnects >= down.reconnects
        assert wait_until(lambda: cam.stats().frames_in >= down.frames_in + 5, timeout=10)
    finally:
        cam.stop()
    assert cam.state is SourceState.STOPPED

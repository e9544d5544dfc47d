"""Real stream servers killed and restarted under the OpenCV source: HTTP/MJPEG (ffmpeg) and RTSP.

The RTSP server is ``tests/camera/rtsp_server.py``: RTSP control in Python, RTP/JPEG from
ffmpeg, interleaved in the TCP connection as OpenCV's FFmpeg backend asks. It is killed
with its whole process group (SIGKILL), ffmpeg included.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from camera.frame import SourceState
from camera.opencv_source import OpenCVSource
from camera.source import ReconnectPolicy
from tests.conftest import REPO, free_port, wait_until

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


class MjpegServer:
    """ffmpeg serving a generated test pattern as multipart JPEG over HTTP, one client at a time."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                FFMPEG,
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=15",
                "-f",
                "mpjpeg",
                "-q:v",
                "8",
                "-listen",
                "1",
                self.url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(5)


class RtspServer:
    """tests/camera/rtsp_server.py in its own process group, serving a 160x120 test pattern at 15 fps."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/live"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.camera.rtsp_server", "--port", str(self.port)],
            cwd=REPO,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._listening, timeout=10), "RTSP test server did not start"

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its ffmpeg, the hard way
        if self.proc is not None:
            self.proc.wait(5)


@pytest.fixture(params=["http-mjpeg", "rtsp"])
def server(request) -> Iterator[MjpegServer | RtspServer]:
    srv = MjpegServer(free_port()) if request.param == "http-mjpeg" else RtspServer(free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


def test_stream_killed_goes_offline_and_resumes_when_restarted(server: MjpegServer | RtspServer):
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
        assert wait_until(lambda: cam.state is SourceState.RECONNECTING, timeout=30), cam.stats()
        assert wait_until(lambda: not cam.stats().online, timeout=30)
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

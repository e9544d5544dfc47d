"""A small real RTSP server for tests: RTSP 1.0 control here, the media from ffmpeg.

    python -m tests.camera.rtsp_server --port 8554 [--size 160x120] [--fps 15]

It answers OPTIONS, DESCRIBE (an SDP for JPEG over RTP, RFC 2435, payload type 26),
SETUP (RTP interleaved in the RTSP TCP connection, as OpenCV's FFmpeg backend asks by
default), PLAY (starts ffmpeg sending a generated test pattern as RTP to a local UDP
port; each packet goes on to the client framed as ``$ channel length``), GET_PARAMETER
(keep-alive) and TEARDOWN. One ffmpeg per playing client, killed with its RTSP
connection and with this process (the tests kill the whole process group to take the
server away the hard way).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=twinspect test pattern\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:track1\r\n"
)


class RtspHandler(socketserver.StreamRequestHandler):
    server: RtspServer

    def handle(self) -> None:
        session = secrets.token_hex(6)
        channel: int | None = None
        ffmpeg: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        try:
            while request := self._request():
                method, url, headers = request
                cseq = headers.get("cseq", "0")
                if method == "OPTIONS":
                    self._reply(cseq, {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"})
                elif method == "DESCRIBE":
                    self._reply(
                        cseq, {"Content-Base": url.rstrip("/") + "/", "Content-Type": "application/sdp"}, SDP.encode()
                    )
                elif method == "SETUP":
                    transport = headers.get("transport", "")
                    if "interleaved=" not in transport:
                        self._reply(cseq, {}, status="461 Unsupported Transport")
                        continue
                    pair = transport.split("interleaved=")[1].split(";")[0]
                    channel = int(pair.split("-")[0])
                    self._reply(cseq, {"Session": session, "Transport": f"RTP/AVP/TCP;unicast;interleaved={pair}"})
                elif method == "PLAY" and channel is not None:
                    self._reply(cseq, {"Session": session, "Range": "npt=0.000-"})
                    if ffmpeg is None:
                        ffmpeg = self.server.stream_to(rtp.getsockname()[1])
                        threading.Thread(target=self._forward, args=(rtp, channel), daemon=True).start()
                elif method == "TEARDOWN":
                    self._reply(cseq, {"Session": session})
                    break
                elif method in ("GET_PARAMETER", "SET_PARAMETER"):
                    self._reply(cseq, {"Session": session})
                else:
                    self._reply(cseq, {}, status="455 Method Not Valid in This State")
        except (OSError, ValueError):
            pass
        finally:
            if ffmpeg is not None:
                ffmpeg.kill()
                ffmpeg.wait(5)
            rtp.close()

    def _forward(self, rtp: socket.socket, channel: int) -> None:
        """RTP packets from ffmpeg into the RTSP connection, each framed as $ channel length."""
        try:
            while True:
                packet = rtp.recv(65536)
                with self.lock:
                    self.wfile.write(b"$" + struct.pack(">BH", channel, len(packet)) + packet)
        except OSError:  # the client or the socket went away
            pass

    def _request(self) -> tuple[str, str, dict[str, str]] | None:
        line = b""
        while not line.strip():
            first = self.rfile.read(1)
            if not first:
                return None
            if first == b"$":  # the client's interleaved RTCP: skip it
                _, length = struct.unpack(">BH", self.rfile.read(3))
                self.rfile.read(length)
                continue
            line = first + self.rfile.readline()
        method, url, _ = line.decode("ascii").split(" ", 2)
        headers: dict[str, str] = {}
        while header := self.rfile.readline().decode("ascii").strip():
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            self.rfile.read(length)
        return method, url, headers

    def _reply(self, cseq: str, headers: dict[str, str], body: bytes = b"", status: str = "200 OK") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", *(f"{k}: {v}" for k, v in headers.items())]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        with self.lock:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)


class RtspServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, size: str, fps: float) -> None:
        super().__init__(("127.0.0.1", port), RtspHandler)
        self.size, self.fps = size, fps

    def stream_to(self, rtp_port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                FFMPEG,
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                f"testsrc=size={self.size}:rate={self.fps}",
                # RFC 2435 needs the standard Huffman tables and full-range 4:2:0
                "-c:v",
                "mjpeg",
                "-huffman",
                "default",
                "-pix_fmt",
                "yuvj420p",
                "-q:v",
                "8",
                "-f",
                "rtp",
                f"rtp://127.0.0.1:{rtp_port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--fps", type=float, default=15.0)
    args = ap.parse_args()
    server = RtspServer(args.port, args.size, args.fps)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"rtsp://127.0.0.1:{args.port}/live", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A twinspect app under a real uvicorn server, in a thread of the test process, on a socket of its own.

    with serve(app) as url:
        httpx.get(url + "/api/v1/session", ...)

The socket is bound before the server starts (no free-port race); the server stops (and its
lifespan ends) when the block is left.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.conftest import wait_until


@contextmanager
def serve(app: FastAPI, timeout: float = 30.0) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started or not thread.is_alive(), timeout), "uvicorn did not start"
        assert server.started, "uvicorn stopped at start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()

"""The HTTP API in a background thread on loopback: for the demo, notebooks and tests.

    with BackgroundServer(project) as server:
        httpx.post(f"{server.url}/v1/models/m1/predict", files={"files": open("a.jpg", "rb")})
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.serve.app import create_app
from visionloop.serve.settings import Settings


class BackgroundServer:
    """uvicorn serving `create_app(project, settings)` in a daemon thread on a free port; `url` once started."""

    def __init__(self, project: str | Path, settings: Settings | None = None, *, bind: str = "127.0.0.1",
                 start_timeout: float = 60.0) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(project, settings or Settings(host=bind))
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.start_timeout = start_timeout

    @property
    def service(self) -> Any:
        return self.app.state.service

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise VisionLoopError("the server did not start", hint="run `visionloop serve` to see why")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

"""Helpers for the real services the suite starts on loopback (Label Studio, PostgreSQL, moto's S3, Ray):
a free port, and stopping a server's whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the session `proc` leads (started with start_new_session=True), SIGKILL after 30 s. A server that
    died at start-up is gone already: then the fixture's own failure is the one to read, not a ProcessLookupError."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

"""Owner tokens for temporary files and folders: who made them, so that the next run can tell a leftover of a
killed process (remove it) from the work in progress of a live one (leave it alone).

    token = owner_token()                # "<host>-<pid>-<random>"
    owner_is_dead(token)                 # True: made on this host by a process that no longer runs
"""

from __future__ import annotations

import os
import socket
import uuid


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def owner_token() -> str:
    return f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owner_is_dead(token: str) -> bool | None:
    """True if the token was made on this host by a process that is gone; False if that process runs; None when
    the token is not ours to judge (another host, or no owner in it)."""
    parts = token.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, _ = parts
    if host != _host():
        return None
    return not pid_alive(int(pid))

"""What the web pages need from the app that mounts them (serve sits above web, so it hands these in)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from visionloop.store import Store

Authorize = Callable[[Request, str], Awaitable[None]]
GPS_TTL_S = 10.0
Promote = Callable[[str, "str | None"], Awaitable[dict[str, Any]]]


async def _open(request: Request, scope: str) -> None:
    return None


@dataclass
class WebContext:
    """`store()` the open project; `authorize(request, scope)` raises when the request may not (the API's
    keys, also from the `visionloop_key` cookie); `promote(name, stage)` the API's promote (it swaps the
    serving model too)."""

    store: Callable[[], Store]
    authorize: Authorize = _open
    promote: Promote | None = None
    _health: tuple[float, Any] | None = field(default=None, repr=False)
    _gps: tuple[float, bool] | None = field(default=None, repr=False)
    _health_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def health_report(self, *, refresh: bool = False) -> tuple[float, Any]:
        """The project's health report, checked once and kept until `refresh` (the health page's button)."""
        async with self._health_lock:
            if self._health is None or refresh:
                from visionloop.health import check

                report = await asyncio.to_thread(check, self.store(), workers=1)
                self._health = (time.time(), report)
            return self._health

    async def has_gps(self) -> bool:
        """Whether the project has images with GPS (the nav's Map link), looked up again after GPS_TTL_S."""
        if self._gps is None or time.monotonic() - self._gps[0] > GPS_TTL_S:
            from visionloop.web.views import has_gps

            self._gps = (time.monotonic(), await asyncio.to_thread(has_gps, self.store()))
        return self._gps[1]

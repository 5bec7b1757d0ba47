"""Image URLs in requests: fetched only from hosts on the server's allow-list (off when the list is empty),
without redirects, bounded in size and time."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from visionloop.serve.errors import BadRequest, Forbidden, PayloadTooLarge
from visionloop.serve.settings import Settings


class UrlFetcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http: Any = None

    async def fetch(self, url: str) -> bytes:
        """A URL's bytes, only from hosts on the allow-list (off when the list is empty), no redirects."""
        allow = self.settings.url_allow_list
        if not allow:
            raise Forbidden("fetching image URLs is off on this server",
                            hint="send the image bytes (multipart, raw or base64), or start the server with "
                                 "--allow-url HOST")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest(f"not an http(s) URL: {url[:200]!r}")
        if parts.hostname not in allow:
            raise Forbidden(f"host {parts.hostname!r} is not on this server's URL allow-list",
                            hint=f"allowed: {', '.join(allow)}")
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, timeout=self.settings.url_timeout_s)
        limit = self.settings.max_body_bytes
        try:
            async with self._http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise BadRequest(f"fetching {url[:200]} answered HTTP {r.status_code}")
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"{url[:200]} is larger than {limit:,} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise BadRequest(f"cannot fetch {url[:200]}: {type(e).__name__}") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

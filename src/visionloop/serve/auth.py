"""API keys at request time: a short cache over `store.keys.find` and a token bucket per key."""

from __future__ import annotations

import asyncio
import hashlib
import time

from visionloop.serve.errors import RetryLater
from visionloop.store import Store
from visionloop.store import keys as key_store
from visionloop.store.keys import KeyInfo


class KeyCache:
    """Token → key, trusted for `ttl` seconds (a revoke takes effect within that)."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self.cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self.touched: dict[int, float] = {}

    async def find(self, token: str) -> KeyInfo | None:
        digest = hashlib.sha256(token.encode()).hexdigest()  # the cache never holds the token itself
        now = time.monotonic()
        hit = self.cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        info = await asyncio.to_thread(key_store.find, self.store, token)
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[digest] = (now, info)
        if info is not None and now - self.touched.get(info.id, -1e9) > 60:
            self.touched[info.id] = now
            await asyncio.to_thread(key_store.touch, self.store, info.id)
        return info


class RateLimiter:
    """A token bucket per key: `rate` requests per minute, bursts up to a minute's worth."""

    def __init__(self, default_rate: int) -> None:
        self.default = default_rate
        self.buckets: dict[int, tuple[float, float]] = {}  # key id → (tokens, last refill)

    def take(self, key: KeyInfo) -> None:
        rate = float(key.rate_limit or self.default)
        now = time.monotonic()
        tokens, last = self.buckets.get(key.id, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate / 60)
        if tokens < 1:
            self.buckets[key.id] = (tokens, now)
            raise RetryLater(f"rate limit of key {key.prefix} reached: {int(rate)} requests per minute",
                             status=429, retry_after=(1 - tokens) * 60 / rate,
                             hint="retry after the Retry-After seconds, or ask for a higher limit")
        self.buckets[key.id] = (tokens - 1, now)

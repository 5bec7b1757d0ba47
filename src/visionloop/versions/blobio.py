"""Blob reads and writes on the hot path of generation, without fsspec's per-call overhead on local disk.

The layout stays the blob store's (`BlobStore.path`); on a local folder the
bytes go through plain `open` + `os.replace` (atomic, as `BlobStore.put`), on
any other fsspec URL through `BlobStore.get` / `put`. Creating a file costs
far more than the bytes of a small JPEG, so this is a measurable share of a
generated image (see bench/version.py).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from visionloop.store.blobs import BlobStore


class BlobIO:
    """Reads and (optionally background) writes of blobs. Call `flush()` before relying on written blobs."""

    def __init__(self, blobs: BlobStore, *, writer_threads: int = 1) -> None:
        self.blobs = blobs
        self.local = blobs.is_local
        if not self.local and writer_threads:  # each write to an object store is a round trip: overlap them
            writer_threads = max(writer_threads, 8)
        self._window = 16 if self.local else 64
        self._dirs: set[str] = set()
        self._pool = ThreadPoolExecutor(writer_threads, thread_name_prefix="blob-write") if writer_threads else None
        self._pending: list[Future[str]] = []

    def get(self, sha256: str) -> bytes:
        if self.local:
            with open(self.blobs.path(sha256), "rb") as f:
                return f.read()
        return self.blobs.get(sha256)

    def put_async(self, data: bytes) -> str:
        """The bytes' hash now; the write happens on a thread (file creation overlaps the next image)."""
        sha = hashlib.sha256(data).hexdigest()
        if self._pool is None:
            return self._write(data, sha)
        self._pending.append(self._pool.submit(self._write, data, sha))
        if len(self._pending) > self._window:
            self._pending.pop(0).result()
        return sha

    def flush(self) -> None:
        """Wait for every write in flight; the first failure is raised."""
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def put(self, data: bytes) -> str:
        """Write bytes unless a blob with their hash exists; return the hash."""
        return self._write(data, hashlib.sha256(data).hexdigest())

    def _write(self, data: bytes, sha: str) -> str:
        if not self.local:
            return self.blobs.put(data, sha)
        target = self.blobs.path(sha)
        if os.path.exists(target):
            return sha
        folder = os.path.dirname(target)
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        tmp = f"{target}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
        return sha

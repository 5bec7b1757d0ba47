"""Content-addressed blob store behind fsspec: a local folder by default, s3://… for teams.

A blob lives at `<root>/<sha[:2]>/<sha[2:]>`. New blobs of an import are
staged under `<root>/.staging/<owner token>/` and moved into place only when the
import commits, so a failed import leaves the blob store as it was. A process
killed before it could clean up leaves its staging folder behind: the next open
of the project removes the folders whose owner is dead (`sweep_staging`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from visionloop.core.errors import ProjectError
from visionloop.core.owner import owner_is_dead, owner_token
from visionloop.core.sample import Sample

log = logging.getLogger(__name__)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def modified(entry: dict[str, Any], default: float) -> float:
    """An fsspec listing entry's modification time in seconds since the epoch: local disk says `mtime` (a
    float), S3 `LastModified` (a datetime), others `created`; `default` where it says none of them."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(key)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, int | float) and value:
            return float(value)
    return default


class BlobStore:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = url_to_fs(self.url)
        except (ImportError, ValueError) as e:  # the package its protocol needs (s3fs…), or no such protocol
            raise ProjectError(f"cannot open the blob store {self.url}: {e}", path=self.url,
                               hint="a folder, or s3://bucket/prefix with visionloop[team] (s3fs) installed"
                               ) from None
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except Exception as e:  # no such bucket, no credentials, endpoint down: botocore's and aiohttp's many kinds
            raise ProjectError(f"cannot open the blob store {self.url} ({type(e).__name__}: {e})", path=self.url,
                               hint="check the bucket, the credentials (AWS_ACCESS_KEY_ID…) and AWS_ENDPOINT_URL"
                               ) from None

        self.is_local = self.local_path("0" * 64) is not None

    def path(self, sha256: str) -> str:
        return f"{self.root}/{sha256[:2]}/{sha256[2:]}"

    def exists(self, sha256: str) -> bool:
        return self.fs.exists(self.path(sha256)) if self.is_local else self.object_exists(self.path(sha256))

    def object_exists(self, path: str) -> bool:
        """Whether an object store holds `path`, in one request: fsspec's `exists` asks S3 twice for a missing key
        (HEAD, then a listing in case it is a folder), and an import asks it of every new file."""
        try:
            self.fs.cat_file(path, start=0, end=1)
            return True
        except FileNotFoundError:
            return False
        except OSError:  # e.g. a range an empty object cannot serve
            return bool(self.fs.exists(path))

    def get(self, sha256: str) -> bytes:
        return self.fs.cat_file(self.path(sha256))

    def open(self, sha256: str) -> fsspec.core.OpenFile:
        return self.fs.open(self.path(sha256), "rb")

    def location(self, sha256: str) -> str:
        """Where the blob is, for code outside the store: a local path, or a full URL (`s3://bucket/…`) that
        `fsspec.open` reads with the same credentials (the `path` of a remote store lacks its protocol)."""
        return self.local_path(sha256) or self.fs.unstrip_protocol(self.path(sha256))

    def local_path(self, sha256: str) -> str | None:
        """A path the OS can open, when the store is on local disk."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return self.path(sha256) if protocol in ("file", "local") else None

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Write bytes (no staging) and return their hash; free if already there."""
        sha = sha256 or sha256_bytes(data)
        if not self.is_local:  # an object appears whole when its PUT completes: no temporary name to move
            self.fs.pipe_file(self.path(sha), data)
            return sha
        if not self.exists(sha):
            target = self.path(sha)
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        return sha

    def sweep_staging(self, *, legacy_age: float = 3600.0) -> int:
        """Remove staging folders left by killed processes (their owner is dead; folders named before owner
        tokens existed once they are `legacy_age` seconds old); the number removed. Live imports' folders stay."""
        folder = f"{self.root}/.staging"
        if not self.fs.exists(folder):
            return 0
        removed = 0
        for entry in self.fs.ls(folder, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[1]
            dead = owner_is_dead(name)
            if dead is None and len(name) == 32 and all(c in "0123456789abcdef" for c in name):
                dead = time.time() - modified(entry, time.time()) > legacy_age
            if dead:
                self.fs.rm(entry["name"], recursive=True)
                removed += 1
        if removed:
            log.info("removed %d staging folders left by interrupted imports", removed)
        return removed

    def walk(self) -> Iterator[tuple[str, int, float]]:
        """Every stored blob file: (sha256, size, modification time); temporary files end in `.tmp`."""
        for entry in self.fs.find(self.root, detail=True, withdirs=False).values():
            path = entry["name"]
            rel = path[len(self.root.rstrip("/")) + 1:] if path.startswith(self.root.rstrip("/")) else path
            if rel.startswith("."):  # .staging and other hidden folders
                continue
            parts = rel.split("/")
            if len(parts) != 2 or len(parts[0]) != 2:
                continue
            # a store that says no time: the file counts as new (gc keeps it unless min_age is 0)
            yield parts[0] + parts[1], int(entry.get("size") or 0), modified(entry, time.time())

    def remove(self, name: str) -> None:
        """Delete one blob file (by sha256, or a `.tmp` name as `walk` gives it)."""
        self.fs.rm_file(self.path(name))

    @contextmanager
    def staging(self) -> Iterator[Staging]:
        stage = Staging(self)
        try:
            yield stage
        except BaseException:
            stage.discard()
            raise


class Staging:
    """Blobs written during one transaction; `publish()` moves them into place."""

    #: writes in flight at most; creating a file costs far more than writing a small one,
    #: so a few threads overlap that latency (file I/O releases the GIL)
    MAX_IN_FLIGHT = 64

    def __init__(self, store: BlobStore, *, threads: int = 4) -> None:
        self.store = store
        self.dir = f"{store.root}/.staging/{owner_token()}"
        self._made = False  # the staging folder is the list of pending blobs: no memory per blob
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="blob-stage") if threads > 1 else None
        self._inflight: dict[str, Future[None]] = {}

    def add(self, data: bytes, sha256: str) -> bool:
        """Stage bytes unless the blob already exists; True if they are new."""
        tmp = f"{self.dir}/{sha256}"
        staged = self.store.fs.exists if self.store.is_local else self.store.object_exists
        if sha256 in self._inflight or self.store.exists(sha256) or (self._made and staged(tmp)):
            return False
        if not self._made:
            self.store.fs.makedirs(self.dir, exist_ok=True)
            self._made = True
        if self._pool is None:
            self.store.fs.pipe_file(tmp, data)
            return True
        if len(self._inflight) >= self.MAX_IN_FLIGHT:
            self._drain()
        self._inflight[sha256] = self._pool.submit(self.store.fs.pipe_file, tmp, data)
        return True

    def _drain(self) -> None:
        """Wait for the writes in flight; the first failure is raised."""
        inflight, self._inflight = self._inflight, {}
        for future in inflight.values():
            future.result()

    def publish(self) -> None:
        self._drain()
        if self._pool is not None:
            self._pool.shutdown()
        if not self._made:
            return
        fs = self.store.fs
        if not self.store.is_local:  # an object store has no folders; fsspec copies a list concurrently (s3fs)
            fs.invalidate_cache(self.dir)  # and removes the staged copies in bulk requests
            tmps = fs.ls(self.dir, detail=False)
            fs.mv(tmps, [self.store.path(t.rsplit("/", 1)[1]) for t in tmps])
            self._cleanup()
            return
        made: set[str] = set()
        for tmp in fs.ls(self.dir, detail=False):
            sha = tmp.rsplit("/", 1)[1]
            target = self.store.path(sha)
            parent = target.rsplit("/", 1)[0]
            if parent not in made:
                fs.makedirs(parent, exist_ok=True)
                made.add(parent)
            fs.mv(tmp, target)
        self._cleanup()

    def discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._inflight.clear()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._made and self.store.fs.exists(self.dir):
            self.store.fs.rm(self.dir, recursive=True)
        self._made = False


@contextmanager
def fetched_ahead(blobs: BlobStore, samples: Iterable[Sample], *, ahead: int = 64,
                  threads: int = 8) -> Iterator[Iterator[Sample]]:
    """`samples` whose images are in a remote blob store, each fetched into a temporary folder while the
    ones before it are written: `threads` downloads in flight, up to `ahead` samples in front of the reader
    (an export asks an object store for one image at a time otherwise: a round trip each). The folder, and
    with it every fetched copy, goes when the block ends. On a local store the samples pass as they are."""
    if blobs.is_local:
        yield iter(samples)
        return
    with tempfile.TemporaryDirectory(prefix="visionloop-fetch-") as folder, \
            ThreadPoolExecutor(threads, thread_name_prefix="blob-fetch") as pool:

        def fetch(sample: Sample) -> Sample:
            sha = sample.image.sha256
            if not sha or not (sample.image.path or "").startswith(blobs.location(sha)):
                return sample  # not this store's blob (a blurred copy already on disk…)
            local = os.path.join(folder, sha)
            if not os.path.exists(local):  # two samples of one file may be in flight at once: each its own part
                part = f"{local}.{uuid.uuid4().hex}.part"
                blobs.fs.get_file(blobs.path(sha), part)
                os.replace(part, local)
            return dataclasses.replace(sample, image=dataclasses.replace(sample.image, path=local))

        def stream() -> Iterator[Sample]:
            pending: collections.deque[Future[Sample]] = collections.deque()
            for sample in samples:
                pending.append(pool.submit(fetch, sample))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

        yield stream()

"""API keys of the HTTP server: the one writer of `api_key` rows.

    from visionloop.store import keys
    info, token = keys.create(store, scopes=["predict"], name="my app", rate_limit=600)   # token shown once
    keys.find(store, token)          # KeyInfo, or None for an unknown, malformed or revoked token
    keys.revoke(store, info.prefix)

A token is `vl_<prefix>_<secret>`: the prefix (8 hex digits) is its public id, the secret 32 random bytes
(URL-safe base64). Only SHA-256 of the whole token is stored. `find` hashes and compares in constant time,
and hashes a dummy when the prefix is unknown, so the time taken does not say which prefixes exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.store.project import Store
from visionloop.store.schema import ApiKeyRow, utcnow

SCOPES = ("predict", "upload", "admin")  # admin implies the others
TOKEN = re.compile(r"^vl_([0-9a-f]{8})_[A-Za-z0-9_-]{20,64}$")
_DUMMY = hashlib.sha256(b"vl_00000000_dummy").hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    prefix: str
    name: str
    scopes: tuple[str, ...]
    rate_limit: int | None
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None

    @classmethod
    def from_row(cls, r: ApiKeyRow) -> KeyInfo:
        return cls(r.id, r.prefix, r.name, tuple(r.scopes or ()), r.rate_limit, r.created_at.isoformat(),
                   r.last_used_at.isoformat() if r.last_used_at else None,
                   r.revoked_at.isoformat() if r.revoked_at else None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "name": self.name, "scopes": list(self.scopes),
                "rate_limit": self.rate_limit, "created_at": self.created_at, "last_used_at": self.last_used_at,
                "revoked_at": self.revoked_at, "active": self.active}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    if not scopes:
        raise VisionLoopError("a key needs at least one scope", hint=f"--scope one of {', '.join(SCOPES)}")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise VisionLoopError(f"unknown scope {bad[0]!r}", hint=f"scopes: {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def create(store: Store, *, scopes: list[str] | tuple[str, ...], name: str = "",
           rate_limit: int | None = None) -> tuple[KeyInfo, str]:
    """A new key; returns its info and the token (the only time the token exists outside the caller)."""
    scopes = _check_scopes(scopes)
    if rate_limit is not None and rate_limit <= 0:
        raise VisionLoopError(f"--rate-limit must be positive, not {rate_limit}",
                              hint="requests per minute; leave it out for the server's default")
    with store.session() as s, s.begin():
        while True:
            prefix = secrets.token_hex(4)
            if s.scalar(select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix)) is None:
                break
        token = f"vl_{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKeyRow(prefix=prefix, hash=hash_token(token), name=name, scopes=scopes, rate_limit=rate_limit)
        s.add(row)
        s.flush()
        return KeyInfo.from_row(row), token


def find(store: Store, token: str) -> KeyInfo | None:
    """The active key of `token`, or None (unknown, malformed, revoked). Constant time in the secret."""
    m = TOKEN.match(token or "")
    given = hash_token(token or "")
    with store.session() as s:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == m.group(1))) if m else None
    ok = hmac.compare_digest(given, row.hash if row is not None else _DUMMY)
    if row is None or not ok or row.revoked_at is not None:
        return None
    return KeyInfo.from_row(row)


def touch(store: Store, key_id: int) -> None:
    """Record that a key was used now (the server calls it at most once a minute per key)."""
    with store.session() as s, s.begin():
        s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=utcnow()))


def list_all(store: Store) -> list[KeyInfo]:
    with store.session() as s:
        return [KeyInfo.from_row(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]


def any_active(store: Store) -> bool:
    with store.session() as s:
        return s.scalar(select(ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None)).limit(1)) is not None


def revoke(store: Store, key: str | int) -> KeyInfo:
    """Revoke a key by its prefix (or id, or the whole token). Revoking twice is not an error."""
    text = str(key)
    if m := TOKEN.match(text):
        text = m.group(1)
    with store.session() as s, s.begin():
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == text))
        if row is None and text.isdigit():
            row = s.get(ApiKeyRow, int(text))
        if row is None:
            raise NotFoundError(f"no API key {key!r}", hint="see `visionloop keys list`")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        s.flush()
        return KeyInfo.from_row(row)

"""Finding stored things by what users call them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.core.errors import NotFoundError
from visionloop.store.schema import VersionRow


def find_id(s: Session, row: Any, ident: str | int, *, what: str, hint: str) -> int:
    """An id from a name, an id, or `latest` (the newest ready one), for any row with id, name and status."""
    if ident == "latest":
        found = s.scalar(select(row.id).where(row.status == "ready").order_by(row.id.desc()))
    elif isinstance(ident, int) or (isinstance(ident, str) and ident.isdigit() and
                                    s.scalar(select(row.id).where(row.name == ident)) is None):
        found = s.scalar(select(row.id).where(row.id == int(ident)))
    else:
        found = s.scalar(select(row.id).where(row.name == ident))
    if found is None:
        names = s.scalars(select(row.name).order_by(row.id)).all()
        raise NotFoundError(f"no {what} {ident!r} in this project",
                            hint=f"{what}s: {', '.join(names)}" if names else hint)
    return int(found)


def find_version_id(s: Session, version: str | int) -> int:
    """A version's id from its name, its id, or `latest`."""
    return find_id(s, VersionRow, version, what="version", hint="create one with `version create`")

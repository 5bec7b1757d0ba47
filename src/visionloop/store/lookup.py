"""Finding stored things by what users call them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.core.errors import NotFoundError
from visionloop.store.schema import VersionRow


def find_version_id(s: Session, version: str | int) -> int:
    """A version's id from its name, its id, or `latest`."""
    if version == "latest":
        vid = s.scalar(select(VersionRow.id).where(VersionRow.status == "ready").order_by(VersionRow.id.desc()))
    elif isinstance(version, int) or (isinstance(version, str) and version.isdigit() and
                                      s.scalar(select(VersionRow.id).where(VersionRow.name == version)) is None):
        vid = s.scalar(select(VersionRow.id).where(VersionRow.id == int(version)))
    else:
        vid = s.scalar(select(VersionRow.id).where(VersionRow.name == version))
    if vid is None:
        names = s.scalars(select(VersionRow.name).order_by(VersionRow.id)).all()
        raise NotFoundError(f"no version {version!r} in this project",
                            hint=f"versions: {', '.join(names)}" if names else "create one with `version create`")
    return int(vid)

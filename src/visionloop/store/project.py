"""The project: SQL metadata + content-addressed blobs, in one folder by default.

    my-project/
      visionloop.yaml     where the database and the blobs are, the schema revision
      visionloop.db       SQLite (WAL) unless visionloop.yaml names a PostgreSQL URL
      blobs/              content-addressed image bytes unless it names s3://…
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import ProjectError
from visionloop.core.sample import GPS, ImageRef, LabelState, Sample
from visionloop.store import codec, locking
from visionloop.store.blobs import BlobStore
from visionloop.store.schema import AnnotationRow, BatchRow, ClassRow, ImageRow

log = logging.getLogger(__name__)

CONFIG_NAME = "visionloop.yaml"
MIGRATIONS = Path(__file__).parent / "migrations"


def _engine(url: str, root: Path | None = None) -> Engine:
    sqlite, postgres = url.startswith("sqlite"), url.startswith(("postgresql", "postgres"))
    args: dict[str, Any] = ({"timeout": locking.lock_timeout()} if sqlite
                            else {"application_name": locking.application_name()} if postgres else {})
    try:
        engine = create_engine(url, connect_args=args, pool_pre_ping=postgres)
    except ModuleNotFoundError as e:  # the URL's driver (psycopg, psycopg2, pg8000…) is not installed
        raise ProjectError(f"cannot open the database {url.split('://')[0]}://…: no module named {e.name!r}",
                           path=root, hint="for PostgreSQL install visionloop[team] and write the URL as "
                           "postgresql+psycopg://user@host/db") from None
    except Exception as e:  # sqlalchemy.exc.ArgumentError: not a database URL
        raise ProjectError(f"not a database URL ({e})", path=root,
                           hint="e.g. postgresql+psycopg://user@host/db, or leave the default SQLite") from None
    if engine.dialect.name == "postgresql":
        locking.watch_postgres(engine, root)
    if engine.dialect.name == "sqlite":
        if engine.url.database not in (None, "", ":memory:"):
            locking.watch(engine, str(engine.url.database), root)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, root: Path | None = None) -> None:
    """Bring the database to the newest schema revision (the first time this process talks to it: a server
    that cannot be reached is one line naming it, not a traceback)."""
    from alembic import command
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except (OperationalError, InterfaceError) as e:
        if engine.dialect.name == "sqlite":
            raise
        reason = str(e.orig or e).strip().splitlines()[0] if str(e.orig or e).strip() else type(e.orig).__name__
        raise ProjectError(f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: {reason}",
                           path=root, hint="start the server, create the database (createdb), or fix `database` in "
                           "visionloop.yaml") from None


@dataclass
class Stats:
    images: int
    annotations: int
    classes: int
    blobs: int
    batches: int
    by_split: dict[str, dict[str, int]] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "annotations": self.annotations,
            "classes": self.classes,
            "blobs": self.blobs,
            "batches": self.batches,
            "by_split": self.by_split,
            "by_state": self.by_state,
            "by_kind": self.by_kind,
            "by_class": self.by_class,
        }


class Store:
    """A visionloop project. Build it with `Store.init` or `Store.open`, never at import."""

    def __init__(self, root: Path, db_url: str, blob_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.engine = _engine(db_url, root)
        self.blobs = BlobStore(blob_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- life cycle -----------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path, *, db_url: str | None = None, blob_url: str | None = None) -> Store:
        root = Path(root).resolve()
        config = root / CONFIG_NAME
        if config.exists():
            raise ProjectError("a visionloop project already exists here", path=config,
                               hint="open it instead, or pick an empty folder")
        if root.exists() and not root.is_dir():
            raise ProjectError("a file is in the way: a project is a folder", path=root,
                               hint="pick a new or empty folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProjectError(f"cannot create the project folder ({e.strerror or e})", path=root) from None
        settings = {
            "database": db_url or "sqlite:///visionloop.db",
            "blobs": blob_url or "blobs",
        }
        store = cls(root, *cls._resolve(root, settings))
        migrate(store.engine, root)
        config.write_text(yaml.safe_dump({"visionloop": 1, **settings}, sort_keys=False))
        log.info("created project %s", root)
        return store

    @classmethod
    def open(cls, root: str | Path) -> Store:
        root = Path(root).resolve()
        config = root / CONFIG_NAME
        if not config.exists():
            raise ProjectError("not a visionloop project (no visionloop.yaml)", path=root,
                               hint="run `visionloop init` there first, or pass --project")
        try:
            settings = yaml.safe_load(config.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark else None
            raise ProjectError(f"malformed YAML: {e}", path=config, where=where) from None
        if not isinstance(settings, dict) or "database" not in settings:
            raise ProjectError("missing the `database` setting", path=config)
        store = cls(root, *cls._resolve(root, settings))
        migrate(store.engine, root)
        store.blobs.sweep_staging()  # what killed imports left behind
        return store

    @staticmethod
    def _resolve(root: Path, settings: dict[str, Any]) -> tuple[str, str]:
        db = str(settings["database"])
        if db.startswith("sqlite:///") and not db.startswith("sqlite:////"):
            db = f"sqlite:///{root / db.removeprefix('sqlite:///')}"
        blobs = str(settings.get("blobs", "blobs"))
        if "://" not in blobs and not Path(blobs).is_absolute():
            blobs = str(root / blobs)
        return db, blobs

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as s:
            yield s

    # -- reading ----------------------------------------------------------------------------
    def classes(self) -> ClassMap:
        with self.session() as s:
            rows = s.scalars(select(ClassRow).order_by(ClassRow.position)).all()
        return ClassMap([
            ClassInfo(r.name, r.external_id, color=r.color, supercategory=r.supercategory,
                      keypoints=tuple(r.keypoints or ()), skeleton=tuple(tuple(p) for p in r.skeleton or ()))
            for r in rows
        ])

    def samples(self, *, split: str | None = None, chunk: int = 500) -> Iterator[Sample]:
        """Every image with its annotations, streamed in id order, `chunk` images at a time."""
        with self.session() as s:
            names = dict(s.execute(select(ClassRow.id, ClassRow.name)).all())
            last = 0
            while True:
                q = select(ImageRow).where(ImageRow.id > last).order_by(ImageRow.id).limit(chunk)
                if split is not None:
                    q = q.where(ImageRow.split == split)
                images = s.scalars(q).all()
                if not images:
                    return
                ids = [im.id for im in images]
                anns: dict[int, list[AnnotationRow]] = {i: [] for i in ids}
                for a in s.scalars(select(AnnotationRow).where(AnnotationRow.image_id.in_(ids))
                                   .order_by(AnnotationRow.id)):
                    anns[a.image_id].append(a)
                for im in images:
                    yield self._sample(im, anns[im.id], names)
                last = ids[-1]
                s.expunge_all()

    def _sample(self, im: ImageRow, anns: list[AnnotationRow], names: dict[int, str]) -> Sample:
        gps = GPS(im.gps_lat, im.gps_lon, im.gps_alt) if im.gps_lat is not None and im.gps_lon is not None else None
        ref = ImageRef(
            file_name=im.file_name, width=im.width, height=im.height,
            path=self.blobs.location(im.sha256),
            sha256=im.sha256, format=im.format, orientation=im.orientation, gps=gps,
            heading=im.heading, timestamp=im.taken_at, metadata=im.meta or {}, tags=tuple(im.tags or ()),
        )
        return Sample(ref, tuple(codec.annotation_from(a, codec.label_of(a.class_id, names)) for a in anns),
                      split=im.split, state=LabelState(im.state))

    def stats(self) -> Stats:
        with self.session() as s:
            images = s.scalar(select(func.count()).select_from(ImageRow)) or 0
            annotations = s.scalar(select(func.count()).select_from(AnnotationRow)) or 0
            classes = s.scalar(select(func.count()).select_from(ClassRow)) or 0
            blobs = s.scalar(select(func.count(func.distinct(ImageRow.sha256)))) or 0
            batches = s.scalar(select(func.count()).select_from(BatchRow)) or 0
            by_split: dict[str, dict[str, int]] = {}
            for split, n in s.execute(select(ImageRow.split, func.count()).group_by(ImageRow.split)):
                by_split.setdefault(split or "unassigned", {})["images"] = n
            for split, n in s.execute(
                select(ImageRow.split, func.count()).join(AnnotationRow).group_by(ImageRow.split)
            ):
                by_split.setdefault(split or "unassigned", {})["annotations"] = n
            by_state = dict(s.execute(select(ImageRow.state, func.count()).group_by(ImageRow.state)).all())
            by_kind = dict(s.execute(select(AnnotationRow.kind, func.count()).group_by(AnnotationRow.kind)).all())
            by_class = dict(s.execute(
                select(ClassRow.name, func.count(AnnotationRow.id))
                .join(AnnotationRow, AnnotationRow.class_id == ClassRow.id, isouter=True)
                .group_by(ClassRow.id, ClassRow.name, ClassRow.position).order_by(ClassRow.position)
            ).all())
        for v in by_split.values():
            v.setdefault("annotations", 0)
        return Stats(images, annotations, classes, blobs, batches, by_split, by_state, by_kind, by_class)

    def batches(self) -> list[BatchRow]:
        with self.session() as s:
            return list(s.scalars(select(BatchRow).order_by(BatchRow.id)))

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vl_testdata import DATASETS  # tests/vl_testdata.py: where the real data is

ROOT = Path(__file__).resolve().parents[1]


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.fail(f"real test data missing: {path} (CI has ../shared/datasets beside the checkout; "
                    "or set VISIONLOOP_DATASETS)")
    return path


@pytest.fixture(scope="session")
def raccoon() -> Path:
    return dataset("raccoon")


@pytest.fixture(scope="session")
def lund() -> Path:
    return dataset("lund")


@pytest.fixture(scope="session")
def voc_subset(raccoon):
    """make(dest, numbers, shift={n: px}) → a VOC folder of raccoon-<n> photos laid out like the original;
    `shift` moves the first box of some photos right by px (the same images, relabelled)."""
    import shutil

    def make(dest: Path, numbers, *, shift: dict[int, int] | None = None) -> Path:
        (dest / "images").mkdir(parents=True)
        (dest / "annotations").mkdir()
        for n in numbers:
            shutil.copy(raccoon / "images" / f"raccoon-{n}.jpg", dest / "images")
            xml = (raccoon / "annotations" / f"raccoon-{n}.xml").read_text()
            if shift and n in shift:
                a, b = xml.index("<xmin>") + len("<xmin>"), xml.index("</xmin>")
                xml = xml[:a] + str(int(xml[a:b]) + shift[n]) + xml[b:]
            (dest / "annotations" / f"raccoon-{n}.xml").write_text(xml)
        return dest

    return make


@pytest.fixture(autouse=True)
def _projects_on_postgres(monkeypatch):
    """VISIONLOOP_TEST_DATABASE=postgresql+psycopg://user@host:port/ runs the suite's projects on that server
    (a fresh database for each project a test creates without naming one): the suite as a check of team mode."""
    base = os.environ.get("VISIONLOOP_TEST_DATABASE")
    if not base:
        yield
        return
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    from visionloop.store import project

    url = make_url(base)
    admin = dict(host=url.host, port=url.port or 5432, user=url.username, dbname="postgres")
    original = project.Store.init.__func__

    def init(cls, root, *, db_url=None, blob_url=None):
        if db_url is None:
            name = f"t{uuid.uuid4().hex[:12]}"
            with psycopg.connect(**admin, autocommit=True) as c:
                c.execute(f"CREATE DATABASE {name}")
            db_url = url.set(database=name).render_as_string(hide_password=False)
        return original(cls, root, db_url=db_url, blob_url=blob_url)

    monkeypatch.setattr(project.Store, "init", classmethod(init))
    yield

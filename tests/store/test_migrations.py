"""The migrations and the ORM models agree (what `alembic check` checks), and upgrade/downgrade both work."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from visionloop.store import Store
from visionloop.store.schema import Base


def test_models_match_migrations(tmp_path):
    store = Store.init(tmp_path / "p")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    names = set(inspect(store.engine).get_table_names())
    assert {"batch", "blob", "image", "class", "annotation", "lineage", "change", "alembic_version"} <= names


def test_downgrade_to_base_and_back(tmp_path):
    from alembic import command

    from visionloop.store.project import _alembic_config

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
        command.downgrade(_alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    assert "annotation" in inspect(engine).get_table_names()

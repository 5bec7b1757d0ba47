"""`visionloop gc`: unreferenced blobs (an undone import's, a publish cut short by a kill) go, with their bytes
reported; referenced ones and young ones stay; every blob column of the schema is known to gc."""

from __future__ import annotations

import hashlib
import json
import os
import time

from typer.testing import CliRunner

from visionloop.cli.main import app
from visionloop.ingest import import_dataset, undo_batch
from visionloop.store import Store
from visionloop.store.gc import DERIVED, REFERENCES, collect
from visionloop.store.schema import Base


def _age(root, seconds=3600):
    past = time.time() - seconds
    for dirpath, _, files in os.walk(root / "blobs"):
        for f in files:
            os.utime(os.path.join(dirpath, f), (past, past))


def _files(root):
    return sorted(f"{d[-2:]}{f}" for d, _, fs in os.walk(root / "blobs") for f in fs if ".staging" not in d)


def test_every_blob_column_is_a_gc_reference():
    blob_columns = {(t.name, c.name) for t in Base.metadata.tables.values() for c in t.columns
                    if c.name.endswith("sha256") and t.name != "blob"}
    assert blob_columns == set(REFERENCES) | set(DERIVED)
    assert not set(REFERENCES) & set(DERIVED)


def test_gc_removes_what_an_undone_import_left(raccoon, voc_subset, tmp_path):
    root = tmp_path / "p"
    with Store.init(root) as store:
        import_dataset(store, voc_subset(tmp_path / "a", [1, 2, 3]))
        kept = _files(root)
        b = import_dataset(store, voc_subset(tmp_path / "b", [4, 5])).batch_id
        undo_batch(store, b)
        extra = sorted(set(_files(root)) - set(kept))
        assert len(extra) == 2
        sizes = sum((raccoon / "images" / f"raccoon-{n}.jpg").stat().st_size for n in (4, 5))
        young = collect(store, dry_run=True)
        assert young.files_removed == 0 and young.kept_recent == 2
        _age(root)
        # a publish cut short: a blob file no row knows, and a temporary file of an interrupted put
        orphan = b"not referenced"
        sha = hashlib.sha256(orphan).hexdigest()
        (root / "blobs" / sha[:2]).mkdir(exist_ok=True)
        (root / "blobs" / sha[:2] / sha[2:]).write_bytes(orphan)
        (root / "blobs" / sha[:2] / f"{sha[2:]}.abc.tmp").write_bytes(b"half")
        _age(root)
        dry = collect(store, dry_run=True)
        assert (dry.files_removed, dry.bytes_removed, dry.temporary_removed) == (3, sizes + len(orphan), 1)
        assert len(_files(root)) == len(kept) + 4  # a dry run removes nothing
    r = CliRunner().invoke(app, ["gc", "-p", str(root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["files_removed"], out["bytes_removed"], out["rows_removed"]) == (3, sizes + len(orphan), 2)
    assert _files(root) == kept
    with Store.open(root) as store:  # what the project refers to is all there and readable
        assert store.stats().images == 3
        for sample in store.samples():
            assert sample.image.path and os.path.getsize(sample.image.path) > 0


def test_gc_drops_the_embeddings_of_blobs_it_removes(raccoon, voc_subset, tmp_path):
    """An embedding is keyed by its image's blob but does not keep it alive: gc removes both together."""
    from sqlalchemy import select

    from visionloop.store.schema import EmbeddingRow, ImageRow

    root = tmp_path / "p"
    with Store.init(root) as store:
        import_dataset(store, voc_subset(tmp_path / "a", [1, 2]))
        b = import_dataset(store, voc_subset(tmp_path / "b", [3])).batch_id
        with store.session() as s, s.begin():
            shas = sorted(s.scalars(select(ImageRow.sha256)))
            for sha in shas:
                s.add(EmbeddingRow(sha256=sha, embedder="e@224", dim=2, vector=b"\0" * 8))
        undo_batch(store, b)
        _age(root)
        collect(store)
        with store.session() as s:
            left = sorted(s.scalars(select(EmbeddingRow.sha256)))
            kept = sorted(s.scalars(select(ImageRow.sha256)))
    assert len(shas) == 3 and len(kept) == 2 and left == kept

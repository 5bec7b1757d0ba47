"""Captions in the project: stored as annotations with no class (class_id NULL), read back exactly, never a class,
counted apart by health; and migration 0013, which turns the `meta["captions"]` earlier readers left on images into
caption annotations with the digests an import computes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from visionloop.core import Annotation, Caption, LabelState, Sample
from visionloop.demo import synthetic
from visionloop.formats import registry
from visionloop.formats.base import ImageMode
from visionloop.ingest import import_dataset
from visionloop.store import Store, codec
from visionloop.store.project import _alembic_config
from visionloop.store.schema import AnnotationRow, ClassRow, ImageRow

TEXTS = {0: ("a red square and a disc", "shapes on grey"), 1: ("nothing but grey",)}


def _cap(text: str) -> Annotation:
    return Annotation("", Caption(text))


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, list[Sample]]:
    """Four shapes images in Datumaro JSON: the first with its objects and two captions, the second with one caption
    and no object, the others objects only."""
    samples = []
    for i, s in enumerate(synthetic.shapes(4, folder=tmp_path / "render", splits=(("train", 1.0),))):
        caps = tuple(_cap(t) for t in TEXTS.get(i, ()))
        samples.append(Sample(s.image, (() if i == 1 else s.annotations) + caps, split=s.split))
    registry.write(samples, tmp_path / "dm", format="datumaro", classes=synthetic.classes())
    return tmp_path / "dm", samples


def _state(samples: list[Sample]) -> dict[str, tuple]:
    return {Path(s.image.file_name).name: (s.state, s.annotations) for s in samples}


def test_import_round_trip_exact(dataset, tmp_path: Path) -> None:
    src, written = dataset
    store = Store.init(tmp_path / "p")
    report = import_dataset(store, src)
    assert report.counts["annotations_added"] == sum(len(s.annotations) for s in written)
    assert "" not in report.classes and store.classes().names == synthetic.classes().names
    with store.session() as s:
        caption_rows = s.execute(select(AnnotationRow.kind, AnnotationRow.class_id, AnnotationRow.data)
                                 .where(AnnotationRow.kind == "caption").order_by(AnnotationRow.id)).all()
        assert [(k, c, d) for k, c, d in caption_rows] == [("caption", None, {"text": t}) for t in (*TEXTS[0],
                                                                                                   *TEXTS[1])]
        assert s.scalar(select(func.count()).select_from(ClassRow).where(ClassRow.name == "")) == 0
    back = list(store.samples())
    assert _state(back) == {Path(s.image.file_name).name: (LabelState.ANNOTATED, s.annotations) for s in written}
    stats = store.stats()
    assert stats.by_kind["caption"] == 3 and "" not in stats.by_class and stats.classes == 3
    # the digests are what the importer computes: importing again changes nothing
    assert import_dataset(store, src).batch_id is None
    store.close()
    from typer.testing import CliRunner

    from visionloop.cli.main import app

    out = CliRunner().invoke(app, ["stats", "-p", str(tmp_path / "p")])
    assert out.exit_code == 0 and "caption 3" in out.stdout and "3 classes" in out.stdout


def test_health_counts_captions_apart(dataset, tmp_path: Path) -> None:
    from visionloop.health import check

    src, written = dataset
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    report = check(store, duplicates_search=False)
    objects = sum(1 for s in written for a in s.annotations if not a.is_caption)
    assert report.counts["captions"] == 3 and report.counts["annotations"] == objects
    assert report.counts["by_split"]["train"]["captions"] == 3
    assert [c.name for c in report.classes] and "" not in [c.name for c in report.classes]
    checks = {f.check for f in report.findings}
    assert "annotated_without_annotations" not in checks  # the captioned image without objects is labelled
    assert not any("unknown class" in f.message for f in report.findings)
    store.close()


def test_versions_keep_captions_and_train_without_them(dataset, tmp_path: Path) -> None:
    from visionloop.versions import create_version
    from visionloop.versions.api import export_version
    from visionloop.versions.dataset import VersionDataset

    src, written = dataset
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    info = create_version(store, {"schema": 1, "seed": 0, "split": {"mode": "keep"}}, workers=0)
    assert info.counts["by_kind"]["caption"] == 3 and "" not in info.counts["by_class"]
    report = export_version(store, info.name, tmp_path / "caps", format="coco_captions", images=ImageMode.NONE)
    assert report.annotations == {"caption": 3}
    back = {Path(s.image.file_name).name: [a.geometry.text for a in s.annotations if a.is_caption]
            for s in registry.read(tmp_path / "caps")}
    assert sorted(t for v in back.values() for t in v) == sorted((*TEXTS[0], *TEXTS[1]))
    ds = VersionDataset(store, info.name, split="train")
    for i in range(len(ds)):
        sample = ds.sample(i)
        target = ds.target(sample, i, sample.image.height, sample.image.width)
        assert len(target["labels"]) == sum(1 for a in sample.annotations if not a.is_caption)
    store.close()


def test_migration_turns_metadata_captions_into_annotations(dataset, tmp_path: Path) -> None:
    """A project as earlier code left it (captions in `meta["captions"]`, the captioned image without objects
    NULL, digests without captions), made by migrating a project down to 0012, comes back by the upgrade as an
    import of today makes it."""
    from alembic import command

    src, _ = dataset
    store = Store.init(tmp_path / "p")
    import_dataset(store, src)
    with store.session() as s:
        want = {r.file_name: (r.state, r.ann_digest, r.meta) for r in s.scalars(select(ImageRow))}
    samples = _state(list(store.samples()))
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0012")
    with store.session() as s:
        old = {r.file_name: (r.state, r.meta) for r in s.scalars(select(ImageRow))}
        assert s.scalar(select(func.count()).select_from(AnnotationRow).where(AnnotationRow.kind == "caption")) == 0
    names = sorted(old)
    assert old[names[0]] == ("annotated", {**want[names[0]][2], "captions": list(TEXTS[0])})
    assert old[names[1]] == ("null", {**want[names[1]][2], "captions": list(TEXTS[1])})
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    with store.session() as s:
        got = {r.file_name: (r.state, r.ann_digest, r.meta) for r in s.scalars(select(ImageRow))}
    assert got == want
    assert _state(list(store.samples())) == samples
    assert import_dataset(store, src).batch_id is None  # nothing to change: the digests are the importer's
    store.close()


def test_codec_round_trips_a_caption() -> None:
    assert codec.annotations_digest([_cap("x")], "annotated") != codec.annotations_digest([_cap("y")], "annotated")
    row = codec.annotation_row(_cap("x"))
    assert (row["kind"], row["data"], row["x0"], row["area"]) == ("caption", {"text": "x"}, None, 0.0)
    assert codec.geometry_from("caption", (None,) * 4, {"text": "x"}) == Caption("x")
    assert codec.label_of(None, {1: "cat"}) == "" and codec.label_of(1, {1: "cat"}) == "cat"

"""Unlabelled images (issue 12, category 6): a folder of photos and nothing else is a dataset — the starting
point for labelling. The images are the raccoon dataset's real photos, laid out as a user's camera folder is
(flat, or nested by date)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionloop.core.errors import FormatError
from visionloop.core.sample import LabelState
from visionloop.formats import detect, read
from visionloop.formats.base import count_skips
from visionloop.formats.convert import convert
from visionloop.formats.registry import detect_all


def _photos(dest: Path, raccoon: Path, layout: dict[str, int]) -> Path:
    for rel, n in layout.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(raccoon / "images" / f"raccoon-{n}.jpg", dest / rel)
    return dest


def test_flat_and_nested_folders_read_as_unlabelled(raccoon: Path, tmp_path: Path) -> None:
    root = _photos(tmp_path / "cam", raccoon, {"b.jpg": 2, "a.jpg": 1, "2023/06/c.JPG": 3, "2023/07/d.png": 4})
    (root / "Thumbs.db").write_bytes(b"\0")
    assert detect(root) == "unlabelled"
    reader = read(root)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in samples] == [
        ("a.jpg", None, LabelState.MISSING, ()), ("b.jpg", None, LabelState.MISSING, ()),
        ("2023/06/c.JPG", None, LabelState.MISSING, ()), ("2023/07/d.png", None, LabelState.MISSING, ())]
    assert not reader.classes.names
    report = convert(root, tmp_path / "out", to="coco", workers=1)
    assert report.images == 4 and not report.annotations and not report.quarantined


def test_split_folders(raccoon: Path, tmp_path: Path) -> None:
    root = _photos(tmp_path / "ds", raccoon, {"train/a.jpg": 1, "train/b.jpg": 2, "valid/c.jpg": 3})
    assert detect(root) == "unlabelled"
    assert [(s.image.file_name, s.split) for s in read(root)] == [
        ("train/a.jpg", "train"), ("train/b.jpg", "train"), ("valid/c.jpg", "valid")]


def test_does_not_steal_what_another_format_could_mean(raccoon: Path, tmp_path: Path) -> None:
    classes = _photos(tmp_path / "cls", raccoon, {"cat/a.jpg": 1, "dog/b.jpg": 2})
    assert detect(classes) == "folders"
    # images/ + labels/ without a data.yaml, a mask folder, a stray text file: may be labels, so not claimed
    for name, layout, extra in (("yolo", {"images/a.jpg": 1}, "labels/a.txt"),
                                ("seg", {"images/a.jpg": 1, "masks/a.png": 2}, None),
                                ("notes", {"a.jpg": 1}, "a.txt")):
        root = _photos(tmp_path / name, raccoon, layout)
        if extra:
            (root / extra).parent.mkdir(parents=True, exist_ok=True)
            (root / extra).write_text("0 0.5 0.5 0.1 0.1\n")
        opinion = dict(detect_all(root))["unlabelled"]
        assert opinion.score == 0, name
    assert dict(detect_all(tmp_path / "notes"))["unlabelled"].reason == "a.txt is not an image (it may hold labels)"
    assert dict(detect_all(tmp_path / "seg"))["unlabelled"].reason == "masks/ is named for annotations"
    # read as unlabelled on purpose: the text file is counted as skipped; --strict refuses it
    with count_skips() as skips:
        assert len(list(read(tmp_path / "notes", format="unlabelled"))) == 1
    assert dict(skips) == {"file: not an image (unlabelled images are read alone)": 1}
    with pytest.raises(FormatError, match="a.txt: file not read"):
        convert(tmp_path / "notes", tmp_path / "o", from_="unlabelled", to="unlabelled", strict=True, workers=1)


def test_writer_counts_what_it_cannot_hold(raccoon: Path, voc_subset, tmp_path: Path) -> None:
    src = voc_subset(tmp_path / "voc", [1, 2])
    report = convert(src, tmp_path / "out", to="unlabelled", workers=1)
    assert report.images == 2 and report.files == 2
    assert report.dropped == {"box: unlabelled holds images only": 2}
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.jpg")) == ["raccoon-1.jpg", "raccoon-2.jpg"]


def test_reimport_without_labels_keeps_the_labels(raccoon: Path, voc_subset, tmp_path: Path) -> None:
    """Importing the photos alone into a project that has their labels must not wipe them (store.writer)."""
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    src = voc_subset(tmp_path / "voc", [1, 2])
    store = Store.init(tmp_path / "p")
    first = import_dataset(store, src)
    assert first.counts["images_added"] == 2 and first.counts["annotations_added"] == 2
    # the same photos as a folder of images: under their own names (raccoon-1.jpg) and under the same ones
    again = import_dataset(store, src / "images")
    assert again.format == "unlabelled" and again.batch_id is None
    assert again.counts == {"images_kept_labelled": 2}
    same_names = _photos(tmp_path / "same", raccoon, {"images/raccoon-1.jpg": 1, "images/raccoon-2.jpg": 2})
    third = import_dataset(store, same_names, format="unlabelled")
    assert third.counts == {"images_kept_labelled": 2}
    stats = store.stats()
    assert (stats.images, stats.annotations) == (2, 2)
    store.close()


def test_listed_by_visionloop_formats() -> None:
    import json

    from visionloop.cli.main import app

    out = CliRunner().invoke(app, ["formats", "--json"])
    assert out.exit_code == 0
    assert "unlabelled" in {f["name"] for f in json.loads(out.stdout)}


def test_every_writer_counts_a_label_state_it_cannot_keep(tmp_path: Path) -> None:
    """An image nobody labelled (MISSING) and one labelled empty (NULL), written and read back by each format:
    the state survives, or the write report counts the change (`missing -> null (...)`) — never a silent
    change (issue 12). `folders` drops images without a class (counted as a drop)."""
    from dataclasses import replace

    from visionloop.demo import synthetic
    from visionloop.formats import FORMATS, ImageMode, registry

    shapes = list(synthetic.shapes(3, folder=tmp_path / "render", splits=(("train", 1.0),)))
    for name in sorted(FORMATS):
        if name in ("folders", "clscsv", "cifar10", "cifar100", "mnist", "fashion_mnist"):
            # classification layouts: an image without a class has no place (dropped, counted)
            continue
        first = shapes[0]
        samples = [first, replace(shapes[1], annotations=(), state=LabelState.NULL),
                   replace(shapes[2], annotations=(), state=LabelState.MISSING)]
        out = tmp_path / name
        report = registry.write(samples, out, format=name, images=ImageMode.COPY)
        back = list(registry.read(out, format=name))
        assert len(back) == 3, name
        for want, got in zip(samples[1:], back[1:], strict=True):
            if got.state is not want.state:
                key = f"{want.state.value} -> {got.state.value}"
                counted = sum(n for k, n in report.converted.items()
                              if k.startswith(key) or k.startswith(f"image {want.state.value}")
                              or (want.state is LabelState.NULL and "empty image -> unlabelled" in k))
                assert counted >= 1, f"{name}: {key} not counted ({dict(report.converted)})"

"""Issue acceptance on real data: raccoon VOC → store → COCO / YOLO / VOC → store gives the same samples."""

from pathlib import Path

import pytest

from visionloop.core import Box
from visionloop.formats import detect
from visionloop.ingest import export_dataset, import_dataset
from visionloop.store import Store


@pytest.fixture(scope="module")
def project(raccoon, tmp_path_factory) -> Store:
    store = Store.init(tmp_path_factory.mktemp("raccoon") / "project")
    report = import_dataset(store, raccoon)
    assert report.format == "voc"
    return store


def _by_name(store: Store) -> dict[str, tuple]:
    out = {}
    for s in store.samples():
        key = Path(s.image.file_name).stem
        anns = sorted((a.label, a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1) for a in s.annotations)
        out[key] = (s.image.sha256, s.image.width, s.image.height, s.state, anns)
    return out


def test_detects_voc(raccoon):
    assert detect(raccoon) == "voc"


def test_import_counts_exact(project):
    s = project.stats()
    # 4 pairs of files in raccoon are byte-identical (checked with sha256sum): 200 images, 196 blobs
    assert (s.images, s.annotations, s.classes, s.blobs) == (200, 217, 1, 196)
    pairs: dict[str, list[str]] = {}
    for x in project.samples():
        pairs.setdefault(x.image.sha256, []).append(Path(x.image.file_name).name)
    assert sorted(sorted(v) for v in pairs.values() if len(v) > 1) == [
        ["raccoon-11.jpg", "raccoon-116.jpg"], ["raccoon-120.jpg", "raccoon-83.jpg"],
        ["raccoon-52.jpg", "raccoon-74.jpg"], ["raccoon-65.jpg", "raccoon-98.jpg"]]
    assert s.by_class == {"raccoon": 217}
    assert s.by_kind == {"box": 217}
    one = next(x for x in project.samples() if x.image.file_name.endswith("raccoon-1.jpg"))
    assert (one.image.width, one.image.height) == (650, 417)
    assert [a.geometry for a in one.annotations] == [Box(80, 87, 522, 408)]
    assert one.annotations[0].attributes == {"difficult": False, "truncated": False}


def test_import_twice_adds_nothing(project, raccoon):
    again = import_dataset(project, raccoon)
    assert again.batch_id is None
    assert again.counts["images_unchanged"] == 200
    assert again.counts.get("images_added", 0) == 0 and again.counts.get("annotations_added", 0) == 0
    s = project.stats()
    assert (s.images, s.annotations, s.batches) == (200, 217, 1)


@pytest.mark.parametrize("fmt, tolerance", [("coco", 0.0), ("voc", 0.0), ("yolo", 1e-6)])
def test_export_and_reimport_gives_same_samples(project, tmp_path, fmt, tolerance):
    out = tmp_path / f"export-{fmt}"
    report = export_dataset(project, out, format=fmt)
    assert report.images == 200 and report.annotations["box"] == 217 and not report.dropped
    back = Store.init(tmp_path / f"back-{fmt}")
    r = import_dataset(back, out)
    assert r.format == fmt
    assert r.counts["images_added"] == 200 and r.counts["annotations_added"] == 217
    assert back.classes().names == ["raccoon"]
    a, b = _by_name(project), _by_name(back)
    assert a.keys() == b.keys()
    for key in a:
        sha, w, h, state, anns = a[key]
        sha2, w2, h2, state2, anns2 = b[key]
        assert (sha, w, h, state) == (sha2, w2, h2, state2), key
        assert len(anns) == len(anns2), key
        for x, y in zip(anns, anns2, strict=True):
            assert x[0] == y[0]
            # YOLO keeps 6 decimals of the normalised value: at most 0.5e-6 × side in pixels
            for i, side in zip(range(1, 5), (w, h, w, h), strict=True):
                assert abs(x[i] - y[i]) <= tolerance * side + 1e-9, (key, x, y)

"""LabelMe 3.0 XML, the original MIT LabelMe (formats/labelme_xml.py).

The documented structure (LabelMe toolbox, LMread/LMwrite; datumaro/plugins/data_formats/labelme.py):
``Annotations/<folder>/<name>.xml`` with ``<annotation><filename><folder><imagesize><nrows><ncols>`` and per
object ``<name>``, ``<deleted>`` (1: deleted, not an object), ``<occluded>`` (yes/no), ``<attributes>``,
``<polygon><pt><x><y>``, ``<type>bounding_box`` for boxes; images in ``Images/<folder>/``.
Fixture: written by datumaro 1.13's ``label_me`` exporter (the writer CVAT's "LabelMe 3.0" export uses), with a
deleted object and a mask object added by hand in the same structure. Oracle: datumaro's own ``label_me`` importer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visionloop.core import Box, Polygon
from visionloop.formats import ImageMode, detect, labelme_xml, registry, voc
from visionloop.formats.base import count_skips


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from datumaro.components.annotation import AnnotationType, Bbox, LabelCategories
    from datumaro.components.annotation import Polygon as DmPolygon
    from datumaro.components.dataset import Dataset
    from datumaro.components.dataset_base import DatasetItem
    from datumaro.components.media import Image as DmImage

    out = tmp_path_factory.mktemp("labelme") / "export"
    img = np.zeros((40, 60, 3), np.uint8)
    Dataset.from_iterable([
        DatasetItem(id="street_1", subset="train", media=DmImage.from_numpy(img), annotations=[
            DmPolygon([1, 2, 30, 2, 30, 20, 5, 25], label=0, id=0, attributes={"occluded": True, "color": "red,dark"}),
            Bbox(10, 12, 20, 8, label=1, id=1, attributes={"occluded": False}),
        ]),
        DatasetItem(id="street_2", subset="train", media=DmImage.from_numpy(img)),
    ], categories={AnnotationType.label: LabelCategories.from_iterable(["car", "person"])}).export(
        str(out), "label_me", save_media=True)
    xml = out / "Annotations" / "train" / "street_1.xml"
    extra = ("<object><name>tree</name><deleted>1</deleted><occluded>no</occluded><id>2</id>"
             "<polygon><pt><x>1</x><y>1</y></pt><pt><x>9</x><y>1</y></pt><pt><x>9</x><y>9</y></pt></polygon></object>"
             "<object><name>sky</name><deleted>0</deleted><id>3</id><segm><mask>m.png</mask></segm></object>")
    xml.write_text(xml.read_text().replace("</annotation>", extra + "</annotation>"))
    from PIL import Image

    (out / "Masks" / "train").mkdir(parents=True)
    Image.new("RGB", (60, 40)).save(out / "Masks" / "train" / "m.png")  # datumaro's importer needs the file (RGB)
    return out


def test_read_datumaro_export(exported: Path) -> None:
    assert detect(exported) == "labelme_xml" and voc.detect(exported).score == 0
    with count_skips() as skips:
        samples = list(labelme_xml.read(exported))
    assert dict(skips) == {"object: marked <deleted>1": 1, "object: a <segm> mask (not read)": 1}
    assert [(s.image.file_name, s.split, s.image.size, len(s.annotations)) for s in samples] == [
        ("train/street_1.jpg", "train", (60, 40), 2), ("train/street_2.jpg", "train", (60, 40), 0)]
    a, b = samples[0].annotations
    assert (a.label, a.geometry, dict(a.attributes)) == (
        "car", Polygon(((1.0, 2.0, 30.0, 2.0, 30.0, 20.0, 5.0, 25.0),)), {"color": "red,dark", "occluded": True})
    assert (b.label, b.geometry, dict(b.attributes)) == ("person", Box(10.0, 12.0, 30.0, 20.0), {"occluded": False})
    assert samples[1].state.value == "null"


def test_agrees_with_datumaro_importer(exported: Path) -> None:
    from datumaro.components.annotation import AnnotationType
    from datumaro.components.dataset import Dataset

    ds = Dataset.import_from(str(exported), "label_me")
    names = [c.name for c in ds.categories()[AnnotationType.label]]
    theirs = {}
    for item in ds:
        anns = []
        for ann in item.annotations:
            if ann.type == AnnotationType.bbox:
                anns.append((names[ann.label], ("box", ann.x, ann.y, ann.x + ann.w, ann.y + ann.h)))
            elif ann.type == AnnotationType.polygon:  # (the mask object: not read by us, counted)
                anns.append((names[ann.label], ("polygon", *ann.points)))
        theirs[item.id] = sorted(anns)
    ours = {}
    for s in labelme_xml.read(exported):
        anns = []
        for a in s.annotations:
            g = a.geometry
            anns.append((a.label, ("box", g.x0, g.y0, g.x1, g.y1) if isinstance(g, Box) else ("polygon", *g.rings[0])))
        ours[Path(s.image.file_name).stem] = sorted(anns)
    assert ours == theirs


def test_round_trip_and_datumaro_reads_ours(exported: Path, tmp_path: Path) -> None:
    reader = labelme_xml.read(exported)
    samples = list(reader)
    out = tmp_path / "ours"
    report = registry.write(samples, out, format="labelme_xml", classes=reader.classes, images=ImageMode.COPY)
    assert report.images == 2 and report.annotations == {"polygon": 1, "box": 1} and not report.converted
    again = list(labelme_xml.read(out))
    assert [(s.image.file_name, s.split, [(a.label, a.geometry, dict(a.attributes)) for a in s.annotations])
            for s in again] == [(s.image.file_name, s.split, [(a.label, a.geometry, dict(a.attributes))
                                                              for a in s.annotations]) for s in samples]
    from datumaro.components.dataset import Dataset

    ds = Dataset.import_from(str(out), "label_me")
    item = ds.get("street_1", "train")
    assert sorted(a.type.name for a in item.annotations) == ["bbox", "polygon"]
    poly = next(a for a in item.annotations if a.type.name == "polygon")
    assert poly.points == [1.0, 2.0, 30.0, 2.0, 30.0, 20.0, 5.0, 25.0]
    assert poly.attributes == {"color": "red,dark", "occluded": True, "username": ""}


def test_images_none_uses_imagesize(exported: Path, tmp_path: Path) -> None:
    from visionloop.formats.convert import convert

    src = tmp_path / "noimg"
    (src / "Annotations").mkdir(parents=True)
    xml = (exported / "Annotations" / "train" / "street_1.xml").read_text()
    (src / "Annotations" / "street_1.xml").write_text(xml)
    report = convert(src, tmp_path / "out", to="coco", images="none")
    assert report.images == 1 and report.annotations == {"polygon": 1, "box": 1}
    with pytest.raises(Exception, match="image train/street_1.jpg not found"):
        list(labelme_xml.read(src))


def test_images_without_xml_are_missing_not_dropped(exported: Path, tmp_path: Path) -> None:
    """An image under Images/ that no XML names was not labelled: MISSING, never left out in silence (datumaro's
    importer lists only the XML files; the images are the dataset). Fixture: the datumaro export above with one
    image's XML removed and one image added without an XML."""
    import shutil

    from PIL import Image

    root = tmp_path / "ds"
    shutil.copytree(exported, root)
    (root / "Annotations" / "train" / "street_2.xml").unlink()
    Image.new("RGB", (60, 40)).save(root / "Images" / "train" / "street_3.jpg")
    (root / "Images" / "extra").mkdir()
    Image.new("RGB", (60, 40)).save(root / "Images" / "extra" / "z.png")
    with count_skips():
        samples = list(labelme_xml.read(root))
    assert [(s.image.file_name, s.split, s.state.value, len(s.annotations)) for s in samples] == [
        ("train/street_1.jpg", "train", "annotated", 2), ("extra/z.png", None, "missing", 0),
        ("train/street_2.jpg", "train", "missing", 0), ("train/street_3.jpg", "train", "missing", 0)]
    assert samples[2].image.path == str(root / "Images" / "train" / "street_2.jpg")

"""VOC person-layout <part> boxes and the per-class lists ImageSets/Main/<class>_<split>.txt (issue 12, category 3).

The fixture is written by datumaro (1.13, `Dataset.export(..., "voc", label_map=...)`, its VOC exporter
`datumaro/plugins/data_formats/voc/exporter.py`): a person with head and hand parts written as <part> inside
the <object>, and the classification lists `<class>_<split>.txt` (`<id>  1` / `<id> -1`), as the VOC devkit
lays them out. Before, the parts were ignored without a word and the lists were not read at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visionloop.core.geometry import Box, Label
from visionloop.core.sample import Annotation, LabelState
from visionloop.formats import voc
from visionloop.formats.base import count_skips
from visionloop.formats.convert import convert

dm = pytest.importorskip("datumaro")


def _datumaro_voc(out: Path) -> Path:
    from datumaro.components.annotation import Bbox
    from datumaro.components.annotation import Label as DmLabel
    from datumaro.components.dataset import Dataset
    from datumaro.components.media import Image

    label_map = {"background": [(0, 0, 0), [], []], "person": [(192, 128, 128), ["head", "hand", "foot"], []],
                 "dog": [(64, 0, 128), [], []]}
    names = ["background", "person", "dog", "head", "hand", "foot"]
    ds = Dataset.from_iterable([
        dm.DatasetItem(id="2007_000027", subset="train", media=Image.from_numpy(np.zeros((500, 486, 3), np.uint8)),
                       annotations=[Bbox(173, 100, 175, 250, label=1, group=1, id=1),
                                    Bbox(173, 100, 52, 51, label=3, group=1), Bbox(158, 187, 27, 37, label=4, group=1),
                                    DmLabel(2)]),
        dm.DatasetItem(id="2007_000032", subset="val", media=Image.from_numpy(np.zeros((20, 30, 3), np.uint8)),
                       annotations=[DmLabel(1)]),
    ], categories=names)
    ds.export(str(out), "voc", save_media=True, label_map=label_map)
    return out


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _datumaro_voc(tmp_path / "voc")


FLAGS = {"truncated": False, "occluded": False, "difficult": False}


def test_parts_and_class_lists_read_exactly(dataset: Path) -> None:
    assert "<part>" in (dataset / "Annotations" / "2007_000027.xml").read_text()  # the tool wrote parts
    with count_skips() as skips:
        reader = voc.read(dataset)
        one, two = list(reader)
    assert not skips
    assert one.image.file_name == "JPEGImages/2007_000027.jpg" and one.split == "train"
    # datumaro writes xmin=173.0 for its x=173 (0-based); VOC's 1-based pixels make that 172 here
    assert one.annotations == (
        Annotation("person", Box(172, 99, 348, 350), attributes={**FLAGS, "group": 1}),
        Annotation("head", Box(172, 99, 225, 151), attributes={"group": 1, "part_of": "person"}),
        Annotation("hand", Box(157, 186, 185, 224), attributes={"group": 1, "part_of": "person"}),
        Annotation("dog", Label()),  # dog_train.txt: `2007_000027  1`
    )
    # no XML: its labels and split come from person_val.txt alone
    assert two.image.file_name == "JPEGImages/2007_000032.jpg" and two.split == "val"
    assert two.annotations == (Annotation("person", Label()),) and two.state is LabelState.ANNOTATED
    assert set(reader.classes.names) == {"dog", "person", "head", "hand"}


def test_parts_written_back_as_parts(dataset: Path, tmp_path: Path) -> None:
    """The writer puts the parts back inside their object, in the structure datumaro wrote (compared element by
    element), and reading that again gives the same annotations."""
    import xml.etree.ElementTree as ET

    report = convert(dataset, tmp_path / "out", to="voc", workers=1)
    assert report.annotations == {"box": 3, "label": 2} and not report.dropped

    def parts(xml: Path) -> list[tuple[str, list[tuple[str, list[float]]]]]:
        return [(o.findtext("name"), [(p.findtext("name"), [float(p.findtext(f"bndbox/{t}")) for t in
                                                            ("xmin", "ymin", "xmax", "ymax")])
                                      for p in o.findall("part")]) for o in ET.parse(xml).getroot().findall("object")]

    name = "Annotations/2007_000027.xml"
    assert parts(tmp_path / "out" / name) == parts(dataset / name) == [
        ("person", [("head", [173, 100, 225, 151]), ("hand", [158, 187, 185, 224])])]
    first = list(voc.read(dataset))
    again = list(voc.read(tmp_path / "out"))
    assert [(s.split, s.annotations) for s in again] == [(s.split, s.annotations) for s in first]
    # the image labels went to the devkit's class lists, which datumaro reads back as the same labels
    assert (tmp_path / "out" / "ImageSets" / "Main" / "dog_train.txt").read_text() == "2007_000027  1\n"
    assert (tmp_path / "out" / "ImageSets" / "Main" / "person_val.txt").read_text() == "2007_000032  1\n"
    from datumaro.components.dataset import Dataset

    back = Dataset.import_from(str(tmp_path / "out"), "voc_classification")
    names = back.categories()[dm.AnnotationType.label]
    assert sorted((i.id, i.subset, [names[a.label].name for a in i.annotations]) for i in back
                  if i.subset != "trainval") == [
        ("2007_000027", "train", ["dog"]), ("2007_000032", "val", ["person"])]


def test_a_part_without_a_box_is_counted_and_strict_refuses(dataset: Path, tmp_path: Path) -> None:
    from visionloop.core.errors import FormatError

    xml = dataset / "Annotations" / "2007_000027.xml"
    xml.write_text(xml.read_text().replace("</object>", "<part><name>foot</name></part></object>"))
    report = convert(dataset, tmp_path / "o", to="datumaro", images="none", workers=1)
    assert report.skipped == {"part: no <name> or no <bndbox>": 1}
    assert report.annotations["box"] == 3
    with pytest.raises(FormatError) as e:
        convert(dataset, tmp_path / "o2", to="datumaro", images="none", strict=True, workers=1)
    assert str(e.value).startswith(f"{xml} (object 1 part 3): part not read")


def test_class_list_id_without_xml_or_image_is_counted(dataset: Path, tmp_path: Path) -> None:
    """datumaro writes an item with only a Label as no XML: its labels live in the lists alone. Without its image
    too they label nothing: counted (`skipped`), not dropped in silence."""
    (dataset / "JPEGImages" / "2007_000032.jpg").unlink()
    with count_skips() as skips:
        samples = list(voc.read(dataset))
    assert [s.image.file_name for s in samples] == ["JPEGImages/2007_000027.jpg"]
    assert dict(skips) == {"image-level labels: the ImageSets/Main class lists name an id with no XML and no image": 1}

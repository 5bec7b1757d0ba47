"""CVAT for images XML 1.1.

Fixture laid out as CVAT exports a task ("CVAT for images 1.1"), following
https://docs.cvat.ai/docs/other/xml_format/ (the "Annotation" example, whose mask RLE is reused
here verbatim) and https://docs.cvat.ai/docs/manual/advanced/formats/format-cvat/ (zip layout:
annotations.xml beside images/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats import cvat, cvat_video, detect
from visionloop.formats.base import ImageMode

W, H = 40, 30

SKELETON_SVG = (
    '&lt;line x1="36.87" y1="47.73" x2="86.87" y2="10.77" stroke="black" data-type="edge" data-node-from="2" '
    'stroke-width="0.5" data-node-to="3"&gt;&lt;/line&gt;&lt;line x1="25.16" y1="22.64" x2="36.87" y2="47.73" '
    'stroke="black" data-type="edge" data-node-from="1" stroke-width="0.5" data-node-to="2"&gt;&lt;/line&gt;'
    '&lt;circle r="1.5" stroke="black" fill="#b3b3b3" cx="25.16" cy="22.64" stroke-width="0.1" '
    'data-type="element node" data-element-id="1" data-node-id="1" data-label-name="1"&gt;&lt;/circle&gt;'
    '&lt;circle r="1.5" stroke="black" fill="#b3b3b3" cx="36.87" cy="47.73" stroke-width="0.1" '
    'data-type="element node" data-element-id="2" data-node-id="2" data-label-name="2"&gt;&lt;/circle&gt;'
    '&lt;circle r="1.5" stroke="black" fill="#b3b3b3" cx="86.87" cy="10.77" stroke-width="0.1" '
    'data-type="element node" data-element-id="3" data-node-id="3" data-label-name="3"&gt;&lt;/circle&gt;'
)

DOC_RLE = "3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3"
# the docs' mask (13×15), row by row: a disc
DOC_MASK = """
...#####.....
..#######....
.#########...
###########..
###########..
############.
############.
#############
#############
.############
.############
..###########
...#########.
....#######..
.....#####...
"""

ANNOTATIONS_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>4</id>
      <name>segmentation</name>
      <size>2</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <bugtracker></bugtracker>
      <created>2018-09-25 11:34:24.617558+03:00</created>
      <updated>2018-09-25 11:38:27.301183+03:00</updated>
      <subset>default</subset>
      <start_frame>0</start_frame>
      <stop_frame>1</stop_frame>
      <frame_filter></frame_filter>
      <segments>
        <segment>
          <id>4</id>
          <start>0</start>
          <stop>1</stop>
          <url>http://localhost:8080/?id=4</url>
        </segment>
      </segments>
      <owner>
        <username>admin</username>
        <email></email>
      </owner>
      <assignee></assignee>
      <labels>
        <label>
          <name>car</name>
          <color>#fa3253</color>
          <type>any</type>
          <attributes>
            <attribute>
              <name>model</name>
              <mutable>False</mutable>
              <input_type>text</input_type>
              <default_value></default_value>
              <values></values>
            </attribute>
            <attribute>
              <name>parked</name>
              <mutable>False</mutable>
              <input_type>checkbox</input_type>
              <default_value>false</default_value>
              <values>false</values>
            </attribute>
            <attribute>
              <name>doors</name>
              <mutable>False</mutable>
              <input_type>number</input_type>
              <default_value>2</default_value>
              <values>2
5
1</values>
            </attribute>
          </attributes>
        </label>
        <label>
          <name>traffic_line</name>
          <color>#33ddff</color>
          <type>polyline</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>wheel</name>
          <color>#34d1b7</color>
          <type>points</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>good_frame</name>
          <color>#ff6037</color>
          <type>tag</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>s1</name>
          <color>#8c78f0</color>
          <type>skeleton</type>
          <attributes>
          </attributes>
          <svg>{SKELETON_SVG}</svg>
        </label>
        <label>
          <name>1</name>
          <color>#d12345</color>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
        <label>
          <name>2</name>
          <color>#350dea</color>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
        <label>
          <name>3</name>
          <color>#479ffe</color>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
      </labels>
    </task>
    <dumped>2018-09-25 11:38:28.799808+03:00</dumped>
  </meta>
  <image id="0" name="filename000.jpg" width="{W}" height="{H}">
    <box label="car" source="manual" occluded="0" xtl="1.50" ytl="2.00" xbr="11.25" ybr="9.00" z_order="4">
      <attribute name="model">beetle</attribute>
      <attribute name="parked">true</attribute>
      <attribute name="doors">5</attribute>
    </box>
    <box label="car" source="auto" occluded="1" xtl="20.00" ytl="10.00" xbr="30.00" ybr="16.00" rotation="30.00" z_order="0" group_id="2">
    </box>
    <polygon label="car" source="manual" occluded="0" points="5.61,9.16;5.61,8.42;5.54,7.61;10.00,7.00" z_order="1">
    </polygon>
    <polyline label="traffic_line" source="manual" occluded="0" points="4.62,0.00;1.27,30.00" z_order="3">
    </polyline>
    <points label="wheel" source="manual" occluded="0" points="5.75,9.39;11.70,9.08;11.31,4.45" z_order="5">
    </points>
    <tag label="good_frame" source="manual">
    </tag>
    <skeleton label="s1" source="manual" z_order="0">
      <points label="1" occluded="0" source="manual" outside="0" points="5.47,9.48">
      </points>
      <points label="2" occluded="1" source="manual" outside="0" points="6.80,16.23">
      </points>
      <points label="3" occluded="0" source="manual" outside="1" points="12.58,6.28">
      </points>
    </skeleton>
    <mask label="car" source="semi-auto" occluded="0" rle="{DOC_RLE}" left="20" top="10" width="13" height="15" z_order="0">
    </mask>
  </image>
  <image id="1" name="filename001.jpg" width="{W}" height="{H}">
  </image>
</annotations>
"""


@pytest.fixture()
def task(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    (root / "images").mkdir(parents=True)
    for name in ("filename000.jpg", "filename001.jpg", "not_in_xml.jpg"):
        Image.new("RGB", (W, H), (10, 20, 30)).save(root / "images" / name)
    (root / "annotations.xml").write_text(ANNOTATIONS_XML, encoding="utf-8")
    return root


def _doc_mask() -> np.ndarray:
    rows = [r for r in DOC_MASK.strip().splitlines()]
    roi = np.array([[c == "#" for c in r] for r in rows], dtype=np.uint8)
    full = np.zeros((H, W), dtype=np.uint8)
    full[10:25, 20:33] = roi
    return full


def test_detect(task: Path) -> None:
    assert cvat.detect(task).score >= 0.9
    assert cvat_video.detect(task).score == 0
    assert detect(task) == "cvat"
    assert detect(task / "annotations.xml") == "cvat"
    assert cvat.detect(task / "images").score == 0


def test_detect_leaves_raccoon_to_voc(raccoon: Path) -> None:
    assert cvat.detect(raccoon).score == 0
    assert detect(raccoon) == "voc"


def test_read_exact(task: Path) -> None:
    reader = cvat.read(task)
    assert [(c.id, c.name) for c in reader.classes] == [(0, "car"), (1, "traffic_line"), (2, "wheel"),
                                                         (3, "good_frame"), (4, "s1")]
    assert reader.classes["s1"].keypoints == ("1", "2", "3")
    assert reader.classes["s1"].skeleton == ((2, 3), (1, 2))
    assert reader.classes["car"].color == "#fa3253"
    a, b, missing = list(reader)
    assert a.image.file_name == "filename000.jpg" and a.image.size == (W, H)
    assert a.image.path == str(task / "images" / "filename000.jpg")
    anns = a.annotations
    assert anns[0] == Annotation("car", Box(1.5, 2, 11.25, 9),
                                 attributes={"model": "beetle", "parked": True, "doors": 5, "z_order": 4},
                                 source=Source.HUMAN)
    assert anns[1] == Annotation("car", RotatedBox(25, 13, 10, 6, 30),
                                 attributes={"occluded": True, "group_id": 2}, source=Source.MODEL)
    assert anns[2].geometry == Polygon(((5.61, 9.16, 5.61, 8.42, 5.54, 7.61, 10.0, 7.0),))
    assert anns[2].attributes == {"z_order": 1}
    assert anns[3] == Annotation("traffic_line", Polyline((4.62, 0, 1.27, 30)), attributes={"z_order": 3},
                                 source=Source.HUMAN)
    assert anns[4].geometry == Keypoints((5.75, 9.39, 2, 11.7, 9.08, 2, 11.31, 4.45, 2))
    assert anns[4].attributes == {"z_order": 5, "cvat_shape": "points"}
    assert anns[5] == Annotation("good_frame", Label(), source=Source.HUMAN)
    assert anns[6] == Annotation("s1", Keypoints((5.47, 9.48, 2, 6.8, 16.23, 1, 0, 0, 0)), source=Source.HUMAN)
    mask = anns[7]
    assert mask.label == "car" and mask.source is Source.HUMAN and isinstance(mask.geometry, Mask)
    np.testing.assert_array_equal(mask.geometry.to_array(), _doc_mask())
    assert mask.geometry.area == 149
    assert b.annotations == () and b.state is LabelState.NULL
    assert missing.image.file_name == "not_in_xml.jpg" and missing.state is LabelState.MISSING


def test_roundtrip(task: Path, tmp_path: Path) -> None:
    first = [s for s in cvat.read(task) if s.state is not LabelState.MISSING]
    out = tmp_path / "out"
    report = cvat.write(first, out, classes=cvat.read(task).classes)
    assert report.images == 2 and report.files == 2
    assert dict(report.annotations) == {"box": 1, "rotated_box": 1, "polygon": 1, "polyline": 1, "keypoints": 2,
                                        "label": 1, "mask": 1}
    assert not report.dropped and not report.converted
    again = cvat.read(out)
    assert [(c.name, c.keypoints, c.skeleton) for c in again.classes] == \
        [(c.name, c.keypoints, c.skeleton) for c in cvat.read(task).classes]
    back = list(again)
    assert [s.image.file_name for s in back] == ["filename000.jpg", "filename001.jpg"]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [LabelState.ANNOTATED, LabelState.NULL]
    assert (out / "images" / "filename000.jpg").is_file()


def test_write_counts_conversions_and_drops(tmp_path: Path) -> None:
    Image.new("RGB", (W, H)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", width=W, height=H, path=str(tmp_path / "x.png"))
    two_rings = Polygon(((0, 0, 4, 0, 4, 4), (10, 10, 14, 10, 14, 14)))
    sample = Sample(ref, (
        Annotation("a", two_rings),
        Annotation("a", Box(0, 0, 3, 3), confidence=0.5, track_id=7),
        Annotation("a", Mask.from_array(np.zeros((H, W), np.uint8))),
        Annotation("a", Box(1, 1, 2, 2), attributes={"tags": ["x", "y"]}),
    ), split="train")
    out = tmp_path / "out"
    report = cvat.write([sample], out, images=ImageMode.COPY)
    assert report.converted == {"polygon with 2 parts -> 2 polygons": 1, "attribute list -> text": 1}
    assert report.dropped == {"confidence: CVAT XML has no score field": 1,
                              "track id: CVAT for images has no tracks (write cvat_video)": 1,
                              "mask: empty mask": 1}
    assert (out / "images" / "train" / "x.png").is_file()
    back = list(cvat.read(out))
    assert back[0].split == "train" and back[0].image.path == str(out / "images" / "train" / "x.png")
    assert [a.geometry for a in back[0].annotations] == [
        Polygon(((0, 0, 4, 0, 4, 4),)), Polygon(((10, 10, 14, 10, 14, 14),)), Box(0, 0, 3, 3), Box(1, 1, 2, 2)]
    assert back[0].annotations[3].attributes == {"tags": '["x","y"]'}


def test_exact_values_survive_more_than_two_decimals(tmp_path: Path) -> None:
    Image.new("RGB", (W, H)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", width=W, height=H, path=str(tmp_path / "x.png"))
    box = Box(1 / 3, 0.125, 10.1, 20 / 7)
    cvat.write([Sample(ref, (Annotation("a", box),))], tmp_path / "o", images=ImageMode.NONE)
    assert 'xtl="0.3333333333333333"' in (tmp_path / "o" / "annotations.xml").read_text()
    assert list(cvat.read(tmp_path / "o"))[0].annotations[0].geometry == box


@pytest.mark.parametrize(("change", "message", "where"), [
    ('xbr="11.25"', 'xbr="abc"', "<image id='0' name='filename000.jpg'> <box> 1"),
    (f'rle="{DOC_RLE}"', 'rle="3, 5"', "<image id='0' name='filename000.jpg'> <mask> 1"),
    ('points="5.75,9.39;11.70,9.08;11.31,4.45"', 'points="5.75;1"', "<points> 1"),
])
def test_bad_values_name_file_and_element(task: Path, change: str, message: str, where: str) -> None:
    xml = task / "annotations.xml"
    xml.write_text(ANNOTATIONS_XML.replace(change, message), encoding="utf-8")
    with pytest.raises(FormatError) as e:
        list(cvat.read(task))
    assert "annotations.xml" in str(e.value) and where in str(e.value)


def test_malformed_xml_names_line(task: Path) -> None:
    xml = task / "annotations.xml"
    xml.write_text(ANNOTATIONS_XML.replace("</polygon>", "</polygn>"), encoding="utf-8")
    with pytest.raises(FormatError) as e:
        list(cvat.read(task))
    assert "annotations.xml" in str(e.value) and "line " in (e.value.where or "")


def test_datumaro_reads_our_cvat(task: Path, tmp_path: Path) -> None:
    import datumaro as dm

    reader = cvat.read(task)
    cvat.write([s for s in reader if s.state is not LabelState.MISSING], tmp_path / "out", classes=reader.classes)
    dataset = dm.Dataset.import_from(str(tmp_path / "out"), "cvat")
    items = {item.id: item for item in dataset}
    assert sorted(items) == ["filename000", "filename001"]
    anns = items["filename000"].annotations
    kinds = [a.type.name for a in anns]
    # datumaro 1.13 reads a rotated box as rotated_bbox and a skeleton as its points
    assert {k: kinds.count(k) for k in ("bbox", "rotated_bbox", "polygon", "polyline", "label", "mask")} == \
        {"bbox": 1, "rotated_bbox": 1, "polygon": 1, "polyline": 1, "label": 1, "mask": 1}
    assert kinds.count("points") + kinds.count("skeleton") >= 2
    assert items["filename001"].annotations == []
    names = dataset.categories()[dm.AnnotationType.label]
    box = next(a for a in anns if a.type.name == "bbox")
    assert (names[box.label].name, box.get_bbox()) == ("car", [1.5, 2.0, 9.75, 7.0])
    assert box.attributes["model"] == "beetle" and box.attributes["parked"] is True
    mask = next(a for a in anns if a.type.name == "mask")
    assert int(mask.image.sum()) == 149

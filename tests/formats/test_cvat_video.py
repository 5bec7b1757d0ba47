"""CVAT for video XML 1.1 (tracks).

Fixture laid out as CVAT exports a video task ("CVAT for video 1.1"), following the
"Interpolation" example of https://docs.cvat.ai/docs/other/xml_format/ (polygon track with
outside frames, skeleton track) and https://docs.cvat.ai/docs/manual/advanced/formats/format-cvat/
(frames exported as images/frame_000000.PNG).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats import cvat, cvat_video, detect
from visionloop.formats.base import ImageMode

W, H = 40, 30
N = 8

TRACKS_XML = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>5</id>
      <name>interpolation</name>
      <size>{N}</size>
      <mode>interpolation</mode>
      <overlap>5</overlap>
      <bugtracker></bugtracker>
      <flipped>False</flipped>
      <created>2018-09-25 12:32:09.868194+03:00</created>
      <updated>2018-09-25 16:05:05.619841+03:00</updated>
      <start_frame>0</start_frame>
      <stop_frame>{N - 1}</stop_frame>
      <frame_filter></frame_filter>
      <labels>
        <label>
          <name>person</name>
          <color>#c06060</color>
          <type>any</type>
          <attributes>
            <attribute>
              <name>walking</name>
              <mutable>True</mutable>
              <input_type>checkbox</input_type>
              <default_value>false</default_value>
              <values>false</values>
            </attribute>
          </attributes>
        </label>
        <label>
          <name>car</name>
          <color>#2080c0</color>
          <type>any</type>
          <attributes>
          </attributes>
        </label>
        <label>
          <name>s1</name>
          <color>#8c78f0</color>
          <type>skeleton</type>
          <attributes>
          </attributes>
          <svg>&lt;line data-type="edge" data-node-from="1" data-node-to="2"&gt;&lt;/line&gt;&lt;circle data-type="element node" data-node-id="1" data-label-name="1"&gt;&lt;/circle&gt;&lt;circle data-type="element node" data-node-id="2" data-label-name="2"&gt;&lt;/circle&gt;</svg>
        </label>
        <label>
          <name>1</name>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
        <label>
          <name>2</name>
          <type>points</type>
          <attributes>
          </attributes>
          <parent>s1</parent>
        </label>
      </labels>
      <original_size>
        <width>{W}</width>
        <height>{H}</height>
      </original_size>
    </task>
    <dumped>2018-09-25 16:05:07.134046+03:00</dumped>
  </meta>
  <track id="0" label="car" source="manual">
    <polygon frame="0" keyframe="1" outside="0" occluded="0" points="3.24,2.13;3.23,2.27;3.47,2.37" z_order="0">
    </polygon>
    <polygon frame="1" keyframe="1" outside="1" occluded="0" points="3.24,2.13;3.23,2.27;3.47,2.37" z_order="0">
    </polygon>
    <polygon frame="6" keyframe="1" outside="0" occluded="0" points="30.53,23.79;31.21,20.79;35.26,20.63" z_order="0">
    </polygon>
    <polygon frame="7" keyframe="1" outside="1" occluded="0" points="30.53,23.79;31.21,20.79;35.26,20.63" z_order="0">
    </polygon>
  </track>
  <track id="3" label="person" source="auto" group_id="4">
    <box frame="2" keyframe="1" outside="0" occluded="0" xtl="1.00" ytl="2.00" xbr="11.00" ybr="12.00" z_order="0">
      <attribute name="walking">true</attribute>
    </box>
    <box frame="3" keyframe="0" outside="0" occluded="1" xtl="2.00" ytl="2.50" xbr="12.00" ybr="12.50" z_order="0">
      <attribute name="walking">true</attribute>
    </box>
    <box frame="4" keyframe="1" outside="0" occluded="0" xtl="3.00" ytl="3.00" xbr="13.00" ybr="13.00" z_order="0">
      <attribute name="walking">false</attribute>
    </box>
    <box frame="5" keyframe="1" outside="1" occluded="0" xtl="3.00" ytl="3.00" xbr="13.00" ybr="13.00" z_order="0">
      <attribute name="walking">false</attribute>
    </box>
  </track>
  <track id="1" label="s1" source="manual">
    <skeleton frame="0" keyframe="1" z_order="0">
      <points label="1" outside="0" occluded="0" keyframe="1" points="11.20,25.85">
      </points>
      <points label="2" outside="0" occluded="1" keyframe="1" points="12.78,13.32">
      </points>
    </skeleton>
    <skeleton frame="1" keyframe="1" z_order="0">
      <points label="1" outside="1" occluded="0" keyframe="1" points="11.20,25.85">
      </points>
      <points label="2" outside="1" occluded="0" keyframe="1" points="12.78,13.32">
      </points>
    </skeleton>
  </track>
</annotations>
"""


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    root = tmp_path / "video"
    (root / "images").mkdir(parents=True)
    for i in range(N):
        Image.new("RGB", (W, H), (i * 20, 0, 0)).save(root / "images" / f"frame_{i:06d}.PNG")
    (root / "annotations.xml").write_text(TRACKS_XML, encoding="utf-8")
    return root


def test_detect(video: Path) -> None:
    assert cvat_video.detect(video).score >= 0.9
    assert cvat.detect(video).score < 0.5
    assert detect(video) == "cvat_video"


def test_read_exact(video: Path) -> None:
    reader = cvat_video.read(video)
    assert reader.classes.names == ["person", "car", "s1"]
    assert reader.classes["s1"].keypoints == ("1", "2") and reader.classes["s1"].skeleton == ((1, 2),)
    samples = list(reader)
    assert [s.image.file_name for s in samples] == [f"frame_{i:06d}.PNG" for i in range(N)]
    assert all(s.image.size == (W, H) for s in samples)
    by = {s.image.metadata["frame"]: s for s in samples}
    car0 = Annotation("car", Polygon(((3.24, 2.13, 3.23, 2.27, 3.47, 2.37),)), source=Source.HUMAN, track_id=0)
    skel = Annotation("s1", Keypoints((11.2, 25.85, 2, 12.78, 13.32, 1)), source=Source.HUMAN, track_id=1)
    assert by[0].annotations == (car0, skel)
    for f in (1, 5, 7):
        assert by[f].annotations == () and by[f].state is LabelState.NULL
    person = [by[f].annotations for f in (2, 3, 4)]
    assert person == [
        (Annotation("person", Box(1, 2, 11, 12), attributes={"walking": True, "group_id": 4},
                    source=Source.MODEL, track_id=3),),
        (Annotation("person", Box(2, 2.5, 12, 12.5), attributes={"walking": True, "occluded": True, "group_id": 4},
                    source=Source.MODEL, track_id=3),),
        (Annotation("person", Box(3, 3, 13, 13), attributes={"walking": False, "group_id": 4},
                    source=Source.MODEL, track_id=3),),
    ]
    assert by[6].annotations[0].geometry == Polygon(((30.53, 23.79, 31.21, 20.79, 35.26, 20.63),))


def test_roundtrip(video: Path, tmp_path: Path) -> None:
    first = list(cvat_video.read(video))
    out = tmp_path / "out"
    report = cvat_video.write(first, out, classes=cvat_video.read(video).classes)
    assert report.images == N and report.files == N
    assert dict(report.annotations) == {"polygon": 2, "box": 3, "keypoints": 1}
    assert not report.dropped and not report.converted
    back = list(cvat_video.read(out))
    assert [s.image.file_name for s in back] == [s.image.file_name for s in first]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [s.state for s in first]


def test_untracked_shapes_become_single_tracks_that_end(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (W, H)).save(tmp_path / name)
    refs = [ImageRef(n, width=W, height=H, path=str(tmp_path / n)) for n in ("a.jpg", "b.jpg", "c.jpg")]
    samples = [
        Sample(refs[0], (Annotation("dog", Box(0, 0, 5, 5)), Annotation("dog", Label()),
                         Annotation("dog", Box(1, 1, 2, 2), track_id=9), Annotation("dog", Box(2, 2, 3, 3), track_id=9))),
        Sample(refs[1], ()),
        Sample(refs[2], (Annotation("dog", Box(1, 1, 4, 4), track_id=9),)),
    ]
    out = tmp_path / "out"
    report = cvat_video.write(samples, out, images=ImageMode.COPY)
    assert report.dropped == {"label: CVAT for video has no image-level tags": 1}
    assert report.converted == {"track split: two shapes of one track on the same frame": 1}
    assert sorted(p.name for p in (out / "images").iterdir()) == ["frame_000000.jpg", "frame_000001.jpg",
                                                                   "frame_000002.jpg"]
    back = list(cvat_video.read(out))
    assert [[(a.track_id, a.geometry) for a in s.annotations] for s in back] == [
        [(9, Box(1, 1, 2, 2)), (0, Box(2, 2, 3, 3)), (1, Box(0, 0, 5, 5))],
        [],
        [(9, Box(1, 1, 4, 4))],
    ]
    xml = (out / "annotations.xml").read_text()
    assert xml.count('outside="1"') == 3  # after frame 0 for track 9 and both single-frame tracks


def test_bad_frame_names_track(video: Path) -> None:
    (video / "annotations.xml").write_text(TRACKS_XML.replace('<box frame="3"', '<box frame="x"'), encoding="utf-8")
    with pytest.raises(FormatError) as e:
        list(cvat_video.read(video))
    assert "annotations.xml" in str(e.value) and "<track id='3'> <box frame='x'>" in str(e.value)


def test_images_xml_is_refused(tmp_path: Path) -> None:
    xml = tmp_path / "annotations.xml"
    xml.write_text('<?xml version="1.0"?><annotations><version>1.1</version><meta></meta>'
                   '<image id="0" name="a.jpg" width="2" height="2"></image></annotations>')
    with pytest.raises(FormatError, match="CVAT for images"):
        list(cvat_video.read(xml))

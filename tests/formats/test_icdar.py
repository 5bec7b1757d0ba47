"""ICDAR 2015 text localisation (formats/icdar.py).

Fixtures:
(1) Real release files, lines verbatim: ``gt_img_1.txt`` and ``gt_img_112.txt`` of
``ch4_training_localization_transcription_gt/`` as committed in zwenwang/CTPN_Pytorch @ 72eba21c (gt_img_1.txt)
and @ f1cf3a65 (gt_img_112.txt), CRLF line ends (the stored files are 272 and 885 characters: 265 + 7 and
862 + 23 line ends); the same seven lines of gt_img_1 are argman/EAST training_samples/img_1.txt @ 1c3f986c (LF).
The byte-order mark the release's files start with (https://rrc.cvc.uab.es/?ch=4&com=tasks) is added: the stored
copies do not show it. A transcription holding a comma (``100,000``) is open-mmlab/mmocr's IC15 parser test line
(tests/test_datasets/test_preparers/test_parsers/test_icdar_txt_parsers.py @ 82f81ff6).
(2) datumaro 1.13's own ``icdar_text_localization`` exporter (CVAT's "ICDAR Localization 1.0"), written in the
test; oracle: datumaro's own import of the same folder (and, where that import loses points, the exported dataset).
Line rules replayed from the challenge's evaluation script rrc_evaluation_funcs.py `get_tl_line_values`
(YanShuang17/icdar_2015_evaluation_script @ 5bde5981): eight coordinates, the rest of the line the transcription,
a quoted one unquoted with ``\\\\`` and ``\\"`` unescaped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, Polygon, Sample
from visionloop.formats import ImageMode, detect, icdar, registry
from visionloop.formats.base import count_skips

# zwenwang/CTPN_Pytorch @ 72eba21c gt_img_1.txt, verbatim (+ the release's BOM)
GT_1 = ("\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "493,115,519,115,519,131,493,131,[06]\r\n"
        "374,155,409,155,409,170,374,170,###\r\n"
        "492,151,551,151,551,170,492,170,62-03\r\n"
        "376,198,422,198,422,212,376,212,Carpark\r\n"
        "494,190,539,189,539,205,494,206,###\r\n"
        "374,1,494,0,492,85,372,86,###\r\n")
# zwenwang/CTPN_Pytorch @ f1cf3a65 gt_img_112.txt, verbatim (+ the release's BOM)
GT_112 = "\ufeff" + "".join(line + "\r\n" for line in (
    "761,200,856,147,867,167,772,220,###", "786,145,812,128,818,141,792,157,###",
    "816,126,839,112,843,125,821,138,###", "869,140,882,133,892,154,879,162,###",
    "1045,152,1057,147,1064,165,1052,170,###", "1164,216,1202,203,1212,228,1174,240,Get",
    "1208,204,1223,199,1232,221,1217,226,###", "1171,246,1223,232,1233,255,1182,269,with",
    "1138,164,1223,133,1231,152,1146,183,ASUS", "750,214,763,207,769,221,756,229,###",
    "698,339,737,325,741,340,702,354,###", "727,431,748,429,753,448,732,451,LTE",
    "684,439,719,434,723,452,688,457,###", "720,434,728,433,731,450,723,452,###",
    "658,379,739,358,744,372,663,394,###", "657,395,716,381,720,394,661,408,###",
    "650,358,673,346,678,361,654,373,###", "740,473,779,465,783,493,746,495,###",
    "693,463,751,457,752,464,695,470,###", "706,476,736,474,740,495,711,497,###",
    "1233,193,1277,184,1277,208,1239,220,###", "1231,226,1275,220,1276,242,1242,254,###",
    "1151,181,1232,154,1233,164,1152,191,###"))


def _release(root: Path) -> Path:
    for folder, n in (("ch4_training_images", 1), ("ch4_training_images", 2), ("ch4_training_images", 112),
                      ("ch4_test_images", 1)):
        p = root / folder / f"img_{n}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1280, 720)).save(p)
    gt = root / "ch4_training_localization_transcription_gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_bytes(GT_1.encode("utf-8"))
    (gt / "gt_img_2.txt").write_bytes(b"\xef\xbb\xbf")  # no words
    (gt / "gt_img_112.txt").write_bytes(GT_112.encode("utf-8"))
    (gt / "gt_img_9.txt").write_bytes(GT_1.encode("utf-8"))  # no img_9.jpg
    test_gt = root / "Challenge4_Test_Task1_GT"
    test_gt.mkdir()
    (test_gt / "gt_img_1.txt").write_text("\ufeff10,20,30,20,30,40,10,40,Test\n", encoding="utf-8")
    return root


def _oracle(text: str) -> list[tuple[tuple[float, ...], str]]:
    out = []
    for line in text.lstrip("\ufeff").splitlines():
        parts = line.split(",", 8)
        out.append((tuple(float(p) for p in parts[:8]), parts[8]))
    return out


def test_read_the_release_layout(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    assert detect(root) == "icdar"
    with count_skips() as skips:
        samples = list(icdar.read(root))
    assert dict(skips) == {"ground-truth file: no image of that name in ch4_training_images/": 1}
    assert [(s.image.file_name, s.split, s.state.value if s.state else None, len(s.annotations)) for s in samples] == [
        ("ch4_test_images/img_1.jpg", "test", "annotated", 1),
        ("ch4_training_images/img_1.jpg", "train", "annotated", 7),
        ("ch4_training_images/img_112.jpg", "train", "annotated", 23),
        ("ch4_training_images/img_2.jpg", "train", "null", 0),
    ]
    got = [(a.geometry.rings[0], a.attributes["transcription"]) for a in samples[1].annotations]
    assert got == _oracle(GT_1)
    assert got[0] == ((377.0, 117.0, 463.0, 117.0, 465.0, 130.0, 378.0, 130.0), "Genaxis Theatre")
    assert [t for _, t in got] == ["Genaxis Theatre", "[06]", "###", "62-03", "Carpark", "###", "###"]
    assert [a.attributes.get("dont_care", False) for a in samples[1].annotations] == [False, False, True, False,
                                                                                      False, True, True]
    assert {a.label for a in samples[1].annotations} == {"text"}
    img_112 = samples[2].annotations
    assert [(a.geometry.rings[0], a.attributes["transcription"]) for a in img_112] == _oracle(GT_112)
    assert [a.attributes["transcription"] for a in img_112 if not a.attributes.get("dont_care")] == [
        "Get", "with", "ASUS", "LTE"]
    assert sum(a.attributes.get("dont_care", False) for a in img_112) == 19


def test_a_transcription_with_commas_is_the_rest_of_the_line(tmp_path: Path) -> None:
    # open-mmlab/mmocr test_icdar_txt_parsers.py @ 82f81ff6: "374,155,409,155,409,170,374,170,100,000"
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (640, 480)).save(root / "images" / "img_1.jpg")
    (root / "gt").mkdir()
    (root / "gt" / "gt_img_1.txt").write_text("374,155,409,155,409,170,374,170,100,000\n", encoding="utf-8")
    (ann,) = next(iter(icdar.read(root))).annotations
    assert (ann.geometry.rings[0], ann.attributes) == ((374.0, 155.0, 409.0, 155.0, 409.0, 170.0, 374.0, 170.0),
                                                       {"transcription": "100,000"})


def test_images_gt_layout_round_trip_bytes(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    out = tmp_path / "out"
    reader = icdar.read(root)
    report = registry.write(reader, out, format="icdar", classes=reader.classes)
    assert report.images == 4 and report.annotations == {"polygon": 31} and not report.converted
    assert (out / "train" / "gt" / "gt_img_1.txt").read_bytes() == GT_1.replace("\r\n", "\n").encode("utf-8")
    assert (out / "train" / "gt" / "gt_img_112.txt").read_bytes() == GT_112.replace("\r\n", "\n").encode("utf-8")
    assert (out / "train" / "gt" / "gt_img_2.txt").read_bytes() == b"\xef\xbb\xbf"
    assert sorted(p.name for p in (out / "train" / "images").iterdir()) == ["img_1.jpg", "img_112.jpg", "img_2.jpg"]
    assert detect(out) == "icdar"
    again = list(icdar.read(out))
    assert [(s.image.file_name, s.split, len(s.annotations)) for s in again] == [
        ("test/images/img_1.jpg", "test", 1), ("train/images/img_1.jpg", "train", 7),
        ("train/images/img_112.jpg", "train", 23), ("train/images/img_2.jpg", "train", 0)]
    assert [a.attributes for a in again[1].annotations] == [a.attributes for a in list(icdar.read(root))[1].annotations]


def test_write_counts_conversions(tmp_path: Path) -> None:
    img = tmp_path / "a.jpg"
    Image.new("RGB", (50, 40)).save(img)
    sample = Sample(ImageRef("a.jpg", path=str(img)), (
        Annotation("word", Box(1, 2, 11, 7), {"transcription": "STOP"}),
        Annotation("text", Polygon(((0, 0, 10, 0, 10, 10, 5, 15, 0, 10),))),
    ))
    report = registry.write([sample], tmp_path / "out", format="icdar", images=ImageMode.NONE)
    assert dict(report.converted) == {
        "box -> polygon (4 corners)": 1, "class word -> text (ICDAR has one class)": 1,
        "polygon -> polygon (minimum-area rectangle: ICDAR holds 4 corners)": 1,
        "no transcription -> ### (do not care)": 1}
    lines = (tmp_path / "out" / "gt" / "gt_a.txt").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "1,2,11,2,11,7,1,7,STOP"
    assert lines[1].endswith(",###") and len(lines[1].split(",")) == 9


def test_malformed_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    (root / "ch4_training_localization_transcription_gt" / "gt_img_2.txt").write_text("1,2,3,4,5,6,7\n")
    with pytest.raises(FormatError) as e:
        list(icdar.read(root))
    assert (e.value.where, e.value.message) == ("line 1", "expected x1,y1,x2,y2,x3,y3,x4,y4,transcription")


def test_two_images_folders_without_split_words_are_refused(tmp_path: Path) -> None:
    for folder in ("images", "photos"):
        p = tmp_path / "ds" / folder / "img_1.jpg"
        p.parent.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(p)
    (tmp_path / "ds" / "gt").mkdir()
    (tmp_path / "ds" / "gt" / "gt_img_1.txt").write_text("1,1,5,1,5,5,1,5,a\n")
    with pytest.raises(FormatError, match=r"cannot tell which images folder gt/ annotates \(beside it: images, photos"):
        icdar.read(tmp_path / "ds")
    (tmp_path / "ds" / "photos" / "img_1.jpg").unlink()
    (tmp_path / "ds" / "photos").rmdir()
    assert detect(tmp_path / "ds") == "icdar"
    assert [len(s.annotations) for s in icdar.read(tmp_path / "ds")] == [1]


# ------------------------------------------------------------------ datumaro's icdar_text_localization export

CURVED = [10.0, 10.0, 50.0, 5.0, 90.0, 10.0, 90.0, 30.0, 10.0, 30.0]  # five points


def _datumaro_export(root: Path) -> Path:
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import Bbox
    from datumaro.components.annotation import Polygon as DmPolygon

    def image(value: int) -> object:
        return dm.Image.from_numpy(np.full((720, 1280, 3), value, np.uint8))

    dm.Dataset.from_iterable([
        dm.DatasetItem(id="img_1", subset="train", media=image(10), annotations=[
            DmPolygon([377, 117, 463, 117, 465, 130, 378, 130], attributes={"text": "Genaxis Theatre"}),
            DmPolygon([374, 155, 409, 155, 409, 170, 374, 170], attributes={"text": "###"}),
            DmPolygon([374, 155, 409, 155, 409, 170, 374, 170], attributes={"text": "100,000"}),
            DmPolygon([1, 1, 5, 1, 5, 5, 1, 5]),
            Bbox(2, 3, 10, 12, attributes={"text": "STOP"}),
            Bbox(1.5, 2.5, 7, 8),
        ]),
        dm.DatasetItem(id="img_2", subset="train", media=image(20)),
        dm.DatasetItem(id="img_3", subset="test", media=image(30), annotations=[
            DmPolygon(CURVED, attributes={"text": "curved"}), DmPolygon(CURVED)]),
        dm.DatasetItem(id="img_4", subset="default", media=image(40), annotations=[
            DmPolygon([0, 0, 8, 0, 8, 4, 0, 4], attributes={"text": "x"})]),
    ]).export(str(root), "icdar_text_localization", save_media=True)
    return root


def _ours(sample) -> list[tuple[str, tuple[float, ...], str | None]]:
    return [("box", (a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1)) if isinstance(a.geometry, Box)
            else ("polygon", a.geometry.rings[0]) for a in sample.annotations], \
        [a.attributes.get("transcription") for a in sample.annotations]


def test_datumaro_export_equals_datumaros_own_import(tmp_path: Path) -> None:
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import AnnotationType

    root = _datumaro_export(tmp_path / "dm")
    # what datumaro writes: <subset>/gt_<id>.txt beside <subset>/images/, quoted text, boxes space-separated
    assert (root / "train" / "gt_img_1.txt").read_text(encoding="utf-8").splitlines() == [
        '377.0,117.0,463.0,117.0,465.0,130.0,378.0,130.0,"Genaxis Theatre"',
        '374.0,155.0,409.0,155.0,409.0,170.0,374.0,170.0,"###"',
        '374.0,155.0,409.0,155.0,409.0,170.0,374.0,170.0,"100,000"',
        "1.0,1.0,5.0,1.0,5.0,5.0,1.0,5.0",
        '2.0 3.0 12.0 15.0 "STOP"',
        "1.5 2.5 8.5 10.5"]
    assert detect(root) == "icdar"
    with count_skips() as skips:
        ours = {Path(s.image.file_name).stem: s for s in icdar.read(root)}
    assert not skips
    oracle = {i.id: i for i in dm.Dataset.import_from(str(root), "icdar_text_localization")}
    assert sorted(ours) == sorted(oracle) == ["img_1", "img_2", "img_3", "img_4"]
    assert {k: s.split for k, s in ours.items()} == {"img_1": "train", "img_2": "train", "img_3": "test",
                                                     "img_4": None}
    assert {k: i.subset for k, i in oracle.items()} == {"img_1": "train", "img_2": "train", "img_3": "test",
                                                        "img_4": "default"}
    for name in ("img_1", "img_2", "img_4"):
        theirs = ([("box" if a.type == AnnotationType.bbox else "polygon", tuple(float(p) for p in a.points))
                   for a in oracle[name].annotations], [a.attributes.get("text") for a in oracle[name].annotations])
        assert _ours(ours[name]) == theirs, name
    assert _ours(ours["img_1"])[1] == ["Genaxis Theatre", "###", "100,000", None, "STOP", None]
    assert [a.attributes.get("dont_care", False) for a in ours["img_1"].annotations] == [False, True, False, False,
                                                                                           False, False]
    assert ours["img_2"].state.value == "null" and ours["img_1"].image.path.endswith("train/images/img_1.png")
    # five points: visionloop keeps all of them; datumaro's own import keeps the first four (its loss, pinned)
    assert _ours(ours["img_3"]) == ([("polygon", tuple(CURVED)), ("polygon", tuple(CURVED))], ["curved", None])
    assert [(tuple(a.points), a.attributes.get("text")) for a in oracle["img_3"].annotations] == [
        (tuple(CURVED[:8]), "curved"), (tuple(CURVED[:8]), None)]


def test_quoted_transcriptions_as_the_rrc_script_reads_them(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(root / "images" / "img_1.jpg")
    (root / "gt").mkdir()
    (root / "gt" / "gt_img_1.txt").write_text(
        '1,1,9,1,9,9,1,9,"say \\"hi\\""\n'  # rrc_evaluation_funcs: unquoted, \" -> "
        '1,1,9,1,9,9,1,9,"a\\\\b"\n'  # \\ -> \
        '38, 43, 920, 215, "Tiredness"\n'  # xmin, ymin, xmax, ymax, "text" (ICDAR 2013 boxes)
        "1,1,9,1,9,9,1,9,\n", encoding="utf-8")
    anns = next(iter(icdar.read(root))).annotations
    assert [a.attributes.get("transcription") for a in anns] == ['say "hi"', "a\\b", "Tiredness", ""]
    assert anns[2].geometry == Box(38, 43, 920, 215)
    # written back so that it reads the same
    out = tmp_path / "out"
    registry.write(icdar.read(root), out, format="icdar")
    again = next(iter(icdar.read(out))).annotations
    assert [a.attributes.get("transcription") for a in again] == ['say "hi"', "a\\b", "Tiredness", "###"]
    sample = Sample(ImageRef("a.jpg", path=str(root / "images" / "img_1.jpg")),
                    (Annotation("text", Box(1, 2, 11, 7), {"transcription": '"quoted"'}),))
    registry.write([sample], tmp_path / "out2", format="icdar", images=ImageMode.COPY)
    assert (tmp_path / "out2" / "gt" / "gt_a.txt").read_text(encoding="utf-8-sig") == '1,2,11,2,11,7,1,7,"\\"quoted\\""\n'
    assert next(iter(icdar.read(tmp_path / "out2"))).annotations[0].attributes["transcription"] == '"quoted"'


def test_a_box_with_unquoted_text_or_seven_numbers_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(root / "images" / "img_1.jpg")
    (root / "gt").mkdir()
    for line in ("38,43,920,215,Tiredness", "1,2,3,4,5,6,7"):
        (root / "gt" / "gt_img_1.txt").write_text(line + "\n", encoding="utf-8")
        with pytest.raises(FormatError) as e:
            list(icdar.read(root))
        assert (e.value.where, e.value.message) == ("line 1", "expected x1,y1,x2,y2,x3,y3,x4,y4,transcription")


# ------------------------------------------------- which rule a line of more than eight numbers reads by (issue 12)


def test_datumaro_layout_reads_lines_as_its_exporter_wrote_them(tmp_path: Path) -> None:
    # exporter.py IcdarTextLocalizationExporter: ",".join(str(p) for p in points) + ',"%s"' % text (no escaping)
    dm = pytest.importorskip("datumaro")
    from datumaro.components.annotation import Polygon as DmPolygon

    hexagon = [0.0, 0.0, 4.0, 0.0, 6.0, 2.0, 4.0, 4.0, 0.0, 4.0, -2.0, 2.0]
    root = tmp_path / "dm"
    dm.Dataset.from_iterable([dm.DatasetItem(
        id="img_1", subset="train", media=dm.Image.from_numpy(np.zeros((20, 30, 3), np.uint8)), annotations=[
            DmPolygon(hexagon), DmPolygon(CURVED),
            DmPolygon([1, 1, 9, 1, 9, 9, 1, 9], attributes={"text": "C:\\\\dir"}),  # two backslashes
            DmPolygon([1, 1, 9, 1, 9, 9, 1, 9], attributes={"text": 'say \\"hi\\"'}),
            DmPolygon(CURVED, attributes={"text": "a\\\\b"}),
        ])]).export(str(root), "icdar_text_localization", save_media=True)
    assert (root / "train" / "gt_img_1.txt").read_text(encoding="utf-8").splitlines() == [
        "0.0,0.0,4.0,0.0,6.0,2.0,4.0,4.0,0.0,4.0,-2.0,2.0",
        "10.0,10.0,50.0,5.0,90.0,10.0,90.0,30.0,10.0,30.0",
        '1.0,1.0,9.0,1.0,9.0,9.0,1.0,9.0,"C:\\\\dir"',
        '1.0,1.0,9.0,1.0,9.0,9.0,1.0,9.0,"say \\"hi\\""',
        '10.0,10.0,50.0,5.0,90.0,10.0,90.0,30.0,10.0,30.0,"a\\\\b"']
    (sample,) = icdar.read(root)
    assert [(a.geometry.rings[0], a.attributes) for a in sample.annotations] == [
        (tuple(hexagon), {}), (tuple(CURVED), {}),
        ((1.0, 1.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0), {"transcription": "C:\\\\dir"}),
        ((1.0, 1.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0), {"transcription": 'say \\"hi\\"'}),
        (tuple(CURVED), {"transcription": "a\\\\b"})]


def test_release_layout_line_of_float_numbers_only_is_refused(tmp_path: Path) -> None:
    # the same line outside datumaro's layout: ICDAR 2015 reads 4 corners + text "90.0,30.0,10.0,30.0"? no: refused
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (100, 50)).save(root / "images" / "img_1.jpg")
    (root / "gt").mkdir()
    (root / "gt" / "gt_img_1.txt").write_text("\ufeff1,1,9,1,9,9,1,9,Genaxis\n"
                                              "10.0,10.0,50.0,5.0,90.0,10.0,90.0,30.0,10.0,30.0\n", encoding="utf-8")
    assert detect(root) == "icdar"
    with pytest.raises(FormatError) as e:
        list(icdar.read(root))
    assert (Path(e.value.path).name, e.value.where, e.value.message) == (
        "gt_img_1.txt", "line 2", '10 numbers and no text: 4 corners and the transcription "10.0,30.0" (ICDAR 2015) '
                                  "or a polygon of 5 points without one (datumaro's export)")
    assert e.value.hint.startswith('quote the transcription (...,x4,y4,"text")')
    # quoted, it reads by the ICDAR 2015 rule
    (root / "gt" / "gt_img_1.txt").write_text('10.0,10.0,50.0,5.0,90.0,10.0,90.0,30.0,"10.0,30.0"\n',
                                              encoding="utf-8")
    (ann,) = next(iter(icdar.read(root))).annotations
    assert (ann.geometry.rings[0], ann.attributes) == ((10.0, 10.0, 50.0, 5.0, 90.0, 10.0, 90.0, 30.0),
                                                       {"transcription": "10.0,30.0"})


def test_integer_numbers_after_eight_are_text_in_either_layout(tmp_path: Path) -> None:
    # datumaro's exporter writes floats only, so integers are an ICDAR 2015 line (mmocr's "100,000") wherever it is
    root = tmp_path / "dm"
    (root / "train" / "images").mkdir(parents=True)
    Image.new("RGB", (640, 480)).save(root / "train" / "images" / "img_1.jpg")
    (root / "train" / "gt_img_1.txt").write_text("374,155,409,155,409,170,374,170,100,000\n"
                                                 '1,1,9,1,9,9,1,9,"a\\\\b"\n', encoding="utf-8")
    (sample,) = icdar.read(root)
    assert [(a.geometry.rings[0], a.attributes) for a in sample.annotations] == [
        ((374.0, 155.0, 409.0, 155.0, 409.0, 170.0, 374.0, 170.0), {"transcription": "100,000"}),
        ((1.0, 1.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0), {"transcription": "a\\\\b"})]
    assert sample.split == "train"

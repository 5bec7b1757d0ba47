"""TFRecord (TF Object Detection API) without TensorFlow: framing, tf.train.Example, label map, real data."""

from __future__ import annotations

import csv
import io
import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    ClassMap,
    FormatError,
    ImageRef,
    Keypoints,
    Label,
    LabelState,
    Mask,
    Polygon,
    RotatedBox,
    Sample,
)
from visionloop.core.geometry import polygon_to_mask
from visionloop.formats import detect, tfrecord


def _jpeg(width: int, height: int, color: tuple[int, int, int] = (20, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="JPEG")
    return buf.getvalue()


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _coords(box: Box) -> tuple[float, float, float, float]:
    return (box.x0, box.y0, box.x1, box.y1)


# --------------------------------------------------------------------- an independent, hand-made encoder
# Written from the protobuf encoding guide (https://protobuf.dev/programming-guides/encoding/) and
# tensorflow/core/example/feature.proto, independently of the module, so the fixture does not test
# our encoder with itself. Unpacked floats/ints are what some non-TF writers produce.


def _v(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def _ld(field: int, payload: bytes) -> bytes:
    return _v(field << 3 | 2) + _v(len(payload)) + payload


def _bytes_feature(*values: bytes) -> bytes:
    return _ld(1, b"".join(_ld(1, v) for v in values))


def _float_feature(*values: float, packed: bool = True) -> bytes:
    if packed:
        return _ld(2, _ld(1, struct.pack(f"<{len(values)}f", *values)))
    return _ld(2, b"".join(_v(1 << 3 | 5) + struct.pack("<f", v) for v in values))


def _int_feature(*values: int, packed: bool = True) -> bytes:
    if packed:
        return _ld(3, _ld(1, b"".join(_v(v) for v in values)))
    return _ld(3, b"".join(_v(1 << 3 | 0) + _v(v) for v in values))


def _example(features: dict[str, bytes]) -> bytes:
    return _ld(1, b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, f)) for k, f in features.items()))


def _crc32c(data: bytes) -> int:  # bitwise, straight from the Castagnoli polynomial
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def od_api_dataset(tmp_path: Path) -> Path:
    """Laid out as the TF OD API tools write it: data/{train,val}.record + data/label_map.pbtxt.

    Keys as in object_detection/dataset_tools/create_coco_tf_record.py and create_pascal_tf_record.py
    (https://github.com/tensorflow/models/blob/master/research/object_detection/g3doc/using_your_own_dataset.md).
    """
    root = tmp_path / "data"
    root.mkdir()
    (root / "label_map.pbtxt").write_text(
        "# the pets-style label map\n"
        "item {\n  id: 1\n  name: 'cat'\n}\n"
        'item {\n  name: "dog"\n  id: 3\n  display_name: "Dog"\n}\n'
    )
    mask = np.zeros((40, 100), np.uint8)
    mask[10:20, 30:50] = 1
    a = _example({
        "image/height": _int_feature(40),
        "image/width": _int_feature(100),
        "image/filename": _bytes_feature(b"a.jpg"),
        "image/source_id": _bytes_feature(b"17"),
        "image/key/sha256": _bytes_feature(b"whatever"),
        "image/encoded": _bytes_feature(_jpeg(100, 40)),
        "image/format": _bytes_feature(b"jpeg"),
        "image/object/bbox/xmin": _float_feature(0.1, 0.3),
        "image/object/bbox/xmax": _float_feature(0.25, 0.5),
        "image/object/bbox/ymin": _float_feature(0.0, 0.25),
        "image/object/bbox/ymax": _float_feature(0.5, 0.5),
        "image/object/class/text": _bytes_feature(b"cat", b"dog"),
        "image/object/class/label": _int_feature(1, 3),
        "image/object/difficult": _int_feature(0, 1),
        "image/object/truncated": _int_feature(1, 0),
        "image/object/view": _bytes_feature(b"Frontal", b"Unspecified"),
        "image/object/mask": _bytes_feature(_png(np.zeros((40, 100))), _png(mask)),
    })
    b = _example({  # no class/text (labels via the label map), unpacked lists, a PNG image
        "image/height": _int_feature(20, packed=False),
        "image/width": _int_feature(50, packed=False),
        "image/filename": _bytes_feature(b"sub/b.png"),
        "image/encoded": _bytes_feature(_png(np.full((20, 50), 7))),
        "image/format": _bytes_feature(b"png"),
        "image/object/bbox/xmin": _float_feature(0.5, packed=False),
        "image/object/bbox/xmax": _float_feature(1.0, packed=False),
        "image/object/bbox/ymin": _float_feature(0.25, packed=False),
        "image/object/bbox/ymax": _float_feature(0.75, packed=False),
        "image/object/class/label": _int_feature(3, packed=False),
        "image/class/text": _bytes_feature(b"cat"),
        "image/class/label": _int_feature(1),
    })
    empty = _example({
        "image/height": _int_feature(20),
        "image/width": _int_feature(50),
        "image/encoded": _bytes_feature(_jpeg(50, 20)),
        "image/format": _bytes_feature(b"jpeg"),
        "image/source_id": _bytes_feature(b"empty-1"),
        "image/object/bbox/xmin": _float_feature(),
        "image/object/bbox/xmax": _float_feature(),
        "image/object/bbox/ymin": _float_feature(),
        "image/object/bbox/ymax": _float_feature(),
        "image/object/class/text": _bytes_feature(),
        "image/object/class/label": _int_feature(),
    })
    (root / "train.record").write_bytes(_record(a) + _record(b))
    (root / "val.record").write_bytes(_record(empty))
    return root


def test_read_od_api_layout(od_api_dataset: Path) -> None:
    reader = tfrecord.read(od_api_dataset)
    assert [(c.name, c.id) for c in reader.classes] == [("cat", 1), ("dog", 3)]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state, s.image.width, s.image.height) for s in samples] == [
        ("a.jpg", "train", LabelState.ANNOTATED, 100, 40),
        ("sub/b.png", "train", LabelState.ANNOTATED, 50, 20),
        ("empty-1.jpg", "val", LabelState.NULL, 50, 20),
    ]
    a, b, empty = samples
    assert a.image.metadata == {"source_id": "17"}
    assert a.image.format == "jpeg"
    with Image.open(a.image.path) as im:  # the extracted bytes are the embedded JPEG
        assert im.size == (100, 40) and im.format == "JPEG"
    cat, dog = a.annotations
    assert (cat.label, _coords(cat.geometry)) == ("cat", (10.0, 0.0, 25.0, 20.0))  # empty mask -> box
    assert cat.attributes == {"difficult": False, "truncated": True, "pose": "Frontal"}
    assert isinstance(dog.geometry, Mask) and dog.label == "dog"
    assert dog.geometry.to_array()[10:20, 30:50].all() and dog.geometry.area == 200
    assert dog.bbox is None  # the declared box (30, 10, 50, 20) equals the mask's bounds
    assert dog.attributes == {"difficult": True, "truncated": False, "pose": "Unspecified"}
    box, label = b.annotations
    assert (box.label, _coords(box.geometry)) == ("dog", (25.0, 5.0, 50.0, 15.0))
    assert (label.label, label.geometry) == ("cat", Label())
    assert empty.annotations == ()


def test_real_raccoon_test_record_matches_its_csv(raccoon: Path) -> None:
    """The raccoon test.record was written by the TF OD API tooling (generate_tfrecord.py) from test_labels.csv."""
    RACCOON, TEST_RECORD = raccoon, raccoon / "data" / "test.record"
    expected: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    sizes = {}
    with open(RACCOON / "data" / "test_labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            expected[row["filename"]].append(tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")))
            sizes[row["filename"]] = (int(row["width"]), int(row["height"]))
    reader = tfrecord.read(TEST_RECORD)
    samples = list(reader)
    assert len(samples) == 40
    assert {s.image.file_name for s in samples} == set(expected)
    for s in samples:
        assert s.split == "test"
        assert (s.image.width, s.image.height) == sizes[s.image.file_name]
        got = [_coords(a.geometry) for a in s.annotations]
        assert sorted(got) == sorted(expected[s.image.file_name]), s.image.file_name  # exact after snapping
        assert {a.label for a in s.annotations} == {"raccoon"}
        original = (RACCOON / "images" / s.image.file_name).read_bytes()
        assert Path(s.image.path).read_bytes() == original  # type: ignore[arg-type]
    assert [(c.name, c.id) for c in reader.classes] == [("raccoon", 1)]
    assert sum(len(s.annotations) for s in samples) == 44


def test_real_raccoon_round_trip(tmp_path: Path, raccoon: Path) -> None:
    TEST_RECORD = raccoon / "data" / "test.record"
    originals = list(tfrecord.read(TEST_RECORD))
    report = tfrecord.write(originals, tmp_path / "out")
    assert report.images == 40 and report.annotations["box"] == 44 and not report.dropped
    assert (tmp_path / "out" / "label_map.pbtxt").read_text() == "item {\n  id: 1\n  name: 'raccoon'\n}\n"
    # every CRC verifies (iter_records raises otherwise) and the records decode
    assert sum(1 for _ in tfrecord.iter_records(tmp_path / "out" / "test.record")) == 40
    # ... and independently of the module's framing code: walk the file, check both masked CRCs
    import google_crc32c  # a dependency of visionloop: the check always runs

    def masked(data: bytes) -> int:
        crc = google_crc32c.value(data)
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    raw, pos, n = (tmp_path / "out" / "test.record").read_bytes(), 0, 0
    while pos < len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        assert struct.unpack_from("<I", raw, pos + 8)[0] == masked(raw[pos:pos + 8])
        data = raw[pos + 12:pos + 12 + length]
        assert struct.unpack_from("<I", raw, pos + 12 + length)[0] == masked(data)
        pos, n = pos + 16 + length, n + 1
    assert (pos, n) == (len(raw), 40)
    again = list(tfrecord.read(tmp_path / "out"))
    assert [s.image.file_name for s in again] == [s.image.file_name for s in originals]
    for x, y in zip(originals, again, strict=True):
        assert x.annotations == y.annotations
        assert (x.image.width, x.image.height, x.image.sha256, x.split) == (
            y.image.width, y.image.height, y.image.sha256, y.split)


def test_round_trip_every_kind(tmp_path: Path) -> None:
    a = _image(tmp_path / "src" / "a.png", 64, 48)
    b = _image(tmp_path / "src" / "b.jpg", 30, 20)
    arr = np.zeros((48, 64), np.uint8)
    arr[5:9, 7:20] = 1
    mask = Mask.from_array(arr)
    poly = Polygon.from_points([(10, 10), (30, 10), (30, 30)])
    samples = [
        Sample(ImageRef("a.png", 64, 48, path=str(a)), (
            Annotation("cat", Box(1.5, 2.25, 33.125, 40), attributes={"difficult": True}),
            Annotation("dog", mask, crowd=True, area=52.0),
            Annotation("cat", poly),
            Annotation("dog", RotatedBox(20, 20, 10, 4, 90)),
            Annotation("cat", Keypoints((1, 2, 2))),
            Annotation("scene", Label()),
        ), split="train"),
        Sample(ImageRef("b.jpg", path=str(b)), (), split="val"),
    ]
    classes = ClassMap.from_names(["cat", "dog"])  # 0-based ids: renumbered 1..n
    report = tfrecord.write(samples, tmp_path / "out", classes=classes)
    assert report.annotations == {"box": 2, "mask": 2, "label": 1}
    assert report.converted == {"polygon -> mask (rasterised)": 1, "rotated_box -> box (bounds)": 1}
    assert report.dropped == {"keypoints: the TF OD API records written here hold no keypoints": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["label_map.pbtxt", "train.record", "val.record"]
    reader = tfrecord.read(tmp_path / "out")
    got = list(reader)
    assert [(c.name, c.id) for c in reader.classes] == [("cat", 1), ("dog", 2), ("scene", 3)]
    assert [(s.image.file_name, s.split, s.state) for s in got] == [
        ("a.png", "train", LabelState.ANNOTATED), ("b.jpg", "val", LabelState.NULL)]
    anns = got[0].annotations
    box = anns[0].geometry
    assert isinstance(box, Box)
    assert _coords(box) == pytest.approx((1.5, 2.25, 33.125, 40.0), abs=1e-5)  # float32
    assert (box.x1, box.y1) == (33.125, 40.0)  # integers and binary fractions are exact
    assert anns[0].attributes == {"difficult": True}
    assert anns[1].geometry == mask and anns[1].crowd and anns[1].area == 52.0 and anns[1].bbox is None
    assert anns[2].geometry == polygon_to_mask(poly, 48, 64) and anns[2].label == "cat"
    assert _coords(anns[3].geometry) == pytest.approx((18, 15, 22, 25), abs=1e-5)  # type: ignore[arg-type]
    assert anns[4] == Annotation("scene", Label())
    # the embedded bytes are the source file's
    assert Path(got[1].image.path).read_bytes() == b.read_bytes()  # type: ignore[arg-type]


def test_exif_rotated_image_is_embedded_upright(tmp_path: Path) -> None:
    path = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20, shown 20x40
    Image.new("RGB", (40, 20), (1, 2, 3)).save(path, exif=exif)
    sample = Sample(ImageRef("r.jpg", path=str(path)), (Annotation("x", Box(0, 0, 20, 40)),))
    report = tfrecord.write([sample], tmp_path / "out")
    assert report.converted == {"image -> re-encoded upright (EXIF orientation 6)": 1}
    (got,) = tfrecord.read(tmp_path / "out")
    with Image.open(got.image.path) as im:  # type: ignore[arg-type]
        assert im.size == (20, 40)
    assert (got.image.width, got.image.height) == (20, 40)


def test_protobuf_codec_against_google_protobuf() -> None:
    """Our Example codec against protobuf's own (descriptor built from example.proto / feature.proto)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="ex.proto", package="tensorflow", syntax="proto3")

    def msg(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> descriptor_pb2.DescriptorProto:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)  # type: ignore[arg-type]
            if type_name:
                f.type_name = type_name
        return m

    FD = descriptor_pb2.FieldDescriptorProto
    rep, opt = FD.LABEL_REPEATED, FD.LABEL_OPTIONAL
    msg("BytesList", [("value", 1, FD.TYPE_BYTES, rep, None)])
    msg("FloatList", [("value", 1, FD.TYPE_FLOAT, rep, None)])
    msg("Int64List", [("value", 1, FD.TYPE_INT64, rep, None)])
    feature = msg("Feature", [("bytes_list", 1, FD.TYPE_MESSAGE, opt, ".tensorflow.BytesList"),
                              ("float_list", 2, FD.TYPE_MESSAGE, opt, ".tensorflow.FloatList"),
                              ("int64_list", 3, FD.TYPE_MESSAGE, opt, ".tensorflow.Int64List")])
    feature.oneof_decl.add(name="kind")
    for f in feature.field:
        f.oneof_index = 0
    features = msg("Features", [("feature", 1, FD.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry")])
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=FD.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=FD.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
    entry.options.map_entry = True
    msg("Example", [("features", 1, FD.TYPE_MESSAGE, opt, ".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Example = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))

    ex = Example()
    fm = ex.features.feature
    fm["image/encoded"].bytes_list.value.append(b"\x00\xff" * 300)
    fm["image/object/bbox/xmin"].float_list.value.extend([0.25, 0.5, 1.0])
    fm["image/object/class/label"].int64_list.value.extend([1, 300, -2, 2**40])
    fm["empty"].float_list.SetInParent()
    decoded = tfrecord.decode_example(ex.SerializeToString())
    assert decoded == {"image/encoded": [b"\x00\xff" * 300], "image/object/bbox/xmin": [0.25, 0.5, 1.0],
                       "image/object/class/label": [1, 300, -2, 2**40], "empty": []}
    ours = tfrecord.encode_example({
        "image/encoded": ("bytes", [b"abc", b""]),
        "image/object/bbox/xmin": ("float", [0.125, 0.75]),
        "image/object/class/label": ("int64", [1, -5, 2**40]),
    })
    parsed = Example.FromString(ours)
    pf = parsed.features.feature
    assert list(pf["image/encoded"].bytes_list.value) == [b"abc", b""]
    assert list(pf["image/object/bbox/xmin"].float_list.value) == [0.125, 0.75]
    assert list(pf["image/object/class/label"].int64_list.value) == [1, -5, 2**40]


def test_masked_crc_known_value() -> None:
    assert tfrecord.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tfrecord.crc32c(b"") == 0 and tfrecord.masked_crc(b"abc") == _masked(b"abc")
    assert tfrecord._crc32c_python(b"123456789") == 0xE3069283


def test_label_map_round_trip(tmp_path: Path) -> None:
    classes = ClassMap.from_names(["raccoon", "it's \"quoted\""], start=1)
    tfrecord.write_label_map(classes, tmp_path / "m.pbtxt")
    back = tfrecord.parse_label_map(tmp_path / "m.pbtxt")
    assert [(c.name, c.id) for c in back] == [("raccoon", 1), ("it's \"quoted\"", 2)]


# ------------------------------------------------------------------------------------------ bad input


def test_corrupt_record_names_file_and_record(od_api_dataset: Path) -> None:
    path = od_api_dataset / "train.record"
    data = bytearray(path.read_bytes())
    first_len = struct.unpack("<Q", data[:8])[0]
    second = 12 + first_len + 4
    data[second + 12 + 30] ^= 0xFF  # a byte inside the second record's data
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as err:
        list(tfrecord.read(path))
    assert "train.record" in str(err.value) and err.value.where == f"record 1 (byte {second})"
    assert "CRC" in err.value.message


def test_truncated_file(od_api_dataset: Path) -> None:
    path = od_api_dataset / "val.record"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(FormatError) as err:
        list(tfrecord.read(path))
    assert err.value.path == str(path) and err.value.where == "record 0 (byte 0)"
    assert "truncated" in err.value.message


def test_class_text_contradicting_label_map(tmp_path: Path) -> None:
    (tmp_path / "label_map.pbtxt").write_text("item { id: 1 name: 'cat' }\n")
    ex = _example({
        "image/height": _int_feature(10), "image/width": _int_feature(10),
        "image/encoded": _bytes_feature(_jpeg(10, 10)), "image/format": _bytes_feature(b"jpeg"),
        "image/object/bbox/xmin": _float_feature(0.0), "image/object/bbox/xmax": _float_feature(1.0),
        "image/object/bbox/ymin": _float_feature(0.0), "image/object/bbox/ymax": _float_feature(1.0),
        "image/object/class/text": _bytes_feature(b"dog"), "image/object/class/label": _int_feature(1),
    })
    (tmp_path / "x.record").write_bytes(_record(ex))
    with pytest.raises(FormatError) as err:
        list(tfrecord.read(tmp_path))
    assert "x.record" in str(err.value) and err.value.where == "record 0"
    assert "'dog'" in err.value.message


def test_bad_label_map(tmp_path: Path) -> None:
    (tmp_path / "label_map.pbtxt").write_text("item {\n  id: 1\n}\n")
    (tmp_path / "x.record").write_bytes(b"")
    with pytest.raises(FormatError) as err:
        tfrecord.read(tmp_path)
    assert "label_map.pbtxt" in str(err.value) and err.value.where == "item 1"


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    img = _image(tmp_path / "a.jpg", 8, 8)
    samples = [Sample(ImageRef("a.jpg", path=str(img)))]
    tfrecord.write(samples, tmp_path / "out")
    with pytest.raises(FormatError) as err:
        tfrecord.write(samples, tmp_path / "out")
    assert "data.record" in str(err.value)


# ------------------------------------------------------------------------------------------ detection


def test_detect(od_api_dataset: Path, tmp_path: Path, raccoon: Path) -> None:
    assert tfrecord.detect(od_api_dataset).score >= 0.9
    assert tfrecord.detect(od_api_dataset / "train.record").score >= 0.9
    assert detect(od_api_dataset) == "tfrecord"
    assert detect(od_api_dataset / "val.record") == "tfrecord"
    roboflow = tmp_path / "rf"
    (roboflow / "train").mkdir(parents=True)
    (roboflow / "train" / "raccoons.tfrecord").write_bytes((od_api_dataset / "val.record").read_bytes())
    (roboflow / "train" / "raccoons_label_map.pbtxt").write_text("item { id: 1 name: 'raccoon' }\n")
    assert detect(roboflow) == "tfrecord"
    assert [s.split for s in tfrecord.read(roboflow)] == ["train"]
    fake = tmp_path / "fake.record"
    fake.write_bytes(b"this is not a tfrecord file")
    assert tfrecord.detect(fake).score < 0.2
    assert detect(raccoon / "data" / "test.record") == "tfrecord"
    assert detect(raccoon) == "voc"

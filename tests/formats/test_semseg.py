"""Common semantic segmentation masks.

Roboflow "Semantic Segmentation Masks" layout, as documented with a sample by luxonis-ml
(https://github.com/luxonis/luxonis-ml, "Segmentation Mask Directory"): `train/img1.jpg`,
`train/img1_mask.png` (grey, value = class), `train/_classes.csv` starting `Pixel Value, Class`.
Folder-pair layout with a CVAT label map: https://docs.cvat.ai/docs/dataset_management/formats/format-smask

Tool sources the fixtures follow (issue 12; neither tool is in the venv, so their reading rules are replayed below
and must agree with ours):
- layout (a), Roboflow masks: luxonis/luxonis-ml luxonis_ml/data/parsers/segmentation_mask_directory_parser.py
  `SegmentationMaskDirectoryParser` (`validate_split`: `<split>/_classes.csv` and a `<stem>.jpg` for every
  `<stem>_mask.*`; `from_split`: the `" Class"` column of the `Pixel Value, Class` header, row order = pixel value,
  the mask read as 8-bit grey, one class per distinct value; splits `train`, `valid`, `test`);
- layout (b), image and mask folders: open-mmlab/mmsegmentation mmseg/datasets/basesegdataset.py
  `BaseSegDataset.load_data_list` (images listed recursively under the image dir by `img_suffix`, the mask at the
  same relative path under the annotation dir with `img_suffix` replaced by `seg_map_suffix`, default `.png`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, semseg
from visionloop.formats._seg import voc_colormap

W, H = 6, 4


def _image(path: Path, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (1, 2, 3)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


CAT = _region(slice(0, 2), slice(0, 3))
DOG = _region(slice(2, 4), slice(3, 6))


@pytest.fixture()
def roboflow(tmp_path: Path) -> Path:
    root = tmp_path / "rf"
    _image(root / "train/a.jpg")
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[CAT] = 1
    mask[DOG] = 2
    Image.fromarray(mask).save(root / "train/a_mask.png")
    _image(root / "train/b.jpg")  # no mask: not labelled
    (root / "train/_classes.csv").write_text("Pixel Value, Class\n0, background\n1, cat\n2, dog\n")
    _image(root / "valid/c.jpg")
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(root / "valid/c_mask.png")
    (root / "valid/_classes.csv").write_text("Pixel Value, Class\n0, background\n1, cat\n2, dog\n")
    return root


def test_reads_roboflow_masks(roboflow: Path) -> None:
    reader = semseg.read(roboflow)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("train/a.jpg", "train", LabelState.ANNOTATED),
        ("train/b.jpg", "train", LabelState.MISSING),
        ("valid/c.jpg", "valid", LabelState.NULL),
    ]
    a = samples[0]
    assert (a.image.width, a.image.height) == (W, H)
    assert a.annotations == (
        Annotation("cat", Mask.from_array(CAT), attributes={"semantic": True}),
        Annotation("dog", Mask.from_array(DOG), attributes={"semantic": True}),
    )
    assert [(c.name, c.id) for c in reader.classes] == [("cat", 1), ("dog", 2)]


def test_reads_image_and_mask_folders_with_a_labelmap(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    _image(root / "images/train/x.png")
    _image(root / "images/train/y.png")
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nroad:128,64,128::\n"
                                       "car:0,0,142::\n")
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[CAT] = (128, 64, 128)
    rgb[DOG] = (0, 0, 142)
    (root / "masks/train").mkdir(parents=True)
    Image.fromarray(rgb).save(root / "masks/train/x.png")
    pal = np.zeros((H, W), dtype=np.uint8)
    pal[DOG] = 1
    pal[0, 0] = 255  # ignore value, not in the map
    im = Image.fromarray(pal)
    im.putpalette([v for c in voc_colormap() for v in c])
    im.save(root / "masks/train/y.png")
    samples = list(semseg.read(root))
    assert [(s.image.file_name, s.split) for s in samples] == [("images/train/x.png", "train"),
                                                               ("images/train/y.png", "train")]
    assert samples[0].annotations == (
        Annotation("road", Mask.from_array(CAT), attributes={"semantic": True}),
        Annotation("car", Mask.from_array(DOG), attributes={"semantic": True}),
    )
    assert samples[1].annotations == (Annotation("road", Mask.from_array(DOG), attributes={"semantic": True}),)
    assert semseg.detect(root).score >= 0.7


def _luxonis(root: Path) -> dict[str, list[tuple[str, bytes]]]:
    """luxonis-ml `SegmentationMaskDirectoryParser.from_split` replayed (background rows included, as it does; names stripped, it keeps the space)."""
    import csv

    found: dict[str, list[tuple[str, bytes]]] = {}
    for split in ("train", "valid", "test"):
        folder = root / split
        if not (folder / "_classes.csv").exists():
            continue
        with open(folder / "_classes.csv", newline="") as f:
            names = [row[" Class"] for row in csv.DictReader(f)]
        for mask_path in sorted(folder.glob("*_mask.*")):
            assert (folder / f"{mask_path.stem[:-5]}.jpg").exists()  # validate_split
            mask = np.asarray(Image.open(mask_path).convert("L"))
            found[f"{split}/{mask_path.stem[:-5]}.jpg"] = [(names[v].strip(), (mask == v).tobytes())
                                                         for v in np.unique(mask)]
    return found


def test_luxonis_parse_agrees(roboflow: Path, tmp_path: Path) -> None:
    theirs = _luxonis(roboflow)
    assert {k: [n for n, _ in v] for k, v in theirs.items()} == {
        "train/a.jpg": ["background", "cat", "dog"], "valid/c.jpg": ["background"]}
    ours = {s.image.file_name: [(a.label, a.geometry.to_array().astype(bool).tobytes())  # type: ignore[union-attr]
                                for a in s.annotations] for s in semseg.read(roboflow) if s.state is not LabelState.MISSING}
    assert ours == {k: [(n, m) for n, m in v if n != "background"] for k, v in theirs.items()}
    # what we write, read by luxonis-ml's rules
    semseg.write(list(semseg.read(roboflow)), tmp_path / "out", classes=semseg.read(roboflow).classes)
    assert _luxonis(tmp_path / "out") == theirs


def test_mmseg_pairing_agrees(tmp_path: Path) -> None:
    """mmseg `BaseSegDataset.load_data_list` pairing (img_suffix=".jpg", seg_map_suffix=".png") = ours."""
    root = tmp_path / "mm"
    for rel in ("train/a.jpg", "train/sub/b.jpg", "val/c.jpg"):
        _image(root / "images" / rel)
        mask = np.zeros((H, W), dtype=np.uint8)
        mask[CAT] = 1
        (root / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save((root / "masks" / rel).with_suffix(".png"))
    (root / "labelmap.txt").write_text("background:0,0,0::\ncat:1,1,1::\n")
    img_dir, ann_dir = root / "images", root / "masks"
    theirs = sorted((str(p.relative_to(img_dir)), str(ann_dir / str(p.relative_to(img_dir)).replace(".jpg", ".png")))
                    for p in img_dir.rglob("*.jpg"))
    samples = list(semseg.read(root))
    assert sorted(s.image.file_name for s in samples) == sorted(f"images/{rel}" for rel, _ in theirs)
    assert all(Path(m).is_file() for _, m in theirs)
    assert [a.label for s in samples for a in s.annotations] == ["cat"] * 3


def test_round_trip(roboflow: Path, tmp_path: Path) -> None:
    reader = semseg.read(roboflow)
    original = list(reader)
    out = tmp_path / "out"
    report = semseg.write(original, out, classes=reader.classes)
    assert report.annotations["mask"] == 2 and not report.dropped and not report.converted
    assert (out / "train/_classes.csv").read_text() == "Pixel Value, Class\n0, background\n1, cat\n2, dog\n"
    assert not (out / "train/b_mask.png").exists()
    back = list(semseg.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in original]


def test_writer_paints_in_order_and_counts(tmp_path: Path) -> None:
    src = tmp_path / "src.png"
    _image(src)
    sample = Sample(ImageRef("one.png", path=str(src)), (
        Annotation("cat", Mask.from_array(CAT), attributes={"note": "x"}, crowd=True, confidence=0.5),
        Annotation("dog", Polygon(((0.0, 0.0, 6.0, 0.0, 6.0, 1.0, 0.0, 1.0),))),  # row 0, over the cat
        Annotation("dog", Box(0, 0, 1, 1)),
    ))
    out = tmp_path / "out"
    report = semseg.write([sample], out, classes=ClassMap.from_names(["dog", "cat"]))
    assert report.converted["polygon -> mask (rasterised as COCO does)"] == 1
    assert report.converted["mask -> semantic class pixels (instances of a class merge)"] == 1
    assert sum(v for k, v in report.converted.items() if k.startswith("overlapping")) == 1
    assert report.dropped == {"box: a semantic mask holds pixel masks only (a box is not a region outline)": 1,
                              "attribute: a semantic mask has no place for it": 1,
                              "crowd flag: a semantic mask has no crowd flag": 1,
                              "confidence: a semantic mask has no confidence": 1}
    arr = np.asarray(Image.open(out / "one_mask.png"))
    expected = np.zeros((H, W), dtype=np.uint8)
    expected[CAT] = 2
    expected[0, :] = 1
    assert (arr == expected).all()
    assert (out / "_classes.csv").read_text() == "Pixel Value, Class\n0, background\n1, dog\n2, cat\n"


def test_unknown_pixel_value_names_the_mask(roboflow: Path) -> None:
    bad = roboflow / "train/a_mask.png"
    Image.fromarray(np.full((H, W), 7, dtype=np.uint8)).save(bad)
    with pytest.raises(FormatError) as e:
        list(semseg.read(roboflow))
    assert "a_mask.png" in str(e.value) and "pixel value 7" in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_bad_classes_csv_names_the_line(roboflow: Path) -> None:
    (roboflow / "train/_classes.csv").write_text("Pixel Value, Class\nx, cat\n")
    with pytest.raises(FormatError) as e:
        semseg.read(roboflow)
    assert "_classes.csv" in str(e.value) and "line 2" in str(e.value)


def test_detect(roboflow: Path, raccoon: Path, tmp_path: Path) -> None:
    assert semseg.detect(roboflow).score >= 0.9
    assert detect(roboflow) == "semseg"
    assert semseg.detect(raccoon).score == 0

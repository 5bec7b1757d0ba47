"""ADE20K SceneParsing (ADEChallengeData2016).

Layout: https://github.com/CSAILVision/sceneparsing (README): images/{training,validation}/*.jpg,
annotations/{training,validation}/*.png with class indices (0 = other), objectInfo150.csv
(`Idx,Ratio,Train,Val,Name`), sceneCategories.txt (`<image id> <scene>`).

The layout is the one a reader of it walks: open-mmlab/mmsegmentation
configs/_base_/datasets/ade20k.py @ 02677ac2f8294bab351d68ef5d6a6a0302cca26d (data_root
`.../ADEChallengeData2016`, img_path `images/training` | `images/validation`, seg_map_path
`annotations/training` | `annotations/validation`) and mmseg/datasets/ade.py @ 088894bd6167bf55031e4d05475d22504035b3e6
(img_suffix '.jpg', seg_map_suffix '.png', reduce_zero_label=True: 0 is background, 1..150 the classes, in
objectInfo150 order — its first class 'wall', its 8th 'bed ' with the table's trailing space).
objectInfo150 rows are verbatim from CSAILVision/sceneparsing objectInfo150.txt @ 4ce20bd9115d415d545b26eaa0387a0740838ba5
(TAB-separated) and markstrefford/DeepPhotoStyle_pytorch objectInfo150.csv @ a7cab86587cff97da314442b8444268a7079731f
(semantic-segmentation-pytorch's `Idx,Ratio,Train,Val,Stuff,Name` table committed under this name); the
comma/`;` form of OBJECT_INFO below is what readers of the release's objectInfo150.csv parse (pd.read_csv, column
`Name`, `.split(";")`); no copy of the release's own file was found in public repositories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import ade20k, detect

W, H = 6, 4
OBJECT_INFO = """Idx,Ratio,Train,Val,Name
1,0.1576,11664,1172,wall
2,0.1072,6046,612,building;edifice
3,0.0878,8265,796,sky
"""


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (4, 4, 4)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


WALL = _region(slice(2, 4), slice(0, 3))
SKY = _region(slice(0, 1), slice(0, 6))


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ADEChallengeData2016"
    root.mkdir()
    (root / "objectInfo150.csv").write_text(OBJECT_INFO)
    (root / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\nADE_val_00000001 abbey\n")
    _image(root / "images/training/ADE_train_00000001.jpg")
    _image(root / "images/training/ADE_train_00000002.jpg")
    _image(root / "images/validation/ADE_val_00000001.jpg")
    arr = np.zeros((H, W), dtype=np.uint8)
    arr[WALL] = 1
    arr[SKY] = 3
    (root / "annotations/training").mkdir(parents=True)
    Image.fromarray(arr).save(root / "annotations/training/ADE_train_00000001.png")
    (root / "annotations/validation").mkdir(parents=True)
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(root / "annotations/validation/ADE_val_00000001.png")
    return root


def test_reads_ade20k(dataset: Path) -> None:
    reader = ade20k.read(dataset.parent)  # the folder holding ADEChallengeData2016 works too
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("images/training/ADE_train_00000001.jpg", "train", LabelState.ANNOTATED),
        ("images/training/ADE_train_00000002.jpg", "train", LabelState.MISSING),
        ("images/validation/ADE_val_00000001.jpg", "val", LabelState.NULL),
    ]
    assert samples[0].annotations == (
        Annotation("wall", Mask.from_array(WALL), attributes={"semantic": True}),
        Annotation("sky", Mask.from_array(SKY), attributes={"semantic": True}),
    )
    assert samples[0].image.metadata == {"scene": "airport_terminal"}
    assert [(c.name, c.id) for c in reader.classes] == [("wall", 1), ("building;edifice", 2), ("sky", 3)]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    reader = ade20k.read(dataset)
    original = list(reader)
    out = tmp_path / "out"
    report = ade20k.write(original, out, classes=reader.classes)
    assert report.annotations["mask"] == 2 and not report.dropped and not report.converted
    assert (out / "objectInfo150.csv").read_text() == (
        "Idx,Ratio,Train,Val,Name\n1,0.1250,1,0,wall\n2,0.0000,0,0,building;edifice\n3,0.1250,1,0,sky\n")
    assert (out / "sceneCategories.txt").read_text() == (
        "ADE_train_00000001 airport_terminal\nADE_val_00000001 abbey\n")
    back = list(ade20k.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations, s.image.metadata) for s in original]


def test_writer_merges_instances_and_counts(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    _image(src)
    sample = Sample(ImageRef("a.png", path=str(src)), (
        Annotation("car", Mask.from_array(WALL)),
        Annotation("car", Box(0, 0, 1, 1)),
    ), split="train")
    out = tmp_path / "out"
    report = ade20k.write([sample], out, classes=ClassMap.from_names(["road", "car"]))
    assert report.converted == {"mask -> semantic class pixels (instances of a class merge)": 1}
    assert report.dropped == {"box: ADE20K holds pixel masks only (a box is not a region outline)": 1}
    arr = np.asarray(Image.open(out / "annotations/training/a.png"))
    assert (arr[WALL] == 2).all() and (arr[~WALL] == 0).all()


def test_unknown_index(dataset: Path) -> None:
    png = dataset / "annotations/validation/ADE_val_00000001.png"
    Image.fromarray(np.full((H, W), 77, dtype=np.uint8)).save(png)
    with pytest.raises(FormatError) as e:
        list(ade20k.read(dataset))
    assert "class index 77" in str(e.value) and "ADE_val_00000001.png" in str(e.value)
    assert "(pixel x=0, y=0)" in str(e.value)


def test_bad_object_info(dataset: Path) -> None:
    (dataset / "objectInfo150.csv").write_text("Idx,Ratio,Train,Val,Name\n1,0.1,1,1,wall\nx,0,0,0,sky\n")
    with pytest.raises(FormatError) as e:
        ade20k.read(dataset)
    assert "objectInfo150.csv" in str(e.value) and "line 3" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert ade20k.detect(dataset).score >= 0.9
    assert detect(dataset) == "ade20k"
    assert ade20k.detect(raccoon).score == 0


# ------------------------------------------------------------------------- objectInfo150 tables found in the wild

TAB_INFO = ("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n2\t0.1072\t6046\t612\tbuilding, edifice\n"
            "3\t0.0878\t8265\t796\tsky\n8\t0.0231\t1906\t199\tbed \n22 \t0.0074\t709\t75\twater\n")
STUFF_INFO = ("Idx,Ratio,Train,Val,Stuff,Name\n1,0.1576,11664,1172,1,wallo\n2,0.1072,6046,612,1,building;edifice\n"
              "3,0.0878,8265,796,1,sky\n")


@pytest.mark.parametrize(("text", "names"), [
    (TAB_INFO, {1: "wall", 2: "building, edifice", 3: "sky", 8: "bed", 22: "water"}),
    (STUFF_INFO, {1: "wallo", 2: "building;edifice", 3: "sky"}),  # 'wallo': that file's own typo
])
def test_object_info_tab_and_stuff_tables(dataset: Path, text: str, names: dict[int, str]) -> None:
    """Before, the TAB table (sceneparsing's objectInfo150.txt) was refused ("a class line needs ...") and the
    6-column table named its classes "1,wallo", "1,building;edifice" (the Stuff flag glued on): silently wrong."""
    (dataset / "objectInfo150.csv").write_text(text)
    assert ade20k.detect(dataset).score == 0.95 and detect(dataset) == "ade20k"
    reader = ade20k.read(dataset)
    assert {c.id: c.name for c in reader.classes} == names
    first = next(s for s in reader if s.image.file_name.endswith("ADE_train_00000001.jpg"))
    assert sorted((a.label, int(a.geometry.area)) for a in first.annotations) == sorted([(names[1], 6), (names[3], 6)])

"""Datasets as datumaro writes them — which is also what CVAT exports, its export formats being datumaro's — read
by visionloop exactly.

Every fixture here is written by datumaro's own exporter (datumaro 1.13, `Dataset.export(path, FORMAT,
save_media=True)`) from one in-memory dataset, in the test. Where datumaro also reads the format, its own import
of the same folder is the oracle; otherwise the dataset that was exported is.

Found by these tests (each was exit 0 with a wrong result, or a refusal of a valid export, before):
- Cityscapes without the `<city>/` level (datumaro writes `gtFine/<split>/<name>_gtFine_*.png`): 0 images, exit 0;
- CamVid with datumaro's `label_colors.txt` and colour PNGs: refused as "not a class index image";
- a `label_colors.txt` line with a name and no colour (datumaro's ` name` for classes without one): refused;
- CIFAR batches whose `data` is an object array of ints (datumaro's CIFAR exporter): refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vl_datumaro import box_mask, dm_image

from visionloop import formats
from visionloop.core.errors import FormatError

dm = pytest.importorskip("datumaro")
from datumaro.components.annotation import (  # noqa: E402
    AnnotationType,
    Bbox,
    Label,
    LabelCategories,
    Mask,
    MaskCategories,
    Polygon,
)

COLOURS = {0: (0, 0, 0), 1: (128, 64, 128), 2: (0, 0, 142)}


def _read(root: Path, expected_format: str) -> list:
    assert formats.detect(root) == expected_format
    samples = list(formats.read(root))
    return sorted(samples, key=lambda s: s.image.file_name)


def _boxes(sample) -> list[tuple[str, tuple[float, float, float, float]]]:
    return [(a.label, (a.box.x0, a.box.y0, a.box.x1, a.box.y1)) for a in sample.annotations]


# ------------------------------------------------------------------------------------------------ boxes

def _box_dataset():
    return dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(40, 60, 100),
                       annotations=[Bbox(2, 3, 10, 12, label=0, id=1), Bbox(20, 5, 30, 20, label=1, id=2)]),
        dm.DatasetItem(id="b", subset="train", media=dm_image(50, 70, 50),
                       annotations=[Bbox(1.5, 2.5, 7, 8, label=1, id=3)]),
        dm.DatasetItem(id="c", subset="train", media=dm_image(30, 30, 10)),
    ], categories=["cat", "dog"])


WANT_BOXES = {"a": [("cat", (2.0, 3.0, 12.0, 15.0)), ("dog", (20.0, 5.0, 50.0, 25.0))],
              "b": [("dog", (1.5, 2.5, 8.5, 10.5))],
              "c": []}


@pytest.mark.parametrize(("exporter", "fmt", "empty_state", "size"), [
    # datumaro writes no label file for an image without objects; KITTI labels carry no image size
    ("kitti_detection", "kitti", "missing", (None, None)),
    ("open_images", "openimages", "missing", (60, 40)),  # ... and no CSV row for it
    ("yolo", "darknet", "null", (60, 40)),  # an empty .txt
    ("label_me", "labelme_xml", "null", (60, 40)),  # an XML without objects
])
def test_box_formats_read_exactly(tmp_path: Path, exporter: str, fmt: str, empty_state: str,
                                  size: tuple[int | None, int | None]) -> None:
    _box_dataset().export(str(tmp_path / "ds"), exporter, save_media=True)
    samples = _read(tmp_path / "ds", fmt)
    assert [Path(s.image.file_name).stem for s in samples] == ["a", "b", "c"]
    for s in samples:
        got, want = _boxes(s), WANT_BOXES[Path(s.image.file_name).stem]
        assert [n for n, _ in got] == [n for n, _ in want], (exporter, s.image.file_name)
        # YOLO's normalised text keeps 6 decimals: 1e-5 px here
        assert [b for _, b in got] == [pytest.approx(b, abs=1e-4) for _, b in want], (exporter, s.image.file_name)
        assert s.split == "train"
    assert samples[2].state.value == empty_state
    assert (samples[0].image.width, samples[0].image.height) == size


def test_coco_boxes_polygons_and_masks_equal_datumaros_own_import(tmp_path: Path) -> None:
    ds = dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(40, 60, 100), attributes={"id": 1},
                       annotations=[Bbox(2, 3, 10, 12, label=0, id=1, group=1),
                                    Polygon([20, 5, 30, 5, 30, 20], label=1, id=2, group=2)]),
        dm.DatasetItem(id="b", subset="train", media=dm_image(40, 60, 10), attributes={"id": 2},
                       annotations=[Mask(box_mask(40, 60, slice(5, 10), slice(5, 20)), label=1, id=3, group=3)]),
    ], categories=["cat", "dog"])
    ds.export(str(tmp_path / "coco"), "coco_instances", save_media=True)
    a, b = _read(tmp_path / "coco", "coco")
    assert _boxes(a) == [("cat", (2.0, 3.0, 12.0, 15.0)), ("dog", (20.0, 5.0, 30.0, 20.0))]
    assert a.annotations[1].geometry.rings == ((20.0, 5.0, 30.0, 5.0, 30.0, 20.0),)
    oracle = dm.Dataset.import_from(str(tmp_path / "coco"), "coco_instances")
    theirs = next(i for i in oracle if i.id == "b").annotations[0]
    ours = b.annotations[0].geometry.to_array()
    assert np.array_equal(ours.astype(bool), theirs.image.astype(bool)) and ours.sum() == 5 * 15


# ------------------------------------------------------------------------------------------------ pixels

def _seg_dataset(colours: bool):
    cats = {AnnotationType.label: LabelCategories.from_iterable(["background", "road", "car"])}
    if colours:
        cats[AnnotationType.mask] = MaskCategories(COLOURS)
    return dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="train", media=dm_image(20, 30, 100),
                       annotations=[Mask(box_mask(20, 30, slice(2, 8), slice(3, 9)), label=1),
                                    Mask(box_mask(20, 30, slice(10, 15), slice(10, 25)), label=2)]),
        dm.DatasetItem(id="b", subset="val", media=dm_image(20, 30, 50),
                       annotations=[Mask(box_mask(20, 30, slice(0, 4), slice(0, 4)), label=2)]),
    ], categories=cats)


WANT_PIXELS = {"a": {"road": (slice(2, 8), slice(3, 9)), "car": (slice(10, 15), slice(10, 25))},
               "b": {"car": (slice(0, 4), slice(0, 4))}}


def _check_pixels(samples, splits=("train", "val")) -> None:
    assert [s.split for s in samples] == list(splits)
    for s in samples:
        want = WANT_PIXELS[Path(s.image.file_name).stem.removesuffix("_leftImg8bit")]
        got = {a.label: a.geometry.to_array() for a in s.annotations}
        assert sorted(got) == sorted(want), s.image.file_name
        for name, (rows, cols) in want.items():
            expected = box_mask(20, 30, rows, cols)
            assert np.array_equal(got[name], expected), (s.image.file_name, name)


@pytest.mark.parametrize("colours", [True, False], ids=["colours", "names-only"])
@pytest.mark.parametrize(("exporter", "fmt"), [
    ("camvid", "camvid_segnet"),  # label_colors.txt + <split>annot/ colour PNGs (CVAT's "CamVid 1.0")
    ("cityscapes", "cityscapes"),  # gtFine/<split>/<name>_gtFine_*.png: no <city>/ level
    ("kitti_segmentation", "kitti_seg"),
])
def test_segmentation_formats_read_pixel_exact(tmp_path: Path, exporter: str, fmt: str, colours: bool) -> None:
    _seg_dataset(colours).export(str(tmp_path / "ds"), exporter, save_media=True)
    labels = (tmp_path / "ds" / "label_colors.txt").read_text()
    assert ("128 64 128 road" in labels) is colours  # the two label-map dialects datumaro writes
    samples = _read(tmp_path / "ds", fmt)
    _check_pixels(samples)
    reader = formats.read(tmp_path / "ds")
    assert "background" not in [c.name for c in reader.classes] or fmt != "camvid_segnet"


def test_cityscapes_without_city_folders_equals_datumaros_own_import(tmp_path: Path) -> None:
    _seg_dataset(True).export(str(tmp_path / "cs"), "cityscapes", save_media=True)
    ours = _read(tmp_path / "cs", "cityscapes")
    assert [s.image.file_name for s in ours] == ["leftImg8bit/train/a_leftImg8bit.png",
                                                 "leftImg8bit/val/b_leftImg8bit.png"]
    oracle = dm.Dataset.import_from(str(tmp_path / "cs"), "cityscapes")
    names = oracle.categories()[AnnotationType.label]
    for s in ours:
        item = next(i for i in oracle if i.id == Path(s.image.file_name).stem.removesuffix("_leftImg8bit"))
        theirs = {names[m.label].name: m.image.astype(bool) for m in item.annotations}
        got = {a.label: a.geometry.to_array().astype(bool) for a in s.annotations}
        assert sorted(got) == sorted(theirs)
        for name in got:
            assert np.array_equal(got[name], theirs[name])


def test_camvid_with_a_colour_the_label_map_lacks_is_refused(tmp_path: Path) -> None:
    _seg_dataset(True).export(str(tmp_path / "cv"), "camvid", save_media=True)
    labels = tmp_path / "cv" / "label_colors.txt"
    labels.write_text(labels.read_text().replace("0 0 142 car\n", ""))
    with pytest.raises(FormatError, match=r"colour \(0, 0, 142\) is not a known class colour") as e:
        list(formats.read(tmp_path / "cv"))
    assert "trainannot" in str(e.value) and "pixel x=10, y=10" in str(e.value)


def test_voc_segmentation_equals_the_dataset(tmp_path: Path) -> None:
    _seg_dataset(True).export(str(tmp_path / "voc"), "voc_segmentation", save_media=True)
    samples = _read(tmp_path / "voc", "voc")
    # VOC's ImageSets list the split; both images are read with their masks
    by = {Path(s.image.file_name).stem: s for s in samples}
    assert sorted(by) == ["a", "b"]
    for stem, s in by.items():
        got = {a.label: a.geometry.to_array() for a in s.annotations}
        assert {k: int(v.sum()) for k, v in got.items()} == {
            k: int(box_mask(20, 30, *rc).sum()) for k, rc in WANT_PIXELS[stem].items()}


# ------------------------------------------------------------------------------------------------ labels

def test_cifar_batches_as_datumaro_pickles_them(tmp_path: Path) -> None:
    values = {"a": 100, "b": 30, "c": 20}
    ds = dm.Dataset.from_iterable([
        dm.DatasetItem(id="a", subset="data_batch_1", media=dm_image(32, 32, 100), annotations=[Label(1)]),
        dm.DatasetItem(id="b", subset="data_batch_1", media=dm_image(32, 32, 30), annotations=[Label(0)]),
        dm.DatasetItem(id="c", subset="test_batch", media=dm_image(32, 32, 20), annotations=[Label(2)]),
    ], categories=["airplane", "automobile", "bird"])
    ds.export(str(tmp_path / "cifar"), "cifar", save_media=True)
    import pickle

    with open(tmp_path / "cifar" / "data_batch_1", "rb") as f:
        assert pickle.load(f, encoding="bytes")["data"].dtype == object  # what datumaro 1.13 writes
    samples = _read(tmp_path / "cifar", "cifar10")
    assert [(s.split, [a.label for a in s.annotations]) for s in samples] == [
        ("test", ["bird"]), ("train", ["automobile"]), ("train", ["airplane"])]
    from PIL import Image

    for s in samples:
        pixels = np.asarray(Image.open(s.image.path).convert("RGB"))
        assert pixels.shape == (32, 32, 3) and (pixels == values[Path(s.image.file_name).stem]).all()

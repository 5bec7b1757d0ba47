"""CIFAR-10 / CIFAR-100 python batches (formats/_cifar.py).

Fixtures follow the layout the authors document (https://www.cs.toronto.edu/~kriz/cifar.html, "Dataset layout":
each batch a pickled dict; ``data`` a 10000x3072 uint8 array, rows of 1024 red, 1024 green, 1024 blue values in
row-major order; ``labels``; ``batches.meta`` with ``label_names``; CIFAR-100 ``fine_labels``/``coarse_labels``
and ``meta`` with ``fine_label_names``/``coarse_label_names``), written as the Python 2 originals are: byte-string
keys. Oracle for what we write: torchvision.datasets.CIFAR10 / CIFAR100 (torchvision/datasets/cifar.py), given
checksums of None (its ``check_integrity`` then only checks that each file exists) instead of the originals' md5s.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100

from visionloop.core import Annotation, FormatError, ImageRef, Label, Sample
from visionloop.formats import cifar10, cifar100, detect, registry


class _Cifar10(CIFAR10):
    train_list = [[f"data_batch_{i}", None] for i in range(1, 6)]
    test_list = [["test_batch", None]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}


class _Cifar100(CIFAR100):
    train_list = [["train", None]]
    test_list = [["test", None]]
    meta = {"filename": "meta", "key": "fine_label_names", "md5": None}


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _row(img: np.ndarray) -> np.ndarray:
    return img.transpose(2, 0, 1).reshape(3072)  # R plane, G plane, B plane


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({k.encode(): v for k, v in obj.items()}, f, protocol=2)  # Python 2 cPickle: byte keys


@pytest.fixture()
def c10(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    _dump(root / "batches.meta", {"num_cases_per_batch": 2, "label_names": [b"airplane", b"automobile", b"bird"],
                                  "num_vis": 3072})
    _dump(root / "data_batch_1", {"batch_label": b"training batch 1 of 2", "labels": [2, 0],
                                  "data": np.stack([_row(_rgb(1)), _row(_rgb(2))]),
                                  "filenames": [b"bird_s_000001.png", b"plane_s_000002.png"]})
    _dump(root / "data_batch_2", {"batch_label": b"training batch 2 of 2", "labels": [1],
                                  "data": np.stack([_row(_rgb(3))]), "filenames": [b"car_s_000003.png"]})
    _dump(root / "test_batch", {"batch_label": b"testing batch 1 of 1", "labels": [0],
                                "data": np.stack([_row(_rgb(4))]), "filenames": [b"plane_s_000004.png"]})
    return tmp_path


def test_read_cifar10_exact_pixels_labels_splits(c10: Path) -> None:
    assert detect(c10) == "cifar10" and detect(c10 / "cifar-10-batches-py") == "cifar10"
    reader = cifar10.read(c10)
    assert reader.classes.names == ["airplane", "automobile", "bird"]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.annotations[0].label, s.image.size) for s in samples] == [
        ("train/bird_s_000001.png", "train", "bird", (32, 32)),
        ("train/plane_s_000002.png", "train", "airplane", (32, 32)),
        ("train/car_s_000003.png", "train", "automobile", (32, 32)),
        ("test/plane_s_000004.png", "test", "airplane", (32, 32)),
    ]
    for s, seed in zip(samples, (1, 2, 3, 4), strict=True):
        assert np.array_equal(np.asarray(Image.open(s.image.path)), _rgb(seed))
        assert s.annotations == (Annotation(s.annotations[0].label, Label()),)


def test_write_cifar10_torchvision_reads_it(c10: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reader = cifar10.read(c10)
    report = registry.write(reader, out, format="cifar10", classes=reader.classes)
    assert report.images == 4 and report.annotations == {"label": 4} and report.files == 7
    assert not report.dropped and not report.converted
    train, test = _Cifar10(str(out), train=True), _Cifar10(str(out), train=False)
    assert train.classes == ["airplane", "automobile", "bird"]
    assert train.targets == [2, 0, 1] and test.targets == [0]
    for (img, _), seed in zip([train[i] for i in range(3)] + [test[0]], (1, 2, 3, 4), strict=True):
        assert np.array_equal(np.asarray(img), _rgb(seed))
    assert detect(out) == "cifar10"
    again = list(cifar10.read(out))
    assert [(s.image.file_name, s.annotations[0].label) for s in again] == [
        ("train/bird_s_000001.png", "bird"), ("train/plane_s_000002.png", "airplane"),
        ("train/car_s_000003.png", "automobile"), ("test/plane_s_000004.png", "airplane")]


def test_write_counts_resize_and_drops(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(big)
    grey = tmp_path / "grey.png"
    Image.new("L", (32, 32), 77).save(grey)
    samples = [
        Sample(ImageRef("big.png", path=str(big)), (Annotation("cat", Label()), Annotation("dog", Label())),
               split="valid"),
        Sample(ImageRef("grey.png", path=str(grey)), (Annotation("dog", Label()),)),
        Sample(ImageRef("none.png", width=32, height=32), (Annotation("dog", Label()),)),
        Sample(ImageRef("nolabel.png", path=str(grey)), ()),
    ]
    report = registry.write(samples, tmp_path / "out", format="cifar10")
    assert report.images == 2
    assert dict(report.converted) == {"image: resized to 32x32 (CIFAR10 stores that size)": 1,
                                      "split valid -> test (CIFAR10 has train and test only)": 1}
    assert dict(report.dropped) == {"label: CIFAR10 holds one class per image": 1,
                                    "image: no image bytes (CIFAR10 stores the pixels; --images none cannot write it)": 1,
                                    "image: no class": 1}
    test = _Cifar10(str(tmp_path / "out"), train=False)
    assert test.classes == ["cat", "dog"] and test.targets == [0]
    assert tuple(np.asarray(test[0][0])[5, 5]) == (200, 10, 10)
    train = _Cifar10(str(tmp_path / "out"), train=True)
    assert train.targets == [1] and tuple(np.asarray(train[0][0])[0, 0]) == (77, 77, 77)  # grey: no loss


@pytest.fixture()
def c100(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-100-python"
    _dump(root / "meta", {"fine_label_names": [b"apple", b"bee", b"beetle"],
                          "coarse_label_names": [b"fruit_and_vegetables", b"insects"]})
    _dump(root / "train", {"batch_label": b"training batch 1 of 1", "fine_labels": [1, 0, 2],
                           "coarse_labels": [1, 0, 1], "data": np.stack([_row(_rgb(i)) for i in (5, 6, 7)]),
                           "filenames": [b"bee_s_1.png", b"apple_s_2.png", b"beetle_s_3.png"]})
    _dump(root / "test", {"batch_label": b"testing batch 1 of 1", "fine_labels": [2], "coarse_labels": [1],
                          "data": np.stack([_row(_rgb(8))]), "filenames": [b"beetle_s_4.png"]})
    return tmp_path


def test_cifar100_fine_and_coarse_round_trip(c100: Path, tmp_path: Path) -> None:
    assert detect(c100) == "cifar100"
    reader = cifar100.read(c100)
    assert [(c.name, c.supercategory) for c in reader.classes] == [
        ("apple", "fruit_and_vegetables"), ("bee", "insects"), ("beetle", "insects")]
    samples = list(reader)
    assert [(s.split, s.annotations[0].label, dict(s.annotations[0].attributes)) for s in samples] == [
        ("train", "bee", {"coarse_label": "insects"}), ("train", "apple", {"coarse_label": "fruit_and_vegetables"}),
        ("train", "beetle", {"coarse_label": "insects"}), ("test", "beetle", {"coarse_label": "insects"})]
    assert np.array_equal(np.asarray(Image.open(samples[3].image.path)), _rgb(8))
    out = tmp_path / "out"
    report = registry.write(samples, out, format="cifar100", classes=reader.classes)
    assert report.images == 4 and not report.converted and not report.dropped
    train = _Cifar100(str(out), train=True)
    assert train.classes == ["apple", "bee", "beetle"] and train.targets == [1, 0, 2]
    with open(out / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    with open(out / "cifar-100-python" / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert [meta["coarse_label_names"][c] for c in raw["coarse_labels"]] == ["insects", "fruit_and_vegetables",
                                                                           "insects"]
    assert np.array_equal(np.asarray(train[2][0]), _rgb(7))


def test_a_pickle_cannot_run_code(c10: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(c10 / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil()}, f)
    with pytest.raises(FormatError) as e:
        list(cifar10.read(c10))
    assert "builtins.print is not allowed" in e.value.message
    assert e.value.path == str(c10 / "cifar-10-batches-py" / "test_batch")


def test_label_out_of_range_and_bad_data_are_refused(c10: Path) -> None:
    _dump(c10 / "cifar-10-batches-py" / "test_batch", {"labels": [7], "data": np.stack([_row(_rgb(4))])})
    with pytest.raises(FormatError) as e:
        list(cifar10.read(c10))
    assert (e.value.message, e.value.where) == ("label 7 is not among the 3 classes of batches.meta", "row 0")
    _dump(c10 / "cifar-10-batches-py" / "test_batch", {"labels": [0], "data": np.zeros((1, 100), np.uint8)})
    with pytest.raises(FormatError, match="uint8 array of N rows of 3072"):
        list(cifar10.read(c10))


def test_not_claimed_without_meta(c10: Path) -> None:
    (c10 / "cifar-10-batches-py" / "batches.meta").unlink()
    assert cifar10.detect(c10).score == 0 and cifar100.detect(c10).score == 0

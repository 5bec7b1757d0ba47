"""MNIST / Fashion-MNIST IDX files (formats/_idx.py).

Fixtures are written byte by byte as the format's documentation lays them out (http://yann.lecun.com/exdb/mnist/:
magic 0x00000803 / 0x00000801 as 32-bit big-endian, then the sizes, then unsigned bytes; the layout idx2numpy
and torchvision parse), gzip-compressed as downloaded. Oracle for what we write: torchvision.datasets.mnist's
``read_image_file`` / ``read_label_file`` (torchvision/datasets/mnist.py).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets.mnist import read_image_file, read_label_file

from visionloop.core import Annotation, FormatError, ImageRef, Label, Sample
from visionloop.formats import detect, fashion_mnist, mnist, registry


def _digits(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _idx(path: Path, magic: int, dims: tuple[int, ...], data: bytes, *, gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def _dataset(folder: Path, *, gz: bool = True) -> Path:
    train, test = _digits(3, 1), _digits(2, 2)
    _idx(folder / "train-images-idx3-ubyte", 0x803, (3, 28, 28), train.tobytes(), gz=gz)
    _idx(folder / "train-labels-idx1-ubyte", 0x801, (3,), bytes([5, 0, 9]), gz=gz)
    _idx(folder / "t10k-images-idx3-ubyte", 0x803, (2, 28, 28), test.tobytes(), gz=gz)
    _idx(folder / "t10k-labels-idx1-ubyte", 0x801, (2,), bytes([7, 2]), gz=gz)
    return folder


def test_read_mnist_gz_exact(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "digits")
    assert detect(root) == "mnist" and fashion_mnist.detect(root).score == 0
    reader = mnist.read(root)
    assert reader.classes.names == [str(i) for i in range(10)]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.annotations[0].label, s.image.size) for s in samples] == [
        ("train/00000.png", "train", "5", (28, 28)), ("train/00001.png", "train", "0", (28, 28)),
        ("train/00002.png", "train", "9", (28, 28)), ("test/00000.png", "test", "7", (28, 28)),
        ("test/00001.png", "test", "2", (28, 28))]
    pixels = list(_digits(3, 1)) + list(_digits(2, 2))
    for s, want in zip(samples, pixels, strict=True):
        with Image.open(s.image.path) as im:
            assert im.mode == "L" and np.array_equal(np.asarray(im), want)


def test_torchvision_layout_and_fashion_names(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _dataset(root / "FashionMNIST" / "raw", gz=False)
    assert detect(root) == "fashion_mnist"
    assert mnist.detect(root).score == 0 and "names Fashion-MNIST" in mnist.detect(root).reason
    samples = list(fashion_mnist.read(root))
    assert [s.annotations[0].label for s in samples] == ["Sandal", "T-shirt/top", "Ankle boot", "Sneaker",
                                                         "Pullover"]


def test_write_torchvision_reads_it(tmp_path: Path) -> None:
    reader = mnist.read(_dataset(tmp_path / "digits"))
    out = tmp_path / "out"
    report = registry.write(reader, out, format="mnist", classes=reader.classes)
    assert report.images == 5 and report.files == 4 and not report.converted and not report.dropped
    assert read_label_file(str(out / "train-labels-idx1-ubyte")).tolist() == [5, 0, 9]
    assert read_label_file(str(out / "t10k-labels-idx1-ubyte")).tolist() == [7, 2]
    assert np.array_equal(read_image_file(str(out / "train-images-idx3-ubyte")).numpy(), _digits(3, 1))
    assert np.array_equal(read_image_file(str(out / "t10k-images-idx3-ubyte")).numpy(), _digits(2, 2))
    # the bytes themselves: idx2numpy-style header, big-endian sizes
    assert (out / "t10k-labels-idx1-ubyte").read_bytes() == bytes.fromhex("00000801 00000002 0702".replace(" ", ""))


def test_write_counts_what_it_changes(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (56, 56), (255, 0, 0)).save(rgb)
    samples = [Sample(ImageRef("a.png", path=str(rgb)), (Annotation("cat", Label()),), split="val"),
               Sample(ImageRef("b.png", path=str(rgb)), (Annotation("dog", Label()),), split="train")]
    from visionloop.core.classes import ClassMap

    report = registry.write(samples, tmp_path / "out", format="mnist", classes=ClassMap.from_names(["cat", "dog"]))
    assert dict(report.converted) == {
        "image: RGB -> L (MNIST stores L pixels)": 2, "image: resized to 28x28 (MNIST stores that size)": 2,
        "split val -> test (MNIST has train and test only)": 1,
        "label: class name -> label number (IDX files hold numbers only)": 2}
    assert read_label_file(str(tmp_path / "out" / "t10k-labels-idx1-ubyte")).tolist() == [0]
    assert read_label_file(str(tmp_path / "out" / "train-labels-idx1-ubyte")).tolist() == [1]
    assert int(read_image_file(str(tmp_path / "out" / "train-images-idx3-ubyte"))[0, 5, 5]) == 76  # PIL's L of red


def test_broken_files_are_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "digits", gz=False)
    _idx(root / "train-labels-idx1-ubyte", 0x801, (4,), bytes([5, 0, 9, 1]), gz=False)
    with pytest.raises(FormatError) as e:
        list(mnist.read(root))
    assert e.value.message == "3 images but 4 labels in train-labels-idx1-ubyte"
    _idx(root / "train-labels-idx1-ubyte", 0x803, (3,), bytes([5, 0, 9]), gz=False)
    with pytest.raises(FormatError) as e:
        mnist.read(root)
    assert e.value.message.startswith("not an IDX file of unsigned bytes with 1 dimension (magic 00000803")
    _idx(root / "train-labels-idx1-ubyte", 0x801, (3,), bytes([5, 0, 9]), gz=False)
    data = (root / "train-images-idx3-ubyte").read_bytes()
    (root / "train-images-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(FormatError, match="truncated: image 2 of 3 is incomplete"):
        list(mnist.read(root))

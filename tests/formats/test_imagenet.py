"""ImageNet-style classification (formats/imagenet.py).

Fixtures follow (1) the ILSVRC CLS-LOC release as Kaggle ships it: ``LOC_synset_mapping.txt`` (``n01440764 tench,
Tinca tinca``; line number = class index), ``ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG``, flat ``val/``
images labelled by ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the wnid first); and (2) mmpretrain's
annotation lists (mmpretrain/datasets/custom.py, ``CustomDataset``: ``meta/train.txt`` lines ``<path> <index>``,
paths relative to the split folder). Oracle: torchvision's ``ImageFolder`` on the written ``train/`` and the lists
parsed by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import FormatError
from visionloop.formats import ImageMode, detect, imagenet, registry

MAPPING = "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn01484850 great white shark\n"


def _img(p: Path, colour: int = 0) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (colour, 0, 0)).save(p, format="JPEG")


def test_kaggle_ilsvrc_layout(tmp_path: Path) -> None:
    root = tmp_path / "imagenet-object-localization-challenge"
    (root).mkdir()
    (root / "LOC_synset_mapping.txt").write_text(MAPPING)
    cls = root / "ILSVRC" / "Data" / "CLS-LOC"
    _img(cls / "train" / "n01443537" / "n01443537_10007.JPEG")
    _img(cls / "train" / "n01440764" / "n01440764_10026.JPEG")
    _img(cls / "val" / "ILSVRC2012_val_00000001.JPEG")
    _img(cls / "val" / "ILSVRC2012_val_00000002.JPEG")
    (root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01484850 23 44 301 270 n01484850 1 2 30 40 \n")
    assert detect(root) == "imagenet"
    reader = imagenet.read(root)
    assert reader.classes.names == ["n01440764", "n01443537", "n01484850"]
    got = [(s.image.file_name, s.split, [a.label for a in s.annotations], s.state.value) for s in reader]
    assert got == [
        ("ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_10026.JPEG", "train", ["n01440764"], "annotated"),
        ("ILSVRC/Data/CLS-LOC/train/n01443537/n01443537_10007.JPEG", "train", ["n01443537"], "annotated"),
        ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", "val", ["n01484850"], "annotated"),
        ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000002.JPEG", "val", [], "missing"),  # not in the solution
    ]


def test_a_folder_not_in_the_mapping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "synsets.txt").write_text(MAPPING)
    _img(tmp_path / "train" / "n99999999" / "a.jpg")
    with pytest.raises(FormatError) as e:
        imagenet.read(tmp_path)
    assert e.value.message == "folder n99999999/ is not a class of synsets.txt"


def test_mmpretrain_lists_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "synsets.txt").write_text(MAPPING)
    lines = {"train": ["n01440764/n01440764_1.JPEG 0", "n01484850/n01484850_7.JPEG 2"],
             "val": ["ILSVRC2012_val_00000003.JPEG 1", "ILSVRC2012_val_00000004.JPEG 5"],
             "test": ["ILSVRC2012_test_00000001.JPEG"]}
    for split, rows in lines.items():
        (root / "meta" / f"{split}.txt").write_text("\n".join(rows) + "\n")
        for i, row in enumerate(rows):
            _img(root / split / row.split()[0], 40 * i)
    assert detect(root) == "imagenet"
    from visionloop.formats.base import quarantine_reads

    bad = []
    with quarantine_reads(bad.append):
        samples = list(imagenet.read(root))
    assert [(e.where, e.message) for e in bad] == [("line 2", "class index 5 is not among the 3 classes")]
    want = {f"{split}/{row.split()[0]}": (split, [imagenet._names(root / "meta" / "synsets.txt")[int(row.split()[1])]]
                                          if len(row.split()) > 1 else [])
            for split, rows in lines.items() for row in rows if not row.endswith(" 5")}
    assert {s.image.file_name: (s.split, [a.label for a in s.annotations]) for s in samples} == want
    out = tmp_path / "out"
    reader = imagenet.read(root)
    with quarantine_reads(lambda e: None):
        report = registry.write(reader, out, format="imagenet", classes=reader.classes, images=ImageMode.COPY)
    assert report.images == 4 and report.annotations == {"label": 3} and not report.dropped
    assert (out / "synsets.txt").read_text() == "n01440764\nn01443537\nn01484850\n"
    assert (out / "meta" / "train.txt").read_text() == "n01440764/n01440764_1.JPEG 0\nn01484850/n01484850_7.JPEG 2\n"
    assert (out / "meta" / "test.txt").read_text() == "_unlabelled/ILSVRC2012_test_00000001.JPEG\n"
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(out / "train"))
    assert [(Path(p).name, folder.classes[t]) for p, t in folder.samples] == [
        ("n01440764_1.JPEG", "n01440764"), ("n01484850_7.JPEG", "n01484850")]
    again = {s.image.file_name: [a.label for a in s.annotations] for s in imagenet.read(out)}
    assert again == {"train/n01440764/n01440764_1.JPEG": ["n01440764"], "train/n01484850/n01484850_7.JPEG": ["n01484850"],
                     "val/n01443537/ILSVRC2012_val_00000003.JPEG": ["n01443537"],
                     "test/_unlabelled/ILSVRC2012_test_00000001.JPEG": []}


def test_the_new_formats_are_listed_by_visionloop_formats() -> None:
    import json

    from typer.testing import CliRunner

    from visionloop.cli.main import app

    out = CliRunner().invoke(app, ["formats", "--json"])
    assert out.exit_code == 0
    names = {f["name"] for f in json.loads(out.stdout)}
    assert {"cifar10", "cifar100", "mnist", "fashion_mnist", "icdar", "labelme_xml", "imagenet"} <= names
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"- {len(names)} dataset formats read and written" in readme

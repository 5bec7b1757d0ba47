"""ImageNet-style classification (formats/imagenet.py).

Fixtures follow (1) the ILSVRC CLS-LOC release as Kaggle ships it: ``LOC_synset_mapping.txt`` (``n01440764 tench,
Tinca tinca``; line number = class index), ``ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG``, flat ``val/``
images labelled by ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the wnid first); and (2) mmpretrain's
annotation lists (mmpretrain/datasets/custom.py, ``CustomDataset``: ``meta/train.txt`` lines ``<path> <index>``,
paths relative to the split folder). Oracle: torchvision's ``ImageFolder`` on the written ``train/`` and the lists
parsed by hand. Human-readable class names: ILSVRC-2012's own ``synset_words.txt`` lines for the synsets that share a
first word (two ``crane``, two ``maillot``, ``Cardigan`` / ``cardigan``).
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
    assert reader.classes.names == ["tench", "goldfish", "great white shark"]  # the words, not the wnids
    got = [(s.image.file_name, s.split, [(a.label, dict(a.attributes)) for a in s.annotations], s.state.value)
           for s in reader]
    assert got == [
        ("ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_10026.JPEG", "train", [("tench", {"wnid": "n01440764"})],
         "annotated"),
        ("ILSVRC/Data/CLS-LOC/train/n01443537/n01443537_10007.JPEG", "train", [("goldfish", {"wnid": "n01443537"})],
         "annotated"),
        ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", "val",
         [("great white shark", {"wnid": "n01484850"})], "annotated"),
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
    assert (out / "synsets.txt").read_text() == "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n"
    assert (out / "meta" / "train.txt").read_text() == "n01440764/n01440764_1.JPEG 0\nn01484850/n01484850_7.JPEG 2\n"
    assert (out / "meta" / "test.txt").read_text() == "_unlabelled/ILSVRC2012_test_00000001.JPEG\n"
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(out / "train"))
    assert [(Path(p).name, folder.classes[t]) for p, t in folder.samples] == [
        ("n01440764_1.JPEG", "n01440764"), ("n01484850_7.JPEG", "n01484850")]
    again = {s.image.file_name: [a.label for a in s.annotations] for s in imagenet.read(out)}
    assert again == {"train/n01440764/n01440764_1.JPEG": ["tench"], "train/n01484850/n01484850_7.JPEG": ["great white shark"],
                     "val/n01443537/ILSVRC2012_val_00000003.JPEG": ["goldfish"],
                     "test/_unlabelled/ILSVRC2012_test_00000001.JPEG": []}


# ILSVRC-2012's synset_words.txt lines (Caffe's data/ilsvrc12 get_ilsvrc_aux.sh; the same words as
# LOC_synset_mapping.txt) for the synsets whose first word another synset shares
SYNSET_WORDS = """n02012849 crane
n03126707 crane
n02113186 Cardigan, Cardigan Welsh corgi
n03014705 cardigan
n03710637 maillot
n03710721 maillot, tank suit
n01440764 tench, Tinca tinca
"""


def test_synset_words_give_readable_names_and_shared_names_their_wnid(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "meta").mkdir(parents=True)
    (root / "synset_words.txt").write_text(SYNSET_WORDS)
    wnids = [line.split()[0] for line in SYNSET_WORDS.splitlines()]
    (root / "meta" / "train.txt").write_text("".join(f"{w}/{w}_1.JPEG {i}\n" for i, w in enumerate(wnids)))
    for w in wnids:
        _img(root / "train" / w / f"{w}_1.JPEG")
    reader = imagenet.read(root)
    assert reader.classes.names == ["crane (n02012849)", "crane (n03126707)", "Cardigan (n02113186)",
                                    "cardigan (n03014705)", "maillot (n03710637)", "maillot (n03710721)", "tench"]
    samples = list(reader)
    assert [(a.label, a.attributes["wnid"]) for s in samples for a in s.annotations] == list(
        zip(reader.classes.names, wnids, strict=True))
    out = tmp_path / "out"
    registry.write(samples, out, format="imagenet", classes=reader.classes, images=ImageMode.NONE)
    assert (out / "synsets.txt").read_text() == (
        "n02012849 crane\nn03126707 crane\nn02113186 Cardigan\nn03014705 cardigan\nn03710637 maillot\n"
        "n03710721 maillot\nn01440764 tench\n")
    assert imagenet.read(out).classes.names == reader.classes.names
    assert (out / "meta" / "train.txt").read_text().splitlines()[1] == "n03126707/n03126707_1.JPEG 1"


def test_the_new_formats_are_listed_by_visionloop_formats() -> None:
    import json

    from typer.testing import CliRunner

    from visionloop.cli.main import app

    out = CliRunner().invoke(app, ["formats", "--json"])
    assert out.exit_code == 0
    names = {f["name"] for f in json.loads(out.stdout)}
    assert {"cifar10", "cifar100", "mnist", "fashion_mnist", "icdar", "icdar_word_recognition",
            "icdar_text_segmentation", "labelme_xml", "imagenet"} <= names
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"- {len(names)} dataset formats read and written" in readme

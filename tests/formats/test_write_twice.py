"""Writing a dataset into a folder that already holds one never loses or mixes data: the writer either
refuses before writing anything (naming the folder or file) or writes the very same files again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from visionloop.core import Annotation, FormatError, Label, Sample
from visionloop.demo import synthetic
from visionloop.formats import FORMATS, ImageMode, registry

# the writers that refuse a folder holding their files; every other one rewrites identical files
REFUSE = {"cifar10", "cifar100", "mnist", "fashion_mnist", "icdar", "icdar_word_recognition", "icdar_text_segmentation",
          "labelme_xml", "imagenet", "camvid_segnet", "voc", "tfrecord", "tfcsv", "createml", "labelme", "dota", "retinanet", "yolokeras", "clscsv", "vlm",
          "cityscapes", "semseg", "kitti", "kitti_seg", "mapillary", "openimages", "ade20k", "camvid", "folders",
          "unlabelled"}
# SageMaker manifests carry the time they were written (`creation-date`), as SageMaker's own do
WRITE_TIME = {"sagemaker": re.compile(rb'"creation-date":"[^"]*"')}


def _snapshot(folder: Path, name: str) -> dict[str, bytes]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if name in WRITE_TIME:
                data = WRITE_TIME[name].sub(b'"creation-date":""', data)
            out[p.relative_to(folder).as_posix()] = data
    return out


@pytest.fixture(scope="module")
def sample_sets(tmp_path_factory) -> dict[str, list[Sample]]:
    shapes = list(synthetic.shapes(6, folder=tmp_path_factory.mktemp("render")))
    labels = [Sample(s.image, (Annotation(("cat", "dog")[i % 2], Label()),), split=s.split)
              for i, s in enumerate(shapes)]
    return {"shapes": shapes, "labels": labels}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_second_write_refuses_or_writes_the_same_files(name, sample_sets, tmp_path):
    samples = sample_sets["labels" if name == "folders" else "shapes"]
    out = tmp_path / "out"
    registry.write(samples, out, format=name, images=ImageMode.COPY)
    first = _snapshot(out, name)
    assert first, f"{name} wrote nothing"
    if name in REFUSE:
        with pytest.raises(FormatError) as e:
            registry.write(samples, out, format=name, images=ImageMode.COPY)
        assert str(out) in str(e.value)
        assert "nothing is overwritten" in str(e.value) or "refusing to overwrite" in str(e.value)
    else:
        registry.write(samples, out, format=name, images=ImageMode.COPY)
    assert _snapshot(out, name) == first

"""One conformance test over every registered format (as datumaro's TestDataFormatBase): a new format gets
these for free. For each format, synthetic shapes (boxes, polygons, masks over three splits; whole-image labels
for the classification formats) are written with the format's own writer, then:

- the format's detector claims its own output, and no other format claims it more strongly;
- write → read → write → read → write: the second and third writes are the same files (the first may differ
  only where the synthetic input is not what a reader gives back, e.g. integer coordinates);
- nothing it holds is dropped: every image comes back, the annotations per geometry kind are what the writer
  reported writing, with the same classes, and the splits come back where the format keeps splits (under the
  format's own name for the validation split where it has one, e.g. YOLO's `val`);
- a file cut short (its largest annotation file, cut inside a value) is refused with one line naming it — never
  read as a shorter dataset;
- captions (text with no class): a format that holds them gives each back to its image, any other counts each as
  dropped and with --strict refuses.
- polylines (open lines): a format that holds them (`"polyline"` in its FormatSpec's `writes`) writes them and
  reads every one back with its points; any other counts each as dropped ("polyline: <format> has no line
  geometry ...", `base.UNHELD`), reads none back, and with --strict refuses the write.

The refusal of a folder that already holds a dataset is `test_write_twice.py`; the claims of almost-this-format
folders are `test_detect_claims.py`; what is specific to a format stays in its own test file.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from visionloop.core import (
    Annotation,
    Caption,
    Label,
    LabelState,
    LossError,
    Polyline,
    Sample,
    VisionLoopError,
)
from visionloop.core.geometry import kind
from visionloop.demo import synthetic
from visionloop.formats import FORMATS, ImageMode, registry
from visionloop.formats.base import strict_writes

# where the format names the validation split its own way (its layout's convention)
VALID_AS = {"yolo": "val", "darknet": "val", "icdar": "val", "icdar_word_recognition": "val",
            "icdar_text_segmentation": "val", "imagenet": "val", "camvid_segnet": "val",
            # train and test only: the writer reports "split valid -> test" as a lossy conversion
            "cifar10": "test", "cifar100": "test", "mnist": "test", "fashion_mnist": "test"}
# file contents that carry the time of writing, as the tool's own files do
WRITE_TIME = {"sagemaker": re.compile(rb'"creation-date":"[^"]*"')}
# a cut that leaves a well-formed file (the format has no end marker and the cut value still parses)
CUT_UNSEEN = {"yolo": "a polygon cut after a digit is a shorter polygon of valid numbers"}
# the refusal names the file that uses what the cut took away: a label or mask whose class the cut class list
# no longer has (MOT's gt.txt / labels.txt, ADE20K's objectInfo150.csv, CamVid's class_dict.csv, _classes.csv)
NAMED_BY_USE = {"mot", "ade20k", "camvid", "semseg"}
NO_ANNOTATION_FILES = {"folders", "unlabelled", "camvid_segnet"}  # (camvid_segnet: no class of the shapes)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
NAMES_CHANGE = {"mnist", "fashion_mnist", "mot", "cvat_video"}  # images are renamed (index / frame numbers)


def _classification(name: str) -> bool:
    spec = FORMATS[name]
    return "label" in spec.writes and "box" not in spec.writes


def _keeps_splits(name: str) -> bool:
    return any(h.startswith("splits") for h in FORMATS[name].holds) or name in ("cityscapes", "mot")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list[Sample]]:
    shapes = list(synthetic.shapes(6, folder=tmp_path_factory.mktemp("render")))
    labels = [Sample(s.image, (Annotation(("cat", "dog")[i % 2], Label()),), split=s.split)
              for i, s in enumerate(shapes)]
    assert {s.split for s in shapes} == {"train", "valid", "test"}
    return {"shapes": shapes, "labels": labels}


def _write(name: str, samples, out: Path, classes):
    return registry.write(samples, out, format=name, images=ImageMode.COPY, classes=classes)


def _snapshot(folder: Path, name: str) -> dict[str, bytes]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if name in WRITE_TIME:
                data = WRITE_TIME[name].sub(b"", data)
            out[p.relative_to(folder).as_posix()] = data
    return out


@pytest.fixture(scope="module")
def written(inputs, tmp_path_factory):
    """name -> (folder, write report, samples written) of the first write, made once per format."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            samples = inputs["labels" if _classification(name) else "shapes"]
            out = tmp_path_factory.mktemp(name) / "out"
            report = _write(name, samples, out, None if _classification(name) else synthetic.classes())
            cache[name] = (out, report, samples)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_detects_its_own_output(name, written):
    out, _, _ = written(name)
    claims = registry.detect_all(out)
    assert claims[0][0] == name, f"{name}'s output is claimed by {claims[0]}"
    assert registry.detect(out) == name
    score = claims[0][1].score
    assert all(d.score < score for n, d in claims[1:]), [(n, d) for n, d in claims[1:] if d.score >= score]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_write_read_write_is_stable(name, written, tmp_path):
    out, _, _ = written(name)
    reader = registry.read(out, format=name)
    second = tmp_path / "second"
    _write(name, list(reader), second, reader.classes)
    reader = registry.read(second, format=name)
    third = tmp_path / "third"
    _write(name, list(reader), third, reader.classes)
    a, b = _snapshot(second, name), _snapshot(third, name)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_reads_back_everything_it_wrote(name, written):
    out, report, samples = written(name)
    back = list(registry.read(out, format=name))
    assert len(back) == len(samples) == report.images
    assert Counter(kind(a.geometry) for s in back for a in s.annotations) == Counter(report.annotations)
    renamed = [k for k in report.converted if k.startswith(("class", "label"))]  # fixed class sets, reported
    if not renamed:
        assert {a.label for s in back for a in s.annotations} <= {a.label for s in samples for a in s.annotations}
        if not report.dropped and sum(report.annotations.values()) == sum(len(s.annotations) for s in samples):
            assert Counter(a.label for s in back for a in s.annotations) == \
                Counter(a.label for s in samples for a in s.annotations)  # each one, in some geometry
    if name in NAMES_CHANGE:
        return
    split_of = {Path(s.image.file_name).stem: s.split for s in samples}
    got = {}
    for s in back:
        stem = Path(s.image.file_name).stem
        stem = next(k for k in split_of if stem == k or stem.startswith(k + "_"))  # cityscapes: _leftImg8bit
        got[stem] = s.split
    if _keeps_splits(name):
        want = {k: VALID_AS.get(name, v) if v == "valid" else v for k, v in split_of.items()}
    else:
        want = dict.fromkeys(split_of)
    assert got == want


@pytest.mark.parametrize("name", sorted(set(FORMATS) - NO_ANNOTATION_FILES - set(CUT_UNSEEN)))
def test_a_file_cut_short_is_refused(name, inputs, tmp_path):
    samples = inputs["labels" if _classification(name) else "shapes"]
    out = tmp_path / "out"
    _write(name, samples, out, None if _classification(name) else synthetic.classes())
    files = [p for p in out.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES]
    big = max(files, key=lambda p: (p.stat().st_size, str(p)))
    data = big.read_bytes()
    cut = len(data) // 2
    while data[cut - 1:cut] in (b"\n", b",", b" ") or data[cut:cut + 1] in (b"\n", b"\r"):
        cut += 1  # inside a value, not at its end
    big.write_bytes(data[:cut])
    with pytest.raises(VisionLoopError) as e:
        list(registry.read(out, format=name))
    named = str(e.value).split(" (")[0].split(": ")[0]
    assert named == str(big) or (name in NAMED_BY_USE and named.startswith(str(out))), str(e.value)


# ------------------------------------------------------------------------------------------------ captions
CAPTIONS = ("a few shapes on a plain background", "test pattern")


def _with_captions(samples: list[Sample]) -> list[Sample]:
    """Each sample with one caption after its annotations, the first with two (text with no class)."""
    out = []
    for i, s in enumerate(samples):
        texts = CAPTIONS if i == 0 else (f"picture {i}",)
        out.append(Sample(s.image, (*s.annotations, *(Annotation("", Caption(t)) for t in texts)), split=s.split))
    return out


def _captions_of(samples) -> dict[str, list[str]]:
    return {Path(s.image.file_name).stem: [a.geometry.text for a in s.annotations if a.is_caption] for s in samples}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_captions_kept_or_counted_as_dropped(name, inputs, tmp_path):
    """A format that holds captions gives every one back, to its image, in order (and writes them the same
    again); any other writer counts each as dropped and, strict, refuses the first — never a class named ""."""
    samples = _with_captions(inputs["labels" if _classification(name) else "shapes"])
    n = sum(a.is_caption for s in samples for a in s.annotations)
    classes = None if _classification(name) else synthetic.classes()
    report = _write(name, samples, tmp_path / "out", classes)
    assert report.images == len(samples)
    if "caption" not in FORMATS[name].writes:
        assert report.dropped[f"caption: {name} cannot hold captions"] == n
        assert "caption" not in report.annotations
        back = list(registry.read(tmp_path / "out", format=name))
        assert not any(a.is_caption for s in back for a in s.annotations)
        assert "" not in {a.label for s in back for a in s.annotations}
        with strict_writes(), pytest.raises(LossError, match="caption"):
            _write(name, samples, tmp_path / "strict", classes)
        return
    assert report.annotations["caption"] == n and not any(k.startswith("caption") for k in report.dropped)
    reader = registry.read(tmp_path / "out", format=name)
    back = list(reader)
    assert "" not in reader.classes
    want = _captions_of(samples)
    got = _captions_of(back)
    if name not in NAMES_CHANGE:
        assert got == want
    assert sorted(map(tuple, got.values())) == sorted(map(tuple, want.values()))
    assert all(s.state is LabelState.ANNOTATED for s in back)
    second = tmp_path / "second"
    _write(name, back, second, reader.classes)
    assert _captions_of(registry.read(second, format=name)) == got
# -- polylines -------------------------------------------------------------------------------------------------
LINES = (Polyline((2.5, 3.5, 20, 10, 30.25, 4)), Polyline((100, 200, 300, 20)), Polyline((7, 7, 8, 8, 9, 7, 10, 8)))


def _with_lines(samples: list[Sample]) -> list[Sample]:
    """The first three samples, each with one more annotation: a polyline of class `lane`."""
    return [Sample(s.image, (*s.annotations, Annotation("lane", line)), split=s.split)
            for s, line in zip(samples, LINES, strict=False)]


def _line_inputs(name: str, inputs) -> tuple[list[Sample], object]:
    if _classification(name):
        return _with_lines(inputs["labels"]), None
    classes = synthetic.classes()
    classes.add("lane")
    return _with_lines(inputs["shapes"]), classes


def _points(samples) -> list[tuple[float, ...]]:
    return sorted(tuple(round(v, 6) for v in a.geometry.points) for s in samples for a in s.annotations
                  if isinstance(a.geometry, Polyline))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_polylines_are_kept_or_counted_dropped(name, inputs, tmp_path):
    samples, classes = _line_inputs(name, inputs)
    out = tmp_path / "out"
    report = _write(name, samples, out, classes)
    back = list(registry.read(out, format=name))
    lost = {k: n for k, n in report.dropped.items() if k.startswith("polyline")}
    if "polyline" in FORMATS[name].writes:
        assert report.annotations["polyline"] == len(LINES) and lost == {}
        assert _points(back) == _points(samples)
        assert {a.label for s in back for a in s.annotations if isinstance(a.geometry, Polyline)} == {"lane"}
    else:
        assert lost == {f"polyline: {name} has no line geometry (open polylines)": len(LINES)}
        assert report.annotations["polyline"] == 0 and _points(back) == []


@pytest.mark.parametrize("name", sorted(n for n, spec in FORMATS.items() if "polyline" not in spec.writes))
def test_strict_refuses_to_drop_a_polyline(name, inputs, tmp_path):
    samples, classes = _line_inputs(name, inputs)
    with strict_writes(), pytest.raises(LossError, match=f"would be dropped: polyline: {name} has no line geometry"):
        _write(name, samples, tmp_path / "out", classes)

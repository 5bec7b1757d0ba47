"""detect_all() leaves out, for a FILE, the formats whose FormatSpec.files cannot hold its suffix.

Those formats are not even imported, so each declaration must be right: a format that could claim a
file (score > 0) with a suffix it does not declare would silently lose to another. Checked here on
every file under tests/, the real datasets and every file each format's writer writes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from visionloop.core import Annotation, Box, Keypoints, Label, RotatedBox, Sample
from visionloop.demo import synthetic
from visionloop.formats import FORMATS, Detection, ImageMode, registry

ROOT = Path(__file__).resolve().parents[2]

# Formats whose detect() can claim a file whatever its suffix: they declare files=None (always asked).
ANY_SUFFIX = {
    "sagemaker",  # _manifests() takes any file and sniffs its first line for a JSON object with source-ref
    "tfrecord",  # sharded record files are named <base>.record-00000-of-00010: their suffixes are no finite list
}


def _sample_sets(folder: Path) -> dict[str, list[Sample]]:
    shapes = list(synthetic.shapes(6, folder=folder))  # boxes, polygons, masks; train/valid/test splits
    return {
        "shapes": shapes,
        "nosplit": [Sample(s.image, s.annotations, split=None) for s in shapes],
        "labels": [Sample(s.image, (Annotation(("cat", "dog")[i % 2], Label()),), split=s.split)
                   for i, s in enumerate(shapes)],
        "extra": [Sample(s.image, (Annotation("person", Keypoints((10, 10, 2, 20, 20, 2))),
                                   Annotation("car", RotatedBox(50, 50, 20, 10, 30)),
                                   Annotation("car", Box(1, 1, 30, 30), track_id=i + 1)))
                  for i, s in enumerate(shapes)],
    }


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """Every sample set written in every format: <root>/<format>/<set>/..."""
    root = tmp_path_factory.mktemp("written")
    sets = _sample_sets(root / "render")
    for name in FORMATS:
        for set_name, samples in sets.items():
            registry.write(samples, root / name / set_name, format=name, images=ImageMode.COPY)
        assert _files(root / name), f"{name} wrote no file for any sample set"
    return root


@pytest.fixture(scope="module")
def corpus(written, tmp_path_factory, raccoon, lund) -> list[Path]:
    """The files to detect: tests/, the real datasets, everything written, and renamed copies of what was
    written (upper-case suffix; suffix dropped), kept in a folder of the same name as the original's."""
    files = _files(ROOT / "tests") + _files(raccoon) + _files(lund) + _files(written)
    variants = tmp_path_factory.mktemp("variants")
    for i, f in enumerate(_files(written)):
        if f.suffix.lower() in (".jpg", ".png"):
            continue
        folder = variants / str(i) / f.parent.name
        folder.mkdir(parents=True)
        for new in (f.stem + f.suffix.upper(), f.stem):
            shutil.copyfile(f, folder / new)
            files.append(folder / new)
    return files


@pytest.fixture(scope="module")
def verdicts(corpus) -> dict[Path, dict[str, Detection]]:
    """Every format's detect() of every file, none left out."""
    return {f: {name: spec.load().detect(f) for name, spec in FORMATS.items()} for f in corpus}


def test_no_format_claims_a_suffix_it_does_not_declare(verdicts):
    wrong = [f"{name} claims {f} ({d.score}: {d.reason}) but declares files={FORMATS[name].files}"
             for f, by_format in verdicts.items() for name, d in by_format.items()
             if FORMATS[name].files is not None and f.suffix.lower() not in FORMATS[name].files and d.score > 0]
    assert not wrong, "\n".join(wrong)


def test_the_corpus_exercises_every_format_that_claims_files(verdicts):
    claimed = {name for by_format in verdicts.values() for name, d in by_format.items() if d.score > 0}
    assert {name for name, spec in FORMATS.items() if spec.files != ()} <= claimed
    suffixes = {f.suffix.lower() for f in verdicts}
    assert {".json", ".xml", ".csv", ".txt", ".jsonl", ".ndjson", ".manifest", ".record", ".data", ".names",
            ".yaml", ""} <= suffixes
    assert any(f.suffix == ".JSON" for f in verdicts)  # the upper-case copies


def test_detect_all_agrees_with_asking_every_format(verdicts):
    for f, by_format in verdicts.items():
        full = sorted(by_format.items(), key=lambda r: -r[1].score)
        filtered = registry.detect_all(f)
        assert sorted(name for name, _ in filtered) == sorted(FORMATS), f
        assert (filtered[0][0], filtered[0][1].score) == (full[0][0], full[0][1].score), f
        skipped = {name: d for name, d in filtered if d.reason.startswith("does not read a ")}
        for name, d in skipped.items():
            assert d.score == 0 and by_format[name].score <= 0, (f, name)


def test_skipped_formats_still_say_why(written):
    f = next((written / "coco" / "nosplit").rglob("*.json"))
    reasons = dict(registry.detect_all(f))
    assert reasons["cvat"] == Detection.no("does not read a .json file")
    assert reasons["folders"].reason == "does not read a .json file"
    bare = f.parent / "noext"
    shutil.copyfile(f, bare)
    assert dict(registry.detect_all(bare))["coco"].reason == "does not read a suffix-less file"


def test_detecting_a_coco_json_imports_no_xml_format(written):
    f = next((written / "coco" / "nosplit").rglob("*.json"))
    code = ("import sys\n"
            "from visionloop.formats import registry\n"
            f"print(registry.detect({str(f)!r}))\n"
            "print(sorted(m for m in ('visionloop.formats.cvat', 'visionloop.formats.voc') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["coco", "[]"], out


def test_every_format_declares_its_files_unless_any_suffix_will_do():
    for name, spec in FORMATS.items():
        if name in ANY_SUFFIX:
            assert spec.files is None, name
        else:
            assert spec.files is not None, f"{name}: declare FormatSpec.files"
            assert all(s.startswith(".") and s == s.lower() for s in spec.files), (name, spec.files)


def test_the_any_suffix_formats_do_claim_odd_suffixes(written, tmp_path):
    manifest = next((written / "sagemaker" / "nosplit").rglob("*.manifest"))
    record = next((written / "tfrecord" / "nosplit").rglob("*.record"))
    for src, name, new in ((manifest, "sagemaker", "labels.odd"), (manifest, "sagemaker", "output"),
                           (record, "tfrecord", "train.record-00000-of-00001")):
        shutil.copyfile(src, tmp_path / new)
        assert FORMATS[name].load().detect(tmp_path / new).score > 0, new
        assert registry.detect(tmp_path / new) == name

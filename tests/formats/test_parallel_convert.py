"""Converting in parts (forked processes) gives exactly what converting in one process gives.

The COCO reader cuts its annotations into byte ranges at changes of image
(`coco._parts`); each part checks as it reads that the cut was right, and any
surprise sends the whole conversion back to one process. Every test compares
the parallel output, byte for byte, with the one-process output.

The parts are forked only from a process without other threads (`runtime.can_fork`, native threads
included: a child forked beside OpenCV's thread pool hung). A test worker that ran OpenCV before has such
threads, so these tests run in a fresh interpreter (`test_in_a_fresh_process`), where the fork is taken.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visionloop import runtime
from visionloop.core import FormatError, LossError
from visionloop.core.classes import ClassMapping
from visionloop.formats import coco, registry
from visionloop.formats.convert import convert

FRESH = os.environ.get("VISIONLOOP_FRESH_PROCESS") == "1"


@pytest.mark.skipif(FRESH, reason="the outer run")
@pytest.mark.filterwarnings("ignore")
def test_in_a_fresh_process():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", __file__],
                       env={**os.environ, "VISIONLOOP_FRESH_PROCESS": "1"}, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and " passed, 1 skipped" in r.stdout, r.stdout[-4000:]


@pytest.fixture(autouse=True)
def runs(monkeypatch, request):
    """Small files are cut too; `runs` records how many parts each parallel run had, and whether it failed."""
    if request.node.name == "test_in_a_fresh_process":
        return []
    if not FRESH:
        pytest.skip("runs in a fresh interpreter: test_in_a_fresh_process")
    assert runtime.can_fork(), [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    monkeypatch.setattr(coco, "PART_MIN_BYTES", 0)
    seen = []
    real = runtime.run_forked

    def spy(parts, work):
        try:
            out = real(parts, work)
        except runtime.PartFailed:
            seen.append((len(parts), "failed"))
            raise
        seen.append((len(parts), "ok"))
        return out

    monkeypatch.setattr(runtime, "run_forked", spy)
    return seen


def _doc(n=60, *, per=3, order=None, skip=(0, 7, 8, 59), extra=None):
    """n images; image i (1-based) gets `per` boxes unless in `skip` (0-based); categories last, as COCO has it."""
    images = [{"id": i + 1, "file_name": f"img_{i:03d}.jpg", "width": 100, "height": 80} for i in range(n)]
    anns = []
    for i in (order if order is not None else range(n)):
        if i in skip:
            continue
        for k in range(per):
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": (3, 5, 9)[(i + k) % 3],
                   "bbox": [1.5 + k, 2.0 + i % 7, 10.25, 5.0 + k], "area": 10.25 * (5.0 + k), "iscrowd": 0,
                   "segmentation": [[1.5, 2.0, 11.75, 2.0, 11.75, 7.0]] if (i + k) % 5 == 0 else []}
            if extra:
                ann.update(extra(i, k))
            anns.append(ann)
    cats = [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}, {"id": 9, "name": "émeu"}]
    return {"info": {}, "images": images, "annotations": anns, "categories": cats}


def _write(tmp_path, doc, indent=None):
    p = tmp_path / "annotations" / "instances_default.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    return p


def _tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _both(tmp_path, src, to, **kw):
    one = convert(src, tmp_path / f"one-{to}", to=to, images="none", workers=1, **kw)
    many = convert(src, tmp_path / f"many-{to}", to=to, images="none", workers=3, **kw)
    assert _tree(tmp_path / f"one-{to}") == _tree(tmp_path / f"many-{to}")
    assert many.to_json() | {"path": ""} == one.to_json() | {"path": ""}
    return one


@pytest.mark.parametrize("indent", [None, 1])
def test_parts_cover_every_image_once_in_order(tmp_path, indent):
    src = _write(tmp_path, _doc(), indent=indent)
    reader = registry.read(src)
    parts = reader.parts(3)
    assert parts is not None and len(parts) == 3
    starts = [p.start for p in parts]
    got = [s for p in parts for s in p]
    want = list(registry.read(src))
    assert got == want and len(want) == 60
    # each part starts where the samples before it end
    counts = [len(list(p)) for p in parts]
    assert starts == [0, counts[0], counts[0] + counts[1]]


@pytest.mark.parametrize("to", ["yolo", "voc", "coco"])
def test_same_output_as_one_process(tmp_path, to, runs):
    src = _write(tmp_path, _doc())
    report = _both(tmp_path, src, to)
    assert runs == [(3, "ok")]  # the parts were used, not the fallback
    assert report.images == 60
    if to == "coco":
        out = json.loads((tmp_path / "many-coco" / "_annotations.coco.json").read_text(encoding="utf-8"))
        assert [a["id"] for a in out["annotations"]] == list(range(1, 56 * 3 + 1))
        assert [i["id"] for i in out["images"]] == list(range(1, 61))
        assert {c["id"] for c in out["categories"]} == {3, 5, 9}


@pytest.mark.parametrize("case", ["out_of_order", "not_grouped", "nested_objects"])
def test_files_the_cut_does_not_fit_are_converted_in_one_process(tmp_path, case, runs):
    if case == "out_of_order":
        doc = _doc(order=range(59, -1, -1))
    elif case == "not_grouped":
        doc = _doc()
        doc["annotations"].append({**doc["annotations"][0], "id": 999})  # image 2 again, at the very end
    else:  # `}, {` inside annotations: the cut may land inside one, which the part before it must catch
        doc = _doc(extra=lambda i, k: {"attributes": {"refs": [{"image_id": i + 1}, {"image_id": i + 1},
                                                               {"image_id": min(i + 2, 60)}]}})
    src = _write(tmp_path, doc)
    for to in ("yolo", "coco"):
        _both(tmp_path, src, to)
    if case != "out_of_order":  # (out of order: the cuts' images come in the wrong order, so no parts)
        assert runs == [(3, "failed")] * 2  # the last part finds image 2 out of place / a cut inside an object


def test_errors_are_the_one_process_errors(tmp_path):
    doc = _doc()
    doc["annotations"][-5]["category_id"] = 4
    src = _write(tmp_path, doc)
    want = len(doc["annotations"]) - 5
    with pytest.raises(FormatError, match=rf"annotations\[{want}\] \(id {want + 1}\)\): unknown category_id 4"):
        convert(src, tmp_path / "out", to="yolo", images="none", workers=3, strict=True)
    assert not (tmp_path / "out").exists()
    # by default the entry's image is quarantined, the same with parts as in one process
    image = doc["annotations"][want]["image_id"]
    record = {"file": "annotations/instances_default.json", "element": f"annotations[{want}] (id {want + 1})",
              "reason": f"unknown category_id 4; image_id {image} left out"}
    many = convert(src, tmp_path / "many", to="yolo", images="none", workers=3)
    one = convert(src, tmp_path / "one", to="yolo", images="none", workers=1)
    assert many.quarantined == one.quarantined == [record]
    assert many.images == one.images == 59


@pytest.mark.parametrize("ids", ["int", "str"])
def test_a_duplicate_annotation_id_across_parts_is_the_one_process_error(tmp_path, runs, ids):
    """The first and the last annotation share an id: each part is fine alone; the check after all parts is not."""
    doc = _doc()
    if ids == "str":
        for a in doc["annotations"]:
            a["id"] = f"a{a['id']}"
    doc["annotations"][-1]["id"] = doc["annotations"][0]["id"]
    last = len(doc["annotations"]) - 1
    want = rf"duplicate annotation id {doc['annotations'][0]['id']!r} \(first at annotations\[0\]\)"
    src = _write(tmp_path, doc)
    with pytest.raises(FormatError, match=want) as many:
        convert(src, tmp_path / "many", to="yolo", images="none", workers=3)
    assert runs == [(3, "ok")]  # the parts read it; the error came from the check after them
    with pytest.raises(FormatError, match=want) as one:
        convert(src, tmp_path / "one", to="yolo", images="none", workers=1)
    assert str(many.value) == str(one.value) and f"annotations[{last}]" in str(many.value)
    assert not (tmp_path / "many").exists() and not (tmp_path / "one").exists()


def test_strict_loss_and_class_mapping(tmp_path):
    doc = _doc(extra=lambda i, k: {"keypoints": [5, 5, 2], "num_keypoints": 1} if i == 50 and k == 0 else {})
    src = _write(tmp_path, doc)
    with pytest.raises(LossError, match="keypoints"):
        convert(src, tmp_path / "strict", to="yolo", images="none", workers=3, strict=True)
    mapping = ClassMapping({"cat": "animal", "dog": "animal", "émeu": None})
    report = _both(tmp_path, src, "yolo", classes=mapping)
    emeu = {c["id"] for c in doc["categories"] if c["name"] == "émeu"}
    dropped = [a for a in doc["annotations"] if a["category_id"] in emeu]
    polygons = sum(1 for a in dropped if a.get("segmentation"))
    keypoints = sum(1 for a in dropped if a.get("keypoints"))
    assert polygons and keypoints  # the mapping drops every kind the document holds
    assert dict(report.dropped) == {
        "box: class 'émeu' dropped by the class mapping": len(dropped) - polygons,
        "polygon: class 'émeu' dropped by the class mapping": polygons,
        "keypoints: class 'émeu' dropped by the class mapping": keypoints,
    }
    kept = [a for a in doc["annotations"] if a["category_id"] not in emeu]
    assert report.annotations["box"] + report.annotations["polygon"] == len(kept)


def test_clashing_names_are_not_cut(tmp_path):
    doc = _doc()
    doc["images"][40]["file_name"] = "other/IMG_003.png"  # the same label file name as img_003.jpg
    src = _write(tmp_path, doc)
    assert registry.read(src).parts(3) is None
    _both(tmp_path, src, "yolo")


def test_categories_not_at_the_end_nor_first(tmp_path):
    doc = _doc()
    text = json.dumps({"images": doc["images"], "categories": doc["categories"], "annotations": doc["annotations"],
                       "info": {"note": "after"}})
    src = tmp_path / "x.json"
    src.write_text(text)
    assert registry.read(src).parts(3) is not None
    _both(tmp_path, src, "coco")

"""Statistics and malformed-annotation checks computed chunk by chunk (memory flat in the number of
annotations) give exactly what the whole-column code gave before.

The expected values in data/chunked_expected.json were written by the whole-column code of main at
c626892 (`python tests/health/test_chunked.py OUT.json` with that revision's `src` on PYTHONPATH: it calls
the old per-function API, which every revision keeps), on the synthetic columns below, on the
defective raccoon project of conftest.py and on a version of raccoon (2x2 tiles); they are compared here exactly (floats included).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from visionloop.health.load import UNASSIGNED, Annotations, Classes, Images

EXPECTED = Path(__file__).parent / "data" / "chunked_expected.json"
INPUT_SIZES = (640, 64)


def synthetic(seed: int = 0) -> tuple[Images, Annotations, Classes]:
    """60 images in four splits (sizes, EXIF, states, a duplicate file), 5 classes (one a case variant, one
    unused) plus an unknown class id, 678 annotations: boxes, polygons, masks and points (no box),
    tiny ones, some outside their image, zero-area ones, repeats of the same box, one class always in
    the top-left corner, one image above the objects-per-image cap; ids not in image order."""
    rng = np.random.default_rng(seed)
    n = 60
    size = rng.choice(np.array([[640, 480], [480, 640], [1280, 720], [100, 100], [4000, 300]]), n)
    images = Images(
        id=np.arange(1, n + 1, dtype=np.int64) * 3,
        sha256=np.array([f"{i % 52:064x}" for i in range(n)], dtype=object),
        file_name=np.array([f"img-{i:02d}.jpg" for i in range(n)], dtype=object),
        split=rng.choice(np.array(["train", "valid", "test", UNASSIGNED], dtype=object), n),
        state=rng.choice(np.array(["annotated", "annotated", "annotated", "null", "missing"], dtype=object), n),
        width=size[:, 0].astype(np.float64), height=size[:, 1].astype(np.float64),
        orientation=rng.choice(np.array([1, 1, 1, 6, 3, 8]), n).astype(np.int64),
        ann_digest=np.array([f"d{i}" for i in range(n)], dtype=object),
        batch=np.ones(n, np.int64))
    classes = Classes(np.array([5, 7, 9, 11, 12], np.int64), ["cat", "dog", "Cat ", "bird", "fish"])
    rows: list[tuple[int, int, str, list[float], float]] = []  # image position, class id, kind, box, area
    for p in range(n):
        k = 70 if p == 7 else int(rng.integers(0, 25)) if p % 6 else 0
        W, H = images.width[p], images.height[p]
        for _ in range(k):
            cid = int(rng.choice([5, 7, 9, 11, 99], p=[0.35, 0.3, 0.1, 0.2, 0.05]))
            kind = str(rng.choice(["box", "box", "box", "box", "polygon", "mask", "point"]))
            if kind == "point":
                rows.append((p, cid, kind, [np.nan] * 4, np.nan))
                continue
            bw, bh = float(rng.exponential(W / 12)), float(rng.exponential(H / 12))
            x0, y0 = float(rng.uniform(-0.05 * W, W)), float(rng.uniform(-0.05 * H, H))
            if cid == 11:  # always near the top-left corner
                x0, y0 = float(rng.uniform(0, W * 0.3)), float(rng.uniform(0, H * 0.3))
                bw, bh = min(bw, W * 0.1), min(bh, H * 0.1)
            r = rng.random()
            if r < 0.04:
                bw = 0.0
            elif r < 0.07:
                x0 = W + 5
            box = [round(x0, 2), round(y0, 2), round(x0 + bw, 2), round(y0 + bh, 2)]
            area = np.nan if rng.random() < 0.1 else (0.0 if r < 0.05 else round(bw * bh, 3))
            rows.append((p, cid, kind, box, area))
            if rng.random() < 0.05:  # the same box again (or as the variant class), nudged
                dup = 9 if cid == 5 and rng.random() < 0.5 else cid
                rows.append((p, dup, kind, [box[0] + 0.2, box[1], box[2] + 0.2, box[3]], area))
    m = len(rows)
    ids = rng.permutation(np.arange(1, 3 * m, 3))[:m].astype(np.int64)
    order = np.argsort(ids)
    anns = Annotations(
        id=ids[order], image=np.array([r[0] for r in rows], np.int64)[order],
        class_id=np.array([r[1] for r in rows], np.int64)[order],
        kind=np.array([r[2] for r in rows], dtype=object)[order],
        box=np.array([r[3] for r in rows], np.float64).reshape(-1, 4)[order],
        area=np.array([r[4] for r in rows], np.float64)[order])
    return images, anns, classes


def _json(x: Any) -> Any:
    """What the report's JSON would hold (tuples as lists, numpy scalars as numbers)."""
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else o.to_json()))


def whole_column_outputs(images: Images, anns: Annotations, classes: Classes) -> dict[str, Any]:
    """The old per-function API over whole columns (the oracle's side; every revision keeps it)."""
    from visionloop.health import findings, stats

    cnt = stats.counts(images, anns, classes)
    per_class = {cid: v["annotations"] for cid, v in cnt["_per_class"].items()}
    out: dict[str, Any] = {"counts": cnt, "objects_per_image": stats.objects_per_image(images, anns),
                           "box_sizes": stats.box_sizes(images, anns), "heatmaps": stats.heatmaps(images, anns, classes)}
    for s in INPUT_SIZES:
        out[f"tiny_{s}"] = stats.tiny_objects(images, anns, classes, s)
    m = findings.detect(images, anns, classes, per_class)
    found = findings.findings(None, images, anns, classes, m, per_class, {})
    found += stats.class_balance(cnt, classes)[1] + out["heatmaps"][1]
    findings.name_images(found, images, anns, classes)
    out["findings"] = found
    return _json({k: ({**v, "_per_class": {str(c): x for c, x in v["_per_class"].items()}} if k == "counts" else v)
                  for k, v in out.items()})


#: raccoon cut into 2x2 tiles, split 70/20/10 (800 items; boxes cut by a tile are clipped)
RECIPE = {"schema": 1, "seed": 3, "split": {"mode": "random", "ratios": {"train": 0.7, "valid": 0.2, "test": 0.1}},
          "preprocess": {"tile": {"rows": 2, "cols": 2}}}


def make_version(project: Path) -> str:
    from visionloop.store import Store
    from visionloop.versions import create_version

    with Store.open(project) as store:
        return str(create_version(store, RECIPE, workers=0).name)


def project_reports(project: Path, version: str | None = None) -> dict[str, Any]:
    """check() of a project or a version of it (whole, one split, a small input size), without timings."""
    from visionloop.health import check
    from visionloop.store import Store

    out = {}
    with Store.open(project) as store:
        for key, kw in (("whole", {}), ("valid", {"split": "valid"}), ("tiny", {"input_size": 32})):
            if version is not None:
                kw = {**kw, "version": version}
            d = check(store, duplicates_search=False, **kw).to_json()
            d.pop("timings")
            out[key] = _json(d)
    return out


def chunked_outputs(images: Images, anns: Annotations, classes: Classes, chunk: int) -> dict[str, Any]:
    """The same outputs from the chunked code, fed `chunk` annotations (whole images) at a time."""
    from visionloop.health import findings, stats
    from visionloop.health.load import chunks_of

    tallies = {s: stats.Tally(images, classes, s) for s in INPUT_SIZES}
    per_class: dict[int, int] = {}
    if findings.class_groups(classes, {}):
        u, c = np.unique(anns.class_id, return_counts=True)
        per_class = dict(zip(u.tolist(), c.tolist(), strict=True))
    flagged = findings.Flagged(images, classes, per_class)
    for part in chunks_of(anns, chunk=chunk):
        for t in tallies.values():
            t.add(part)
        flagged.add(part)
    t = tallies[INPUT_SIZES[0]]
    cnt = t.counts()
    pc = {cid: v["annotations"] for cid, v in cnt["_per_class"].items()}
    out: dict[str, Any] = {"counts": cnt, "objects_per_image": t.objects_per_image(), "box_sizes": t.box_sizes(),
                           "heatmaps": t.heatmaps()}
    for s in INPUT_SIZES:
        out[f"tiny_{s}"] = tallies[s].tiny_objects()
    sub, m = flagged.result()
    found = findings.findings(None, images, sub, classes, m, pc, {})
    found += stats.class_balance(cnt, classes)[1] + out["heatmaps"][1]
    findings.name_images(found, images, t.first_images, classes)
    out["findings"] = found
    return _json({k: ({**v, "_per_class": {str(c): x for c, x in v["_per_class"].items()}} if k == "counts" else v)
                  for k, v in out.items()})


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text())


def test_fixture_exercises_every_branch(expected):
    """The synthetic columns hit what the chunking must merge: examples, findings, the cap, tiny objects."""
    want = expected["synthetic"]
    checks = {f["check"] for f in want["findings"]}
    assert {"out_of_bounds", "outside_image", "zero_area", "degenerate_polygons", "duplicate_annotations",
            "class_name_variants", "unused_classes", "position_bias"} <= checks
    assert want["tiny_640"][0]["count"] > 10 and want["tiny_64"][0]["suggestion"] is not None
    assert "50+" in want["objects_per_image"]["histogram"]
    assert want["counts"]["annotations"] == 678


@pytest.mark.parametrize("chunk", [1, 13, 200, 10 ** 6])
def test_chunked_statistics_equal_whole_columns(expected, chunk):
    images, anns, classes = synthetic()
    got = chunked_outputs(images, anns, classes, chunk)
    want = expected["synthetic"]
    for key in want:
        assert got[key] == want[key], key
        assert json.dumps(got[key]) == json.dumps(want[key]), key  # the same order of keys too
    # and the whole-column API of this revision (now a one-chunk tally) still says the same
    assert whole_column_outputs(images, anns, classes) == want


def test_median_of_repeated_values():
    from visionloop.health.stats import median_repeated

    rng = np.random.default_rng(1)
    for _ in range(200):
        v = rng.choice([1.0, 2.5, 3.0, 7.25, 100.0], rng.integers(1, 6))
        c = rng.integers(0, 4, len(v))
        if c.sum() == 0:
            continue
        assert median_repeated(v, c) == float(np.median(np.repeat(v, c)))


@pytest.mark.parametrize("chunk", [3, 10 ** 6])
def test_check_on_a_project_equals_whole_columns(defective, expected, chunk, monkeypatch):
    """check() streams the project's annotations: the report is the one the whole-column code made."""
    from visionloop.health import load

    monkeypatch.setattr(load, "CHUNK", chunk)
    got = project_reports(defective.project)
    for key, want in expected["defective"].items():
        assert got[key] == want, key
        assert json.dumps(got[key]) == json.dumps(want), key


@pytest.fixture(scope="module")
def versioned(raccoon_project, tmp_path_factory) -> tuple[Path, str]:
    import shutil

    root = tmp_path_factory.mktemp("chunked-version") / "p"
    shutil.copytree(raccoon_project, root)
    return root, make_version(root)


@pytest.mark.parametrize("chunk", [3, 10 ** 6])
def test_check_on_a_version_equals_whole_columns(versioned, expected, chunk, monkeypatch):
    """A version's items are decoded in chunks and cut into chunks of whole items: the same report."""
    from visionloop.health import load

    monkeypatch.setattr(load, "CHUNK", chunk)
    got = project_reports(*versioned)
    for key, want in expected["version"].items():
        assert got[key] == want, key
        assert json.dumps(got[key]) == json.dumps(want), key


def test_iter_annotations_keeps_images_whole(defective):
    from visionloop.health.load import iter_annotations, load_annotations, load_images
    from visionloop.store import Store

    with Store.open(defective.project) as store:
        images = load_images(store)
        whole = load_annotations(store, images)
        parts = list(iter_annotations(store, images, chunk=4))
    assert len(parts) > 10
    seen = np.concatenate([np.unique(p.image) for p in parts])
    assert len(seen) == len(np.unique(seen))  # no image in two chunks
    ids = np.concatenate([p.id for p in parts])
    order = np.argsort(ids)
    assert np.array_equal(ids[order], whole.id)
    assert np.array_equal(np.concatenate([p.image for p in parts])[order], whole.image)
    assert np.array_equal(np.concatenate([p.box for p in parts])[order], whole.box, equal_nan=True)


if __name__ == "__main__":  # write the expected values with the revision on PYTHONPATH (see the docstring)
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from health.conftest import build_defective  # type: ignore[import-not-found]
    from visionloop.ingest import import_dataset
    from visionloop.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        raccoon = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "raccoon"
        if not raccoon.exists():
            raccoon = Path("/work/shared/datasets/raccoon")
        d = build_defective(raccoon, Path(tmp) / "dataset")
        with Store.init(d.project) as store:
            import_dataset(store, d.root, fix=False)
        racc = Path(tmp) / "raccoon-project"
        with Store.init(racc) as store:
            import_dataset(store, raccoon)
        doc = {"synthetic": whole_column_outputs(*synthetic()), "defective": project_reports(d.project),
               "version": project_reports(racc, make_version(racc))}
    Path(sys.argv[1]).write_text(json.dumps(doc, indent=1) + "\n")

"""Near-duplicates: flipped copies are found through the mirrored hash, and candidates are confirmed
geometrically before they are called near-duplicates (or leakage); look-alikes are an info note."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionloop.health import check, confirm, imagehash
from visionloop.ingest import import_dataset
from visionloop.store import Store

W, H = 256, 192


def _coco(folder: Path, files: dict[str, np.ndarray]) -> None:
    """Write the images and a COCO file with one box per image (Roboflow layout: one file per split)."""
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict[str, list] = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    for k, (name, img) in enumerate(files.items(), 1):
        ok, buf = cv2.imencode(Path(name).suffix, img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (folder / name).write_bytes(buf.tobytes())
        h, w = img.shape[:2]
        doc["images"].append({"id": k, "file_name": name, "width": w, "height": h})
        doc["annotations"].append({"id": k, "image_id": k, "category_id": 1, "bbox": [2, 3, w // 3, h // 4],
                                   "iscrowd": 0})
    (folder / "_annotations.coco.json").write_text(json.dumps(doc))


def _pairs(report, kind):
    return sorted((Path(p.a).name, Path(p.b).name, p.split_a, p.split_b, p.mirrored) for p in report.pairs_of(kind))


@pytest.fixture(scope="module")
def flipped(raccoon, tmp_path_factory):
    """raccoon-1..6 in train; a flipped raccoon-1 in valid (a leak), a flipped raccoon-2 in train."""
    base = tmp_path_factory.mktemp("flipped")
    img = {k: cv2.imread(str(raccoon / "images" / f"raccoon-{k}.jpg")) for k in range(1, 7)}
    train = {f"raccoon-{k}.jpg": img[k] for k in img} | {"flip-raccoon-2.jpg": cv2.flip(img[2], 1)}
    _coco(base / "data" / "train", train)
    _coco(base / "data" / "valid", {"flip-raccoon-1.jpg": cv2.flip(img[1], 1)})
    with Store.init(base / "project") as store:
        import_dataset(store, base / "data")
        return check(store)


def test_flipped_copies_are_near_duplicates_and_leakage(flipped):
    r = flipped
    assert _pairs(r, "near") == [("raccoon-1.jpg", "flip-raccoon-1.jpg", "train", "valid", True),
                                 ("raccoon-2.jpg", "flip-raccoon-2.jpg", "train", "train", True)]
    assert r.duplicates["near"] == {"pairs": 2, "cross_split": 1, "images": 4, "mirrored": 2,
                                    "by_split_pair": {"train/valid": 1}}
    assert r.count("near_duplicates") == 2 and "2 flipped" in r.finding("near_duplicates").message
    leak = r.finding("split_leakage")
    assert leak.count == 1 and leak.severity == "error"
    assert leak.examples == [{"a": "raccoon-1.jpg", "b": "flip-raccoon-1.jpg", "splits": ["train", "valid"],
                              "distance": 0, "mirrored": True}]
    assert r.pairs_of("similar") == [] and r.finding("look_alikes") is None
    assert all(p.inliers >= confirm.MIN_INLIERS for p in r.pairs_of("near"))


def test_the_mirrored_hash_is_what_finds_a_flip(raccoon):
    gray = cv2.imread(str(raccoon / "images" / "raccoon-1.jpg"), cv2.IMREAD_GRAYSCALE)
    v, f = np.array(imagehash.views(gray), np.uint64), np.array(imagehash.views(cv2.flip(gray, 1)), np.uint64)
    assert len(v) == imagehash.N_VIEWS == 7
    assert int(np.bitwise_count(v[0] ^ f[0])) == 30  # out of reach of the six unmirrored views
    assert int(np.bitwise_count(v[:imagehash.MIRROR] ^ f[0]).min()) > 10
    assert int(np.bitwise_count(v[imagehash.MIRROR] ^ f[0])) == 0


def test_hash_cache_of_another_shape_is_ignored(tmp_path):
    (tmp_path / "cache").mkdir()
    np.savez(tmp_path / "cache" / f"health-hashes-v{imagehash.VERSION}.npz", sha=np.array([b"a" * 64]),
             views=np.zeros((1, 6), np.uint64), digest=np.zeros((1, 16), np.uint8), ok=np.ones(1, bool))
    cache = imagehash.HashCache(tmp_path)
    assert cache.views.shape == (0, imagehash.N_VIEWS)


def _field(rng: np.random.Generator, light: np.ndarray, width: int = W) -> np.ndarray:
    """A microscope-like field of view: small dim discs ("cells") under a shared strong illumination."""
    m = np.ones((H, width), np.float32)
    for _ in range(300 * width // W):
        x, y, r = rng.uniform(0, width), rng.uniform(0, H), rng.uniform(3, 7)
        cv2.circle(m, (int(x), int(y)), int(r), float(rng.uniform(0.7, 0.85)), -1, lineType=cv2.LINE_AA)
    return m


@pytest.fixture(scope="module")
def lookalikes(tmp_path_factory):
    """Eight independent fields of view under one illumination (4 train, 4 valid), two views of one slide
    shifted by a third of the frame (train, valid), and one real copy: field 0 resized to 75% in valid."""
    base = tmp_path_factory.mktemp("lookalikes")
    rng = np.random.default_rng(7)
    light = cv2.resize(rng.integers(40, 256, (6, 8, 3)).astype(np.uint8), (W, H),
                       interpolation=cv2.INTER_CUBIC).astype(np.float32)

    def lit(layer: np.ndarray) -> np.ndarray:
        return np.clip(light * layer[..., None], 0, 255).astype(np.uint8)

    fields = [lit(_field(rng, light)) for _ in range(8)]
    slide = _field(rng, light, 2 * W)
    train = {f"field-{k}.jpg": fields[k] for k in range(4)} | {"slide-a.jpg": lit(slide[:, :W])}
    valid = {f"field-{k}.jpg": fields[k] for k in range(4, 8)} | {
        "slide-b.jpg": lit(slide[:, W // 3:W // 3 + W]),
        "copy-field-0.jpg": cv2.resize(fields[0], (W * 3 // 4, H * 3 // 4), interpolation=cv2.INTER_AREA)}
    _coco(base / "data" / "train", train)
    _coco(base / "data" / "valid", valid)
    with Store.init(base / "project") as store:
        import_dataset(store, base / "data")
        return base / "project", check(store)


def test_lookalikes_are_a_note_and_only_the_copy_is_leakage(lookalikes):
    _, r = lookalikes
    assert _pairs(r, "near") == [("field-0.jpg", "copy-field-0.jpg", "train", "valid", False)]
    leak = r.finding("split_leakage")
    assert leak.count == 1 and [(e["a"], e["b"]) for e in leak.examples] == [("field-0.jpg", "copy-field-0.jpg")]
    # the hash alone puts many unrelated fields within 10 bits: they are look-alikes, an info note
    similar = r.pairs_of("similar")
    assert len(similar) == r.duplicates["similar"]["pairs"] == 54  # of the 66 pairs of 12 images
    assert r.duplicates["similar"]["cross_split"] == 29
    assert all(p.inliers < confirm.MIN_INLIERS and p.distance <= 10 for p in similar)
    note = r.finding("look_alikes")
    assert note.severity == "info" and note.count == 54 and not note.fixable
    assert ("slide-a.jpg", "slide-b.jpg") in {(Path(p.a).name, Path(p.b).name) for p in similar}
    assert r.count("near_duplicates") == 1


def test_confirmation_is_cached_and_reused(lookalikes, tmp_path):
    root, first = lookalikes
    project = tmp_path / "p"
    shutil.copytree(root, project)
    assert (project / "cache" / f"health-confirm-v{confirm.VERSION}.npz").exists()
    with Store.open(project) as store:
        again = check(store)
    assert [p.to_json() for p in again.pairs] == [p.to_json() for p in first.pairs]


def test_compare_rejects_shifted_and_zoomed_views_and_accepts_copies(raccoon):
    img = cv2.imread(str(raccoon / "images" / "raccoon-1.jpg"))
    h, w = img.shape[:2]

    def feats(x: np.ndarray, mirror: bool = False):
        data = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        return confirm.features(confirm.decode(data, x.shape[1], x.shape[0], mirror=mirror))

    def ok(a: np.ndarray, b: np.ndarray, mirror: bool = False) -> bool:
        inl, cov = confirm.compare(feats(a), feats(b, mirror))
        return bool(confirm.confirmed(np.array([inl]), np.array([cov]))[0])

    assert ok(img, cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    assert ok(img, img[round(h * 0.05):, round(w * 0.05):])
    assert ok(img, cv2.flip(img, 1), mirror=True)
    assert not ok(img[:, : 2 * w // 3], img[:, w // 3:])  # two views overlapping by half
    assert not ok(img, img[h // 6: 5 * h // 6, w // 6: 5 * w // 6])  # a zoomed-in crop covers 44%
    other = cv2.imread(str(raccoon / "images" / "raccoon-2.jpg"))
    assert not ok(img, other)

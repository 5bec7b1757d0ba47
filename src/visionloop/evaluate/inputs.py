"""Load and validate COCO ground truth and COCO results (predictions) before any metric runs.

Every problem is one `FormatError` naming the file and the element (`annotations[12]`, `[4711]` for the
4712th prediction) with a hint. The inputs are copied into normalised dicts, so the caller's objects are
never mutated (pycocotools and faster-coco-eval write `area`, `id` and `segmentation` into results).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from visionloop.core.errors import FormatError

log = logging.getLogger(__name__)

Source = str | Path | dict[str, Any] | list[Any]


class IouType(StrEnum):
    """What the IoU is computed on: boxes (detection) or masks (instance segmentation)."""

    BBOX = "bbox"
    SEGM = "segm"


@dataclass
class CocoInputs:
    """Validated, normalised inputs. `predictions[i]` is element i of the results given."""

    ground_truth: dict[str, Any]
    predictions: list[dict[str, Any]]
    iou_type: IouType
    categories: dict[int, str]  # id -> name, in the order of the ground truth
    file_names: dict[int, str]  # image id -> file name ('' when the ground truth has none)
    gt_path: str | None = None
    pred_path: str | None = None
    filled_areas: int = 0  # ground-truth annotations without 'area' (filled with the box area)
    notes: list[str] = field(default_factory=list)


def _read_json(source: Source, what: str) -> tuple[Any, str | None]:
    if isinstance(source, dict | list):
        return source, None
    path = Path(source)
    if not path.is_file():
        raise FormatError(f"{what} file not found", path=path, hint="check the path")
    import orjson

    try:
        return orjson.loads(path.read_bytes()), str(path)
    except orjson.JSONDecodeError as e:
        raise FormatError(f"not valid JSON: {e}", path=path, hint=f"the {what} must be a COCO JSON file") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _box(v: Any) -> bool:
    return (isinstance(v, list | tuple) and len(v) == 4 and all(_is_num(x) for x in v)
            and v[2] >= 0 and v[3] >= 0)


def _polygons(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0
            and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_num(x) for x in p)
                    for p in v))


def _rle(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("size"), list | tuple) and len(v["size"]) == 2
            and all(_is_int(x) and x >= 0 for x in v["size"]) and isinstance(v.get("counts"), str | bytes | list))


def load_ground_truth(source: Source, *, iou_type: IouType = IouType.BBOX) -> tuple[dict[str, Any], dict[str, Any]]:
    """The normalised COCO dict and facts about it (`categories`, `file_names`, `path`, `filled_areas`)."""
    data, path = _read_json(source, "ground truth")
    where_file = path or "ground truth"

    def fail(message: str, where: str, hint: str) -> FormatError:
        return FormatError(message, path=where_file, where=where, hint=hint)

    if not isinstance(data, dict):
        raise fail("is not a COCO dataset (a JSON object)", "top level",
                   "give the instances JSON (with images, annotations and categories), not a results list")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise fail(f"has no '{key}' list", key, "a COCO ground truth has images, annotations and categories")
    images: list[dict[str, Any]] = []
    sizes: dict[int, tuple[int, int] | None] = {}
    file_names: dict[int, str] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise fail("image without an integer 'id'", f"images[{i}]", "every image needs a unique integer id")
        if im["id"] in sizes:
            raise fail(f"duplicate image id {im['id']}", f"images[{i}]", "image ids must be unique")
        w, h = im.get("width"), im.get("height")
        size = (h, w) if _is_int(w) and _is_int(h) and w > 0 and h > 0 else None
        if iou_type is IouType.SEGM and size is None:
            raise fail(f"image {im['id']} has no positive integer width/height", f"images[{i}]",
                       "mask evaluation needs each image's size")
        sizes[im["id"]] = size
        name = im.get("file_name")
        file_names[im["id"]] = name if isinstance(name, str) else ""
        images.append(dict(im))
    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise fail("category without an integer 'id'", f"categories[{i}]", "every category needs an integer id")
        if cat["id"] in categories:
            raise fail(f"duplicate category id {cat['id']}", f"categories[{i}]", "category ids must be unique")
        categories[cat["id"]] = str(cat.get("name", cat["id"]))
    anns: list[dict[str, Any]] = []
    seen: set[int] = set()
    filled = 0
    for i, a in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise fail("annotation is not an object", where, "each annotation is a JSON object")
        aid = a.get("id")
        if not _is_int(aid) or aid in seen:
            raise fail(f"annotation id {aid!r} is missing, not an integer or a duplicate", where,
                       "annotation ids must be unique integers")
        seen.add(aid)
        if a.get("image_id") not in sizes or not _is_int(a.get("image_id")):
            raise fail(f"image_id {a.get('image_id')!r} is not an image of this file", where,
                       "every annotation must point to an entry of 'images'")
        if a.get("category_id") not in categories or not _is_int(a.get("category_id")):
            raise fail(f"category_id {a.get('category_id')!r} is not a category of this file", where,
                       "every annotation must point to an entry of 'categories'")
        if not _box(a.get("bbox")):
            raise fail(f"bbox {a.get('bbox')!r} is not [x, y, width, height] with width, height >= 0", where,
                       "COCO boxes are [x, y, width, height] in pixels")
        out: dict[str, Any] = {"id": aid, "image_id": a["image_id"], "category_id": a["category_id"],
                               "bbox": [float(x) for x in a["bbox"]],
                               "iscrowd": 1 if a.get("iscrowd") else 0}
        area = a.get("area")
        if _is_num(area):
            out["area"] = float(area)
        else:
            out["area"] = out["bbox"][2] * out["bbox"][3]
            filled += 1
        seg = a.get("segmentation")
        if iou_type is IouType.SEGM:
            if not (_polygons(seg) or _rle(seg)):
                raise fail(f"annotation {aid} has no valid segmentation (polygons or RLE)", where,
                           "evaluate boxes instead (iou type bbox), or give every annotation a mask")
            if isinstance(seg, dict) and tuple(seg["size"]) != sizes[a["image_id"]]:
                raise fail(f"RLE size {list(seg['size'])} differs from image {a['image_id']}'s "
                           f"[height, width] {list(sizes[a['image_id']] or ())}", where,
                           "RLE size is [height, width] of the image")
            out["segmentation"] = seg
        anns.append(out)
    if filled:
        log.info("%s: %d annotations have no 'area'; used the box area (width × height)", where_file, filled)
    gt = {"images": images, "categories": [dict(c) for c in data["categories"]], "annotations": anns}
    if isinstance(data.get("info"), dict):
        gt["info"] = data["info"]
    facts = {"categories": categories, "file_names": file_names, "sizes": sizes, "path": path,
             "filled_areas": filled}
    return gt, facts


def load_predictions(source: Source, facts: dict[str, Any], *, iou_type: IouType | None = None,
                     path: str | None = None) -> tuple[list[dict[str, Any]], IouType, str | None]:
    """Validated COCO results, each copied into a fresh dict; the IoU type (segm when the results carry
    segmentations and none was asked for). `path` names already-loaded results in errors."""
    data, read_from = _read_json(source, "predictions")
    path = read_from or path
    where_file = path or "predictions"
    if isinstance(data, dict) and isinstance(data.get("annotations"), list) and "images" in data:
        raise FormatError("is a COCO dataset, not a results list", path=where_file, where="top level",
                          hint="predictions are a JSON list of {image_id, category_id, bbox, score}")
    if not isinstance(data, list):
        raise FormatError("is not a COCO results list", path=where_file, where="top level",
                          hint="predictions are a JSON list of {image_id, category_id, bbox, score}")
    if iou_type is None:
        first = data[0] if data and isinstance(data[0], dict) else {}
        iou_type = IouType.SEGM if "segmentation" in first else IouType.BBOX
    sizes: dict[int, tuple[int, int] | None] = facts["sizes"]
    categories: dict[int, str] = facts["categories"]
    segm = iou_type is IouType.SEGM
    out: list[dict[str, Any]] = []
    append = out.append
    for i, p in enumerate(data):
        try:
            img, cat, score = p["image_id"], p["category_id"], p["score"]
            ok = (type(img) is int and img in sizes and type(cat) is int and cat in categories
                  and type(score) in (float, int) and math.isfinite(score))
            if ok and not segm:
                bb = p["bbox"]
                ok = _box(bb)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            _explain(p, i, where_file, sizes, categories, segm)
        if segm:
            seg = _prediction_mask(p, i, where_file, sizes[img])
            d = {"image_id": img, "category_id": cat, "segmentation": seg, "score": float(score)}
            if _box(p.get("bbox")):
                d["bbox"] = [float(x) for x in p["bbox"]]
            append(d)
        else:
            append({"image_id": img, "category_id": cat, "bbox": [float(bb[0]), float(bb[1]), float(bb[2]),
                                                                  float(bb[3])], "score": float(score)})
    if segm and out and not all("bbox" in d for d in out):
        # pycocotools' loadRes takes a mask result's area from its bbox when the first result has one
        # (and fails on the others); keep boxes only when every result has one, so the areas are consistent
        for d in out:
            d.pop("bbox", None)
    return out, iou_type, path


def _prediction_mask(p: dict[str, Any], i: int, where_file: str, size: tuple[int, int] | None) -> dict[str, Any]:
    from faster_coco_eval.core import mask as mask_utils

    seg = p.get("segmentation")
    assert size is not None  # segm ground truth refuses images without a size
    h, w = size
    if _rle(seg):
        if tuple(seg["size"]) != (h, w):
            raise FormatError(f"RLE size {list(seg['size'])} differs from image {p['image_id']}'s [height, width] "
                              f"[{h}, {w}]", path=where_file, where=f"[{i}]", hint="RLE size is [height, width]")
        if isinstance(seg["counts"], list):  # uncompressed RLE
            seg = mask_utils.frPyObjects(seg, h, w)
        return {"size": [h, w], "counts": seg["counts"]}
    if _polygons(seg):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        return {"size": [h, w], "counts": rle["counts"]}
    raise FormatError(f"segmentation {str(seg)[:60]!r} is neither an RLE nor polygons", path=where_file,
                      where=f"[{i}]", hint="mask results carry a COCO RLE {size, counts} or polygons")


def _explain(p: Any, i: int, where_file: str, sizes: dict[int, Any], categories: dict[int, str], segm: bool) -> None:
    where = f"[{i}]"

    def fail(message: str, hint: str) -> FormatError:
        return FormatError(message, path=where_file, where=where, hint=hint)

    if not isinstance(p, dict):
        raise fail("prediction is not an object", "each result is {image_id, category_id, bbox, score}")
    for key in ("image_id", "category_id", "score") + (() if segm else ("bbox",)):
        if key not in p:
            raise fail(f"prediction has no '{key}'", "each result is {image_id, category_id, bbox, score}")
    if not _is_int(p["image_id"]) or p["image_id"] not in sizes:
        raise fail(f"image_id {p['image_id']!r} is not an image of the ground truth",
                   "predictions must use the ground truth's image ids")
    if not _is_int(p["category_id"]) or p["category_id"] not in categories:
        raise fail(f"category_id {p['category_id']!r} is not a category of the ground truth",
                   f"known category ids: {sorted(categories)[:20]}")
    if not _is_num(p["score"]):
        raise fail(f"score {p['score']!r} is not a finite number", "scores are confidences, e.g. 0.87")
    if not segm and not _box(p["bbox"]):
        raise fail(f"bbox {p['bbox']!r} is not [x, y, width, height] with width, height >= 0",
                   "COCO boxes are [x, y, width, height] in pixels")
    raise fail("prediction is malformed", "each result is {image_id, category_id, bbox, score}")


def load_inputs(ground_truth: Source, predictions: Source, *, iou_type: IouType | str | None = None) -> CocoInputs:
    """Ground truth (a COCO dict or path) and predictions (a COCO results list or path), validated.

    `iou_type` None: segm when the predictions carry segmentations, else bbox.
    """
    data, ppath = _read_json(predictions, "predictions")
    if iou_type is not None:
        wanted = IouType(iou_type)
    else:
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        wanted = IouType.SEGM if "segmentation" in first else IouType.BBOX
    gt, facts = load_ground_truth(ground_truth, iou_type=wanted)
    preds, kind, _ = load_predictions(data, facts, iou_type=wanted, path=ppath)
    return CocoInputs(gt, preds, kind, facts["categories"], facts["file_names"], gt_path=facts["path"],
                      pred_path=ppath, filled_areas=facts["filled_areas"])

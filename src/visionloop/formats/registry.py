"""The format registry: explicit, one line per format, modules imported on first use."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, NotFoundError
from visionloop.core.sample import Sample
from visionloop.formats.base import (
    Detection,
    ImageMode,
    LossCounter,
    Reader,
    ReadPart,
    WriteReport,
    dataset_root,
    drop_unheld,
    inside_root,
)


@dataclass(frozen=True)
class FormatSpec:
    name: str
    module: str
    description: str
    reads: tuple[str, ...]  # geometry kinds the reader yields
    writes: tuple[str, ...]  # geometry kinds the writer keeps (others are converted or dropped)
    holds: tuple[str, ...] = ()  # extras: attributes, tracks, crowd, keypoint names, splits
    # the lower-case suffixes (e.g. '.json') of a single FILE this format's detect() can claim (score > 0);
    # () = it never claims a file, only folders; None = not declared (always asked). detect_all() does not
    # import a format whose declared suffixes leave a file out; tests/formats/test_detect_prefilter.py checks them.
    files: tuple[str, ...] | None = None

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


FORMATS: dict[str, FormatSpec] = {}


def register(spec: FormatSpec) -> FormatSpec:
    if spec.name in FORMATS:
        raise ValueError(f"format {spec.name!r} is already registered (by {FORMATS[spec.name].module})")
    FORMATS[spec.name] = spec
    return spec


register(FormatSpec(
    "coco", "visionloop.formats.coco", "COCO JSON (instances, keypoints, stuff, captions, image_info of a split read as one; "
    "Roboflow's _annotations.coco.json per split)",
    reads=("box", "polygon", "mask", "keypoints", "caption"), writes=("box", "polygon", "mask", "keypoints", "caption"),
    holds=("crowd", "category ids", "splits", "attributes", "captions (annotations/captions_<split>.json)"),
    files=(".json",),
))
register(FormatSpec(
    "voc", "visionloop.formats.voc",
    "Pascal VOC XML (+ SegmentationClass / SegmentationObject PNGs, person-layout <part>s, ImageSets/Main lists)",
    reads=("box", "mask", "label"), writes=("box", "mask", "label"),
    holds=("difficult/truncated/occluded", "parts (<part> boxes of an object)", "splits"),
    files=(".xml",),
))
register(FormatSpec(
    "yolo", "visionloop.formats.yolo", "YOLO, Ultralytics layout (data.yaml; detect, segment, OBB, pose)",
    reads=("box", "polygon", "rotated_box", "keypoints"), writes=("box", "polygon", "rotated_box"), holds=("splits",),
    files=(".yaml", ".yml"),
))
register(FormatSpec(
    "darknet", "visionloop.formats.darknet", "YOLO Darknet (obj.names + obj.data + train.txt)",
    reads=("box",), writes=("box",), holds=("splits",),
    files=(".data", ".names"),  # obj.data (any *.data) or obj.names
))
register(FormatSpec(
    "folders", "visionloop.formats.folders", "Classification folders (split/class/image.jpg)",
    reads=("label",), writes=("label",), holds=("splits",),
    files=(),
))


register(FormatSpec(
    "tfrecord", "visionloop.formats.tfrecord",
    "TFRecord for the TensorFlow Object Detection API (tf.train.Example + label_map.pbtxt; images embedded)",
    reads=("box", "mask", "label"), writes=("box", "mask", "label"),
    holds=("class ids", "difficult/truncated/pose", "crowd", "splits", "embedded images"),
    files=None,  # any suffix: sharded names end in .record-00000-of-00010
))


register(FormatSpec(
    "datumaro", "visionloop.formats.datumaro", "Datumaro JSON (annotations/<subset>.json + images/<subset>/)",
    reads=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label", "caption"),
    writes=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label", "caption"),
    holds=("attributes", "tracks", "crowd", "confidence", "groups/z_order", "captions", "label parents",
           "colours", "keypoint names", "splits"),
    files=(".json",),
))


register(FormatSpec(
    "sa1b", "visionloop.formats.sa1b", "Segment Anything SA-1B (sa_<id>.jpg + sa_<id>.json per image)",
    reads=("mask",), writes=("mask",),
    holds=("predicted_iou/stability_score/point_coords/crop_box attributes", "declared bbox and area"),
    files=(".json",),
))


register(FormatSpec(
    "tfcsv", "visionloop.formats.tfcsv",
    "TensorFlow Object Detection CSV (filename,width,height,class,xmin,ymin,xmax,ymax); reads Kaggle-style box "
    "CSVs too (image_id/label_name/x1,y1,x2,y2/x,y,w,h/bbox columns; --csv-columns maps the rest)",
    reads=("box",), writes=("box",), holds=("splits",),
    files=(".csv",),
))


register(FormatSpec(
    "createml", "visionloop.formats.createml", "Apple Create ML object detection JSON (centre x, y + size)",
    reads=("box",), writes=("box",), holds=("splits",),
    files=(".json",),
))


register(FormatSpec(
    "cvat", "visionloop.formats.cvat",
    "CVAT for images XML 1.1 (annotations.xml + images/; boxes, polygons, masks, points, skeletons, tags)",
    reads=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label"),
    writes=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label"),
    holds=("attributes", "occluded/z_order/group_id", "source", "keypoint names", "splits"),
    files=(".xml",),
))
register(FormatSpec(
    "cvat_video", "visionloop.formats.cvat_video",
    "CVAT for video XML 1.1 (tracks of per-frame shapes; frames in images/)",
    reads=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints"),
    writes=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints"),
    holds=("tracks", "attributes", "occluded/z_order/group_id", "source", "keypoint names"),
    files=(".xml",),
))


register(FormatSpec(
    "mot", "visionloop.formats.mot", "MOT Challenge sequences (seqinfo.ini, img1/, gt/gt.txt; MOT15/16/17/20, CVAT)",
    reads=("box",), writes=("box",),
    holds=("tracks", "conf/visibility attributes", "MOT17 class ids", "labels.txt classes", "sequences",
           "splits"),
    files=(".txt",),  # gt/gt.txt
))


register(FormatSpec(
    "labelme", "visionloop.formats.labelme", "LabelMe JSON (one <stem>.json beside each image)",
    reads=("box", "polygon", "polyline", "rotated_box", "mask", "keypoints", "label"),
    writes=("box", "polygon", "polyline", "rotated_box", "mask", "keypoints", "label"),
    holds=("group ids (instances)", "shape flags, description, extra keys", "image flags", "splits"),
    files=(".json",),
))


register(FormatSpec(
    "wider", "visionloop.formats.wider", "WIDER FACE (wider_face_split/wider_face_<split>_bbx_gt.txt + WIDER_<split>/images/)",
    reads=("box",), writes=("box",),
    holds=("blur/expression/illumination/invalid/occlusion/pose flags", "event folders", "splits"),
    files=(".txt",),  # wider_face_<split>_bbx_gt.txt / _filelist.txt
))


register(FormatSpec(
    "dota", "visionloop.formats.dota", "DOTA / YOLOv5-OBB (images/ + labelTxt/: x1 y1 ... x4 y4 class difficult)",
    reads=("rotated_box",), writes=("rotated_box",), holds=("difficult", "imagesource/gsd", "splits"),
    files=(),
))


register(FormatSpec(
    "retinanet", "visionloop.formats.retinanet", "RetinaNet Keras CSV (path,x1,y1,x2,y2,class_name + classes.csv)",
    reads=("box",), writes=("box",), holds=("class ids", "negative images", "splits"),
    files=(".csv",),
))


register(FormatSpec(
    "coco_panoptic", "visionloop.formats.coco_panoptic",
    "COCO panoptic (annotations/panoptic_<split>.json + PNGs with id = R + 256·G + 256²·B)",
    reads=("mask",), writes=("mask",),
    holds=("things and stuff (isthing)", "crowd", "category ids and colours", "declared bbox and area", "splits"),
    files=(".json",),
))

register(FormatSpec(
    "labelstudio", "visionloop.formats.labelstudio",
    "Label Studio JSON export (tasks with annotations and predictions; percent coordinates, brush RLE; "
    "image-level TextArea as captions)",
    reads=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label", "caption"),
    writes=("box", "rotated_box", "polygon", "polyline", "mask", "keypoints", "label", "caption"),
    holds=("attributes (per-region text/number/choices)", "confidence (predictions)", "several annotators"),
    files=(".json",),
))


register(FormatSpec(
    "yolokeras", "visionloop.formats.yolokeras", "YOLO Keras TXT (image x0,y0,x1,y1,class ... + _classes.txt)",
    reads=("box",), writes=("box",), holds=("empty images", "splits"),
    files=(".txt",),
))


register(FormatSpec(
    "coco_captions", "visionloop.formats.coco_captions",
    "COCO captions (annotations/captions_<split>.json)",
    reads=("caption",), writes=("caption",), holds=("confidence and attributes of captions", "image ids", "splits"),
    files=(".json",),
))


register(FormatSpec(
    "clscsv", "visionloop.formats.clscsv",
    "Classification CSV, multiclass / multi-label (one-hot filename,class_a,... or filename,label)",
    reads=("label",), writes=("label",), holds=("multi-label", "empty images", "splits"),
    files=(".csv",),
))


register(FormatSpec(
    "bdd100k", "visionloop.formats.bdd100k",
    "BDD100K / Scalabel JSON (labels/det_20/det_<split>.json + images/100k/<split>/)",
    reads=("box", "polygon", "polyline", "mask"), writes=("box", "polygon", "polyline", "mask"),
    holds=("attributes", "instance/track ids", "crowd", "confidence", "frame attributes (weather, scene, timeofday)",
           "Bezier vertex types", "splits"),
    files=(".json",),
))


register(FormatSpec(
    "via", "visionloop.formats.via", "VGG Image Annotator JSON (project or export; class from a region attribute)",
    reads=("box", "polygon", "polyline", "keypoints", "label"), writes=("box", "polygon", "polyline", "keypoints", "label"),
    holds=("region attributes", "file attributes", "splits"),
    files=(".json",),
))
register(FormatSpec(
    "via_csv", "visionloop.formats.via_csv", "VGG Image Annotator CSV export (one row per region, JSON cells)",
    reads=("box", "polygon", "polyline", "keypoints", "label"), writes=("box", "polygon", "polyline", "keypoints", "label"),
    holds=("region attributes", "file attributes", "splits"),
    files=(".csv",),
))


register(FormatSpec(
    "vlm", "visionloop.formats.vlm",
    "VLM JSONL for PaliGemma / Florence-2 (image, prefix, suffix with location tokens; caption prompts as captions)",
    reads=("box", "caption"), writes=("box", "caption"), holds=("prompts", "splits"),
    files=(".jsonl",),
))


register(FormatSpec(
    "vott", "visionloop.formats.vott", "VoTT JSON export (vott-json-export/<project>-export.json; regions with tags)",
    reads=("box", "polygon", "polyline", "keypoints"), writes=("box", "polygon", "polyline", "keypoints"),
    holds=("several tags per region", "asset state (visited / not visited)", "tag colours"),
    files=(".json",),
))
register(FormatSpec(
    "vott_csv", "visionloop.formats.vott_csv", "VoTT CSV export (image,xmin,ymin,xmax,ymax,label)",
    reads=("box",), writes=("box",), holds=(),
    files=(".csv",),
))


register(FormatSpec(
    "cityscapes", "visionloop.formats.cityscapes",
    "Cityscapes (gtFine polygons JSON, labelIds / instanceIds PNGs, leftImg8bit/<split>/<city>/)",
    reads=("polygon", "mask"), writes=("polygon", "mask"),
    holds=("crowd (<name>group)", "label ids and colours", "instance numbers", "cities", "splits"),
    files=(),
))
register(FormatSpec(
    "semseg", "visionloop.formats.semseg",
    "Semantic segmentation masks (image + <stem>_mask.png + _classes.csv, or images/ + masks/ + labelmap.txt)",
    reads=("mask",), writes=("mask",), holds=("class pixel values", "splits"),
    files=(),
))
register(FormatSpec(
    "kitti", "visionloop.formats.kitti", "KITTI object detection (training/image_2 + label_2/*.txt)",
    reads=("box",), writes=("box",),
    holds=("truncated/occluded/alpha, 3-D dimensions/location/rotation_y", "scores", "DontCare", "splits"),
    files=(),
))
register(FormatSpec(
    "kitti_seg", "visionloop.formats.kitti_seg",
    "KITTI semantic / instance segmentation (image_2 + semantic/ + instance/ PNGs, Cityscapes ids)",
    reads=("mask",), writes=("mask",), holds=("crowd", "label ids and colours", "splits"),
    files=(),
))
register(FormatSpec(
    "mapillary", "visionloop.formats.mapillary",
    "Mapillary Vistas v1.2 / v2.0 (config JSON, labels/ and instances/ PNGs)",
    reads=("mask",), writes=("mask",), holds=("label ids and colours", "instances", "splits"),
    files=(".json",),  # config*.json
))
register(FormatSpec(
    "openimages", "visionloop.formats.openimages",
    "Open Images V4-V7 CSV (boxes, human image labels, segmentation masks; class-descriptions)",
    reads=("box", "mask", "label"), writes=("box", "mask", "label"),
    holds=("group-of (crowd), occluded/truncated/depiction/inside", "verified negative labels", "confidence",
           "mask box ids / predicted IoU / clicks", "splits"),
    files=(),
))
register(FormatSpec(
    "ade20k", "visionloop.formats.ade20k",
    "ADE20K SceneParsing (ADEChallengeData2016: images/, annotations/ class-index PNGs, objectInfo150.csv); "
    "reads the full release too (<name>.json objects with polygons, parts, attributes; instance masks)",
    reads=("mask", "polygon"), writes=("mask",), holds=("class indices", "scene categories", "splits"),
    files=(),
))
register(FormatSpec(
    "camvid", "visionloop.formats.camvid",
    "CamVid (train/ + train_labels/<name>_L.png colour masks + class_dict.csv)",
    reads=("mask",), writes=("mask",), holds=("class colours", "splits"),
    files=(),
))


register(FormatSpec(
    "supervisely", "visionloop.formats.supervisely",
    "Supervisely JSON project (meta.json + <dataset>/ann/<image>.json + <dataset>/img/)",
    reads=("box", "polygon", "polyline", "mask", "keypoints", "label"), writes=("box", "polygon", "polyline", "mask", "keypoints", "label"),
    holds=("object tags (attributes)", "image tags", "class colours", "keypoint names (graphs)", "splits (datasets)"),
    files=(".json",),  # meta.json
))


register(FormatSpec(
    "sagemaker", "visionloop.formats.sagemaker",
    "SageMaker Ground Truth output manifest (object detection, semantic segmentation, classification jobs)",
    reads=("box", "mask", "label"), writes=("box", "mask", "label"),
    holds=("class ids", "confidence", "human/auto-labelled flag", "splits (one manifest each)"),
    files=None,  # any suffix: a manifest file is sniffed whatever its name
))


register(FormatSpec(
    "labelbox", "visionloop.formats.labelbox",
    "Labelbox NDJSON export v2 (boxes, polygons, points, lines, classifications, free text as captions; masks "
    "need network)",
    reads=("box", "polygon", "polyline", "keypoints", "label", "caption"),
    writes=("box", "polygon", "polyline", "keypoints", "label", "caption"),
    holds=("nested classifications (attributes)", "global classifications", "several labels per row"),
    files=(".ndjson", ".jsonl", ".json"),
))


register(FormatSpec(
    "cifar10", "visionloop.formats.cifar10",
    "CIFAR-10 python batches (cifar-10-batches-py/: batches.meta, data_batch_1..5, test_batch; pixels inside)",
    reads=("label",), writes=("label",), holds=("splits (train, test)", "embedded 32x32 images"),
    files=(),
))
register(FormatSpec(
    "cifar100", "visionloop.formats.cifar100",
    "CIFAR-100 python batches (cifar-100-python/: meta, train, test; fine labels, coarse as supercategory)",
    reads=("label",), writes=("label",),
    holds=("coarse labels (supercategory, coarse_label attribute)", "splits (train, test)", "embedded 32x32 images"),
    files=(),
))


register(FormatSpec(
    "mnist", "visionloop.formats.mnist",
    "MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-*; .gz too; classes 0..9)",
    reads=("label",), writes=("label",), holds=("splits (train, test)", "embedded 28x28 grey images"),
    files=(),
))
register(FormatSpec(
    "fashion_mnist", "visionloop.formats.fashion_mnist",
    "Fashion-MNIST IDX files (as mnist; claimed where a folder on the path names Fashion-MNIST; its ten names)",
    reads=("label",), writes=("label",), holds=("splits (train, test)", "embedded 28x28 grey images"),
    files=(),
))


register(FormatSpec(
    "icdar", "visionloop.formats.icdar",
    "ICDAR 2015 text localisation (gt_img_N.txt: x1,y1,...,x4,y4,transcription; ### = do not care)",
    reads=("polygon",), writes=("polygon",), holds=("transcriptions (attribute)", "do-not-care words", "splits"),
    files=(),
))


register(FormatSpec(
    "icdar_word_recognition", "visionloop.formats.icdar_word_recognition",
    "ICDAR word recognition (<split>/gt.txt or the release's Challenge4_Test_Task3_GT.txt: word_1.png, "
    "\"transcription\" + the word images)",
    reads=("label",), writes=("label",), holds=("transcriptions (class text, attribute)", "splits"),
    files=(),
))
register(FormatSpec(
    "icdar_text_segmentation", "visionloop.formats.icdar_text_segmentation",
    "ICDAR text segmentation (<name>_GT.bmp colour masks + <name>_GT.txt: colour, centre, box, character)",
    reads=("mask",), writes=("mask",),
    holds=("characters (transcription attribute)", "words", "colours and centres", "splits"),
    files=(),
))


register(FormatSpec(
    "labelme_xml", "visionloop.formats.labelme_xml",
    "LabelMe 3.0 XML, the original MIT LabelMe (Annotations/<folder>/*.xml + Images/<folder>/; CVAT's export)",
    reads=("box", "polygon"), writes=("box", "polygon"),
    holds=("occluded", "attributes", "deleted objects (skipped, counted)", "splits (split-named folders)"),
    files=(),
))


register(FormatSpec(
    "imagenet", "visionloop.formats.imagenet",
    "ImageNet-style classification (LOC_synset_mapping.txt / synsets.txt + meta/train.txt `path index` lists, or "
    "train/<wnid>/ folders)",
    reads=("label",), writes=("label",), holds=("class order of the mapping file", "unlabelled images", "splits"),
    files=(),
))


register(FormatSpec(
    "camvid_segnet", "visionloop.formats.camvid_segnet",
    "CamVid as SegNet ships it (train/ + trainannot/, val/, test/; class-index PNGs, 11 classes + unlabelled)",
    reads=("mask",), writes=("mask",), holds=("the 11 CamVid classes", "splits (train, val, test)"),
    files=(),
))


register(FormatSpec(
    "unlabelled", "visionloop.formats.unlabelled",
    "Unlabelled images (a folder of image files, flat or nested, and no labels; claimed only when no other "
    "format recognises the folder)",
    reads=(), writes=(), holds=("splits (train/ valid/ test/ folders)",),
    files=(),
))


def get(name: str) -> FormatSpec:
    try:
        return FORMATS[name]
    except KeyError:
        raise NotFoundError(f"unknown format {name!r}", hint=f"one of: {', '.join(sorted(FORMATS))}") from None


def detect_all(path: Path) -> list[tuple[str, Detection]]:
    """Every format's opinion of `path`, most confident first.

    For a file, formats whose `files` leave its suffix out are not imported nor asked: they could not
    claim it, and importing all of them costs more than the detection itself.
    """
    path = Path(path)
    suffix = path.suffix.lower() if path.is_file() else None
    results: list[tuple[str, Detection]] = []
    for name, spec in FORMATS.items():
        if suffix is not None and spec.files is not None and suffix not in spec.files:
            results.append((name, Detection.no(f"does not read a {suffix or 'suffix-less'} file")))
        else:
            results.append((name, spec.load().detect(path)))
    return sorted(results, key=lambda r: -r[1].score)


#: a detection at least this sure wins even when another format found its own annotation file unreadable
CONFIDENT = 0.8


def detect(path: Path, *, flag: str = "--format") -> str:
    """The format of a file or folder, or a FormatError that says what each format thought.

    `flag`: the option the caller's command takes to name the format (`import --format`, `convert --from`),
    which the error's hint names."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    results = detect_all(path)
    best_name, best = results[0]
    broken = [(n, d) for n, d in results if d.unreadable is not None]
    if broken and best.score < CONFIDENT:
        name, d = broken[0]
        raise FormatError(f"cannot read this {name} annotation file: {d.reason}", path=d.unreadable,
                          hint=f"fix the file (or pass {flag} to read {path} as another format)")
    if best.score <= 0:
        reasons = "; ".join(f"{n}: {d.reason}" for n, d in results)
        raise FormatError("no format recognises this layout", path=path,
                          hint=f"pass {flag} <format> (see `visionloop formats`). What each format saw: {reasons}")
    return best_name


def read(path: Path, *, format: str | None = None, split: str | None = None, flag: str = "--format") -> Reader:
    path = Path(path)
    name = format or detect(path, flag=flag)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    reader: Reader = get(name).load().read(path, split=split)
    return _inside(reader, path)


def _inside(reader: Reader, path: Path) -> Reader:
    """The reader, refusing images outside the dataset's folder unless `allow_outside_root()` is in effect."""
    root = dataset_root(path)
    parts = reader.parts

    def cut(n: int) -> list[ReadPart] | None:
        assert parts is not None
        found = parts(n)
        if found is None:
            return None
        return [ReadPart(p.start, functools.partial(inside_root, p, root, source=path)) for p in found]

    return Reader(reader.classes, functools.partial(inside_root, reader, root, source=path), source=reader.source,
                  parts=cut if parts is not None else None, verify_parts=reader.verify_parts)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    format: str,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    spec = get(format)
    dropped = LossCounter("dropped")  # what the format cannot hold at all (`base.UNHELD`): refused first when strict
    samples = drop_unheld(samples, writes=spec.writes, format=spec.name, dropped=dropped)
    report: WriteReport = spec.load().write(samples, Path(out), classes=classes, images=images)
    for what, n in dropped.items():
        report.dropped[what] += n
    return report

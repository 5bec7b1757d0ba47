"""From a recipe to ops, and from one source image to its outputs (what a worker runs).

A worker builds its small jobs itself from the store's database (sha256, size,
orientation, annotations, which split, how many copies, mosaic partners: see
`generate.JobReader`), reads the blob itself, decodes it at
most once per reduction, renders every output of that image, writes the
encoded bytes to the blob store and returns one small record per output.

Every random draw of an output comes from a generator seeded by
(recipe seed, image sha256, output index): the same recipe and source give the
same bytes whatever the number of workers or the order they finish in.
"""

from __future__ import annotations

import logging
import math
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from visionloop.core.geometry import Label, Polyline
from visionloop.core.sample import Annotation
from visionloop.store import itemcodec
from visionloop.transforms import affine as A
from visionloop.transforms import ops, pixels
from visionloop.transforms.choices import Edges, NoiseKind
from visionloop.transforms.frame import Frame, flip_permutation
from visionloop.versions.blobio import BlobIO
from visionloop.versions.recipe import Recipe

log = logging.getLogger(__name__)

TRAIN = "train"


@dataclass(slots=True)
class SourceImage:
    """What a worker needs of one stored image (no pixels)."""

    image_id: int
    sha256: str
    name: str  # output base name: the image's file name, made unique in the version
    width: int  # upright
    height: int
    orientation: int
    media_format: str | None
    annotations: tuple[Annotation, ...]  # classes already renamed / merged / dropped


@dataclass(slots=True)
class Job:
    position: int
    split: str
    copies: int
    source: SourceImage
    partners: dict[int, list[SourceImage]] = field(default_factory=dict)  # output index → 3 images


@dataclass(slots=True)
class Output:
    """One generated image, as the main process stores it."""

    position: int
    out_index: int
    split: str
    file_name: str
    sha256: str
    width: int
    height: int
    orientation: int
    media_format: str
    size: int  # bytes, 0 when the source blob is reused
    annotations: str
    n_annotations: int
    meta: str
    reused: bool
    dropped: int
    source_image_id: int


def output_rng(seed: int, sha256: str, out_index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one output: (seed, image hash, output index, stream) and nothing else."""
    return np.random.default_rng(np.random.SeedSequence([seed, int(sha256, 16), out_index, stream]))


class Isolate(ops.Window):
    """Crop to one object's box; the output is a classification image labelled with its class."""

    name = "isolate"

    def __init__(self, *, x0: int, y0: int, x1: int, y1: int, annotation: Annotation) -> None:
        super().__init__(x0=x0, y0=y0, x1=x1, y1=y1)
        self.annotation = annotation

    def apply(self, frame: Frame, params: dict[str, Any]) -> None:
        frame.warp(params["matrix"], params["size"], handles=(), edges=Edges.BLACK)
        a = self.annotation
        frame.annotations = [Annotation(a.label, Label(), attributes=a.attributes, source=a.source,
                                        confidence=a.confidence)]

    def describe(self, params: dict[str, Any]) -> str:
        return "isolate"


class Pipeline:
    """The ops of a recipe, built once per worker."""

    def __init__(self, recipe: Recipe, *, keypoint_names: dict[str, tuple[str, ...]] | None = None) -> None:
        self.recipe = recipe
        p = recipe.preprocess
        self.flip_pairs: dict[str, np.ndarray] = {}
        for label, names in (keypoint_names or {}).items():
            perm = flip_permutation(names)
            if perm is not None:
                self.flip_pairs[label] = perm
        self.static: list[ops.Op] = []
        if p.static_crop is not None:
            c = p.static_crop
            self.static.append(ops.StaticCrop(x0=c.x0, y0=c.y0, x1=c.x1, y1=c.y1))
        self.pre: list[ops.Op] = []
        if p.resize is not None:
            self.pre.append(ops.Resize(width=p.resize.width, height=p.resize.height, mode=p.resize.mode,
                                       edges=p.resize.edges))
        if p.grayscale:
            self.pre.append(ops.Grey())
        if p.contrast.value != "none":
            self.pre.append(ops.ContrastOp(mode=p.contrast))
        self.augment: list[ops.Op] = build_augment(recipe)
        self.format = recipe.output.format
        self.quality = recipe.output.quality

    # -- views: tiles, isolated objects, or the whole image ----------------------------------
    def views(self, frame: Frame) -> list[tuple[str, list[ops.Op]]]:
        p = self.recipe.preprocess
        if p.tile is not None:
            rows, cols = p.tile.rows, p.tile.cols
            w, h = frame.size
            xs = [c * w // cols for c in range(cols + 1)]
            ys = [r * h // rows for r in range(rows + 1)]
            out: list[tuple[str, list[ops.Op]]] = []
            for r in range(rows):
                for c in range(cols):
                    if xs[c + 1] > xs[c] and ys[r + 1] > ys[r]:
                        out.append((f"_tile-{r}-{c}", [ops.Window(x0=xs[c], y0=ys[r], x1=xs[c + 1], y1=ys[r + 1],
                                                                  label=f"tile({r},{c})")]))
            return out
        if p.isolate_objects:
            out = []
            for k, ann in enumerate(frame.annotations):
                b = ann.box
                if b is None or isinstance(ann.geometry, Polyline):  # a line is not an object to crop out
                    continue
                x0, y0 = max(0, math.floor(b.x0)), max(0, math.floor(b.y0))
                x1, y1 = min(frame.width, math.ceil(b.x1)), min(frame.height, math.ceil(b.y1))
                if x1 > x0 and y1 > y0:
                    out.append((f"_obj-{k}", [Isolate(x0=x0, y0=y0, x1=x1, y1=y1, annotation=ann)]))
            return out
        return [("", [])]

    # -- one source image → its outputs --------------------------------------------------------
    def frame(self, src: SourceImage, pixels_source: BlobPixels | None,
              annotations: tuple[Annotation, ...]) -> Frame:
        raw = (src.height, src.width) if src.orientation in (5, 6, 7, 8) else (src.width, src.height)
        f = Frame(size=(src.width, src.height), annotations=annotations, source=pixels_source,
                  pending=A.orientation(src.orientation, *raw), min_visibility=self.recipe.min_visibility,
                  flip_pairs=self.flip_pairs)
        if src.orientation != 1 and self.recipe.preprocess.auto_orient:
            f.changed = True
            f.ops.append("auto_orient")
        return f

    def run(self, job: Job, blobs: BlobIO) -> list[Output]:
        src = job.source
        anns = src.annotations
        cache = BlobPixels(blobs, src)
        probe = self.frame(src, None, anns)
        for op in self.static:
            op(probe, np.random.default_rng(0))
        views = self.views(probe)
        outputs: list[Output] = []
        seed = self.recipe.seed
        for v, (suffix, view_ops) in enumerate(views):
            for c in range(job.copies):
                out_index = v * job.copies + c
                augmented = job.split == TRAIN and bool(self.augment) and not (
                    self.recipe.augment is not None and self.recipe.augment.keep_original and c == 0)
                rng = output_rng(seed, src.sha256, out_index)
                frame = self.frame(src, cache, anns)
                for op in (*self.static, *view_ops, *self.pre):
                    op(frame, rng)
                meta: dict[str, Any] = {}
                if augmented:
                    partners = job.partners.get(out_index)
                    if partners:
                        frame.partners = [self._partner(p, blobs) for p in partners]
                        meta["mosaic"] = [p.image_id for p in partners]
                    for op in self.augment:
                        op(frame, rng)
                name = src.name if not suffix and c == 0 else _suffixed(src.name, suffix + (f"_aug-{c}" if c else ""))
                outputs.append(self._finish(job, src, frame, out_index, name, meta, blobs))
        return outputs

    def _partner(self, src: SourceImage, blobs: BlobIO) -> Frame:
        f = self.frame(src, BlobPixels(blobs, src), src.annotations)
        rng = np.random.default_rng(0)  # preprocessing draws nothing
        for op in (*self.static, *self.pre):
            op(f, rng)
        return f

    def _finish(self, job: Job, src: SourceImage, frame: Frame, out_index: int, name: str,
                meta: dict[str, Any], blobs: BlobIO) -> Output:
        image = frame.result()
        meta["ops"] = frame.ops
        if image is None:  # nothing touched the pixels: the source bytes are the output
            sha, size, fmt, orientation, reused = src.sha256, 0, src.media_format or "", src.orientation, True
        else:
            ext = self.format.extension
            data = pixels.encode(image, extension=ext, quality=self.quality)
            sha = blobs.put_async(data)
            size, fmt, orientation, reused = len(data), self.format.value, 1, False
            name = posixpath.splitext(name)[0] + ext
        return Output(
            position=job.position, out_index=out_index, split=job.split, file_name=name, sha256=sha,
            width=frame.width, height=frame.height, orientation=orientation, media_format=fmt, size=size,
            annotations=itemcodec.dumps(frame.annotations), n_annotations=len(frame.annotations),
            meta=orjson.dumps(meta).decode(), reused=reused, dropped=frame.dropped, source_image_id=src.image_id,
        )


def _suffixed(name: str, suffix: str) -> str:
    """`dir/a.jpg` + `_aug-1` → `dir/a_aug-1.jpg` (string work: pathlib would intern every name)."""
    stem, ext = posixpath.splitext(name)
    return stem + suffix + ext


class BlobPixels:
    """A source image's pixels, read from the blob store once and decoded once per reduction."""

    def __init__(self, blobs: BlobIO, src: SourceImage) -> None:
        self.blobs = blobs
        self.sha256 = src.sha256
        o = src.orientation
        self.size = (src.height, src.width) if o in (5, 6, 7, 8) else (src.width, src.height)
        self.jpeg = (src.media_format or "").lower() in ("jpeg", "jpg")
        self._data: bytes | None = None
        self._decoded: dict[tuple[int, bool], np.ndarray] = {}

    def load(self, reduce: int, grey: bool) -> np.ndarray:
        """Pixels at 1/reduce size; a finer decode already made serves too (the outputs of an image
        always run in the same order in one job, so which one serves is deterministic)."""
        key = (reduce, grey)
        if key not in self._decoded:
            for (r, g), arr in self._decoded.items():
                if r <= reduce and (g == grey or grey):  # colour can become grey, not the reverse
                    return arr if g == grey else pixels.to_grey(arr)
            if self._data is None:
                self._data = self.blobs.get(self.sha256)
            arr = pixels.decode(self._data, reduce=reduce, grey=grey)
            arr.flags.writeable = False  # shared by the outputs of this image
            self._decoded[key] = arr
        return self._decoded[key]


def build_augment(recipe: Recipe) -> list[ops.Op]:
    """The augmentation ops of a recipe, in the recipe's fixed order."""
    a = recipe.augment
    if a is None:
        return []
    out: list[ops.Op] = []
    if a.mosaic is not None:
        out.append(ops.Mosaic(jitter=a.mosaic.jitter))
    if a.flip is not None:
        if a.flip.horizontal:
            out.append(ops.HFlip())
        if a.flip.vertical:
            out.append(ops.VFlip())
    if a.rot90 is not None:
        turns = [0] + [k for k, on in ((3, a.rot90.clockwise), (1, a.rot90.counter_clockwise),
                                       (2, a.rot90.upside_down)) if on]
        if len(turns) > 1:
            out.append(ops.Rot90(turns=turns))
    if a.rotate is not None or a.shear is not None:
        out.append(ops.Affine(rotate=a.rotate.degrees if a.rotate else 0.0,
                              shear_x=a.shear.horizontal if a.shear else 0.0,
                              shear_y=a.shear.vertical if a.shear else 0.0))
    if a.crop is not None:
        out.append(ops.Zoom(percent=a.crop.percent))
    if a.box is not None:
        b = a.box
        out.append(ops.BoxLevel(
            flip_h=bool(b.flip and b.flip.horizontal), flip_v=bool(b.flip and b.flip.vertical),
            rotate=b.rotate.degrees if b.rotate else 0.0,
            shear_x=b.shear.horizontal if b.shear else 0.0, shear_y=b.shear.vertical if b.shear else 0.0,
            crop=b.crop.percent if b.crop else 0.0, brightness=b.brightness.percent if b.brightness else 0.0,
            exposure=b.exposure.percent if b.exposure else 0.0, blur=b.blur.pixels if b.blur else 0.0,
            noise=b.noise.percent if b.noise else 0.0, noise_kind=b.noise.kind if b.noise else NoiseKind.SALT_PEPPER,
        ))
    if a.grayscale is not None:
        out.append(ops.RandomGrey(percent=a.grayscale.percent))
    if a.hue is not None:
        out.append(ops.Hue(degrees=a.hue.degrees))
    if a.saturation is not None:
        out.append(ops.Saturation(percent=a.saturation.percent))
    if a.brightness is not None:
        out.append(ops.Brightness(percent=a.brightness.percent))
    if a.exposure is not None:
        out.append(ops.Exposure(percent=a.exposure.percent))
    if a.blur is not None:
        out.append(ops.Blur(pixels=a.blur.pixels))
    if a.motion_blur is not None:
        out.append(ops.MotionBlur(pixels=a.motion_blur.pixels))
    if a.camera_gain is not None:
        out.append(ops.CameraGain(percent=a.camera_gain.percent))
    if a.noise is not None:
        out.append(ops.Noise(percent=a.noise.percent, kind=a.noise.kind))
    if a.cutout is not None:
        out.append(ops.Cutout(count=a.cutout.count, percent=a.cutout.percent))
    return out


def compose(recipe: Recipe, *, seed: int | None = None) -> ops.Compose:
    """The recipe's augmentation as a train-time callable (`Compose`), on pixels already preprocessed."""
    return ops.Compose([op for op in build_augment(recipe) if not isinstance(op, ops.Mosaic)], seed=seed,
                       min_visibility=recipe.min_visibility)

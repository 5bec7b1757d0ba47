"""Training data: a version's split through `visionloop.transforms` (the same ops as versions and inference).

Augmentation draws from a generator seeded by (seed, epoch, index), so an item's augmentation
does not depend on which DataLoader worker reads it or in what order: same seed, same batches.
The letterbox (`Resize(mode=fit)`) is the last op, so flip + colour + resize render in one warp;
inference applies the same `Resize` op (see `visionloop.infer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from visionloop.core.errors import VisionLoopError
from visionloop.transforms import Brightness, Compose, HFlip, Hue, Resize, ResizeMode, Saturation, Zoom
from visionloop.versions import VersionDataset


def preprocessing(width: int, height: int, resize: str) -> dict[str, Any]:
    """The exact preprocessing a model expects (stored in its row and in its ONNX metadata)."""
    return {"resize": resize, "width": width, "height": height, "edges": "black", "color": "rgb",
            "layout": "nchw", "dtype": "float32", "range": [0, 255], "normalize": "in-graph",
            "interpolation": "transforms.pixels.render"}


def ops(width: int, height: int, resize: str, *, augment: bool, zoom: float = 0.0) -> list[Any]:
    """The training pipeline: flips and colour jitter (and, with `zoom` > 0, a random crop keeping at least
    100 - zoom % of each side: scale jitter), then the model's resize."""
    out: list[Any] = []
    if augment:
        out += [HFlip(p=0.5), Brightness(percent=15), Saturation(percent=15), Hue(degrees=5)]
        if zoom > 0:
            out.append(Zoom(percent=zoom))
    out.append(Resize(width=width, height=height, mode=ResizeMode(resize)))
    return out


class _Size:
    """The width and height `Resize.make_params` reads from a frame."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height


_NO_RNG = np.random.default_rng(0)


class TrainSet:
    """Items of one split as (CHW uint8 tensor, target) after the model's preprocessing."""

    def __init__(self, base: VersionDataset, *, width: int, height: int, resize: str, augment: bool, seed: int,
                 task: str, multi_label: bool = False, zoom: float = 0.0) -> None:
        self.base = base
        self.compose = Compose(ops(width, height, resize, augment=augment, zoom=zoom))
        self._size = (width, height, resize, augment)
        self.seed = seed
        self.epoch = 0
        self.task = task
        self.multi_label = multi_label
        self.num_classes = len(base.class_names)
        if task in ("segment", "semantic"):
            base.masks = True  # per-object masks (polygons and RLE rasterised) in the targets

    def stop_zoom(self) -> None:
        """From now on, no scale jitter (the last part of a schedule trains on the sizes it will see)."""
        width, height, resize, augment = self._size
        self.compose = Compose(ops(width, height, resize, augment=augment, zoom=0.0))

    def __len__(self) -> int:
        return len(self.base)

    def content(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Where a `width` × `height` image lands in the model's input (x0, y0, x1, y1): the whole input when
        stretched, inside the bars when letterboxed. The deployed model (`infer.Predictor`) clips its boxes to
        the image, so validation clips to this rectangle to measure the same thing."""
        W, H, resize, _ = self._size
        m = Resize(width=W, height=H, mode=ResizeMode(resize)).make_params(_Size(width, height), _NO_RNG)["matrix"]
        x0, y0 = m[0, 2], m[1, 2]
        return (float(x0), float(y0), float(x0 + m[0, 0] * width), float(y0 + m[1, 1] * height))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        import cv2

        sample = self.base.sample(index)
        assert sample.image.sha256 is not None
        data = self.base.store.blobs.get(sample.image.sha256)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VisionLoopError("cannot decode the version's image", path=sample.image.file_name)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample, image = self.compose(sample, rgb, rng=rng)
        t = self.base.target(sample, index, image.shape[0], image.shape[1])
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.task == "classify":
            labels = t["image_labels"]
            if self.multi_label:
                y = torch.zeros(self.num_classes, dtype=torch.float32)
                y[torch.as_tensor(labels, dtype=torch.long)] = 1.0
                return pixels, y
            return pixels, torch.tensor(int(labels[0]) if len(labels) else -1, dtype=torch.long)
        if self.task == "semantic":
            return pixels, torch.from_numpy(t["label_map"].astype(np.int64))
        boxes = torch.from_numpy(t["boxes"]).reshape(-1, 4)
        if self._size[3]:  # training: boxes under a pixel after augmentation teach nothing
            keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        else:  # validation counts every ground-truth box, as evaluating the deployed model does
            keep = torch.ones(len(boxes), dtype=torch.bool)
        out = {"boxes": boxes[keep], "labels": torch.from_numpy(t["labels"])[keep], "image_id": int(t["image_id"])}
        if not self._size[3]:
            out["content"] = self.content(rgb.shape[1], rgb.shape[0])
        if self.task == "segment":
            out["masks"] = torch.from_numpy(t["masks"])[keep]
        return pixels, out


def collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
    images = torch.stack([b[0] for b in batch])
    targets = [b[1] for b in batch]
    if isinstance(targets[0], torch.Tensor):
        return images, torch.stack(targets)
    return images, targets

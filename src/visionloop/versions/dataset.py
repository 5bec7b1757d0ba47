"""VersionDataset: a map-style dataset over one split of a version, reading blobs lazily.

    ds = VersionDataset(store, "v3", "train", transform=pipeline.compose(recipe))
    image, target = ds[0]     # HWC uint8 RGB; boxes (N, 4) float32 xyxy, labels (N,) int64, ...
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=lambda b: tuple(zip(*b)))

It has `__len__` and `__getitem__`, which is all torch's DataLoader asks, and
imports no torch. Only the item ids are held; each `__getitem__` reads one row
and one blob. The store is reopened in each process (DataLoader workers), so
the dataset pickles as its project path, version id and split.

Labels are 0-based positions in the version's classes (`ds.classes`); add one
for models that keep 0 for the background.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from visionloop.core.errors import ImageError
from visionloop.core.geometry import (
    Caption,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    label_map,
    polygon_to_mask,
)
from visionloop.core.sample import ImageRef, Sample
from visionloop.store import itemcodec
from visionloop.store.project import Store
from visionloop.store.schema import VersionItemRow
from visionloop.versions.api import _ready
from visionloop.versions.selection import classes_from_json

Transform = Callable[..., tuple[Sample, np.ndarray]]


class VersionDataset:
    def __init__(self, store: Store | str | Path, version: str | int, split: str | None = "train", *,
                 transform: Transform | None = None, masks: bool = False) -> None:
        self._store: Store | None = store if isinstance(store, Store) else None
        self._root = Path(store.root if isinstance(store, Store) else store)
        self._pid = os.getpid()
        st = self.store
        info = _ready(st, version)
        self.version = info.name
        self.version_id = info.id
        self.split = split
        self.classes = classes_from_json(info.classes)
        self.class_names = self.classes.names
        self._index = {name: i for i, name in enumerate(self.class_names)}
        self.transform = transform
        self.masks = masks
        with st.session() as s:
            q = select(VersionItemRow.id).where(VersionItemRow.version_id == self.version_id)
            if split is not None:
                q = q.where(VersionItemRow.split == split)
            self._ids = np.asarray(s.scalars(q.order_by(VersionItemRow.position, VersionItemRow.out_index)).all(),
                                   dtype=np.int64)

    @property
    def store(self) -> Store:
        if self._store is None or self._pid != os.getpid():
            self._store = Store.open(self._root)
            self._pid = os.getpid()
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def __len__(self) -> int:
        return len(self._ids)

    def polylines(self) -> int:
        """How many polylines the split's items hold: `target` leaves them out (a line is not an object)."""
        import orjson

        with self.store.session() as s:
            q = select(VersionItemRow.annotations).where(VersionItemRow.version_id == self.version_id,
                                                         VersionItemRow.annotations.contains('"kind":"polyline"'))
            if self.split is not None:
                q = q.where(VersionItemRow.split == self.split)
            return sum(1 for text in s.scalars(q) for d in orjson.loads(text) if d.get("kind") == "polyline")

    def sample(self, index: int) -> Sample:
        """The item as a Sample (no pixels)."""
        with self.store.session() as s:
            r = s.get(VersionItemRow, int(self._ids[index]))
            if r is None:
                raise IndexError(index)
            ref = ImageRef(file_name=r.file_name, width=r.width, height=r.height, sha256=r.sha256,
                           format=r.media_format, orientation=r.orientation,
                           path=self.store.blobs.local_path(r.sha256))
            return Sample(ref, itemcodec.loads(r.annotations), split=r.split)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        import cv2

        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        sample = self.sample(index)
        assert sample.image.sha256 is not None
        data = self.store.blobs.get(sample.image.sha256)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
        if bgr is None:
            raise ImageError("cannot decode the version's image", path=sample.image.file_name,
                             where=f"blob {sample.image.sha256}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.transform is not None:
            sample, image = self.transform(sample, image)
        return image, self.target(sample, index, image.shape[0], image.shape[1])

    def target(self, sample: Sample, index: int, height: int, width: int) -> dict[str, Any]:
        """The model's targets: objects are every annotation but whole-image labels, captions (no class) and
        polylines (a line is not an object a detector or segmenter learns: `polylines()` counts what is left
        out)."""
        objects = [a for a in sample.annotations if not isinstance(a.geometry, Label | Caption | Polyline)]
        boxes = np.zeros((len(objects), 4), dtype=np.float32)
        for i, a in enumerate(objects):
            b = a.box
            if b is not None:
                boxes[i] = (b.x0, b.y0, b.x1, b.y1)
        target: dict[str, Any] = {
            "boxes": boxes,
            "labels": np.asarray([self._index[a.label] for a in objects], dtype=np.int64),
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
            "iscrowd": np.asarray([a.crowd for a in objects], dtype=np.int64),
            "image_id": int(self._ids[index]),
            "file_name": sample.image.file_name,
            "image_labels": np.asarray([self._index[a.label] for a in sample.annotations
                                        if isinstance(a.geometry, Label)], dtype=np.int64),
        }
        if any(isinstance(a.geometry, Keypoints) for a in objects):
            n = max(len(a.geometry.points) // 3 for a in objects if isinstance(a.geometry, Keypoints))
            kp = np.zeros((len(objects), n, 3), dtype=np.float32)
            for i, a in enumerate(objects):
                if isinstance(a.geometry, Keypoints):
                    p = np.asarray(a.geometry.points, dtype=np.float32).reshape(-1, 3)
                    kp[i, :len(p)] = p
            target["keypoints"] = kp
        if self.masks:
            m = np.zeros((len(objects), height, width), dtype=np.uint8)
            for i, a in enumerate(objects):
                g = a.geometry
                if isinstance(g, Mask):
                    m[i] = g.to_array()
                elif isinstance(g, Polygon):
                    m[i] = polygon_to_mask(g, height, width).to_array()
                elif (b := a.box) is not None:
                    m[i, int(b.y0):int(np.ceil(b.y1)), int(b.x0):int(np.ceil(b.x1))] = 1
            target["masks"] = m
            target["label_map"] = label_map(m, target["labels"], target["iscrowd"])  # semantic segmentation
        return target

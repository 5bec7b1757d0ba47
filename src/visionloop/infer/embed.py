"""Image embeddings on ONNX Runtime (no torch, no store): `OnnxEmbedder`.

    emb = OnnxEmbedder(path_or_bytes)            # exported by visionloop.models.embedder, or your own ONNX
    vecs = emb.embed_files(["a.jpg", "b.png"])    # (N, D) float32, each row unit length

An embedder exported by visionloop carries its preprocessing in the metadata. A user's own ONNX
embedder takes float32 NCHW RGB pixels on 0..255 (normalise inside the graph), at the input size
its graph fixes (224×224 when the size is symbolic); its first output, flattened per image, is the
embedding, L2-normalised here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import ImageError, VisionLoopError
from visionloop.infer.session import open_session
from visionloop.transforms import Frame, Resize, ResizeMode

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_SIZE = 224


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Image files from files and folders (folders walked recursively, sorted); a missing path is an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise VisionLoopError("the folder holds no images", path=p,
                                      hint="pass JPEG, PNG, BMP, TIFF or WebP files, or folders of them")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise VisionLoopError("no such file or folder", path=p)
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """HWC uint8 RGB, EXIF orientation applied (as training's decode)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError("cannot read the image", path=path, hint="pass a JPEG, PNG, BMP, TIFF or WebP file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class OnnxEmbedder:
    def __init__(self, model: str | Path | bytes, *, threads: int | None = None) -> None:
        where = None if isinstance(model, bytes) else str(model)
        self.session = open_session(model, providers=["CPUExecutionProvider"], threads=threads, what="embedder",
                                    hint="pass an ONNX file whose first input takes NCHW float32 images")
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4:
            raise VisionLoopError(f"the ONNX embedder's input {inp.name} has shape {inp.shape}, not NCHW",
                                  path=where, hint="export the embedder with a (N, 3, H, W) image input")
        self.input_name = inp.name
        self.dynamic_batch = not isinstance(inp.shape[0], int)
        if "visionloop.preprocessing" in meta:
            pre: dict[str, Any] = json.loads(meta["visionloop.preprocessing"])
            self.width, self.height = int(pre["width"]), int(pre["height"])
        else:
            h, w = inp.shape[2], inp.shape[3]
            self.height = h if isinstance(h, int) else DEFAULT_SIZE
            self.width = w if isinstance(w, int) else DEFAULT_SIZE
        self.name: str = meta.get("visionloop.embedder", "")
        self._resize = Resize(width=self.width, height=self.height, mode=ResizeMode.STRETCH)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HWC uint8 RGB → (3, H, W) float32 on 0..255 (stretched, the `Resize` op of training)."""
        frame = Frame.from_array(image, [], bgr=False)
        self._resize.apply(frame, self._resize.make_params(frame, np.random.default_rng(0)))
        return frame.image().transpose(2, 0, 1).astype(np.float32)

    def embed(self, images: Sequence[np.ndarray], *, batch: int = 16) -> np.ndarray:
        """(N, D) float32 unit-norm embeddings of HWC uint8 RGB images."""
        step = batch if self.dynamic_batch else 1
        outs = []
        for i in range(0, len(images), step):
            x = np.ascontiguousarray(np.stack([self.preprocess(im) for im in images[i:i + step]]))
            y = np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)
            outs.append(y.reshape(y.shape[0], -1))
        if not outs:
            return np.zeros((0, 0), np.float32)
        vecs = np.concatenate(outs)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return (vecs / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_files(self, paths: Sequence[str | Path], *, batch: int = 16) -> np.ndarray:
        out = []
        for i in range(0, len(paths), batch):  # decode a batch at a time: memory bounded by the batch
            out.append(self.embed([read_rgb(p) for p in paths[i:i + batch]], batch=batch))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

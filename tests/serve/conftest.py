"""A project with two small detectors, and real servers (uvicorn in a thread on a free loopback port)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from visionloop.serve import Settings
from visionloop.serve.background import BackgroundServer

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """`det-a`: a detector trained one step on 16 synthetic 96 px images at 64 px (its real export);
    `det-b`: the same weights registered again as a second model, its ONNX file differing in metadata only
    (another export, another session) — two versions of the `detect` family in ~15 s."""
    import onnx

    from visionloop import formats
    from visionloop.demo import synthetic
    from visionloop.ingest import import_dataset
    from visionloop.store import Store
    from visionloop.store import models as registry
    from visionloop.train import train
    from visionloop.versions import create_version

    root = tmp_path_factory.mktemp("serve")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    with Store.init(root / "project") as store:
        import_dataset(store, root / "coco")
        version = create_version(store, SPLIT, workers=0)
        train(store, version.name, task="detect", epochs=1, max_steps=1, imgsz=64, batch=4, name="det-a")
        a = registry.get(store, "det-a")
        b = registry.create(store, task=a.task, arch=a.arch, weights_init=a.weights_init, version_id=version.id,
                            classes=a.classes, input_size=a.input_size, preprocessing=a.preprocessing,
                            hyper=a.hyper, name="det-b")
        registry.finish(store, b.id, weights=store.blobs.get(a.weights_sha256), metrics=a.metrics)
        proto = onnx.load_from_string(store.blobs.get(a.export("onnx", "fp32").sha256))
        for p in proto.metadata_props:
            if p.key == "visionloop.model":
                p.value = "det-b"
        registry.add_export(store, b.id, format="onnx", precision="fp32", data=proto.SerializeToString())
    return root / "project"


class Server(BackgroundServer):
    """The API on loopback in a thread (tests pass their own settings)."""

    def __init__(self, project: Path, settings: Settings, *, bind: str = "127.0.0.1") -> None:
        super().__init__(project, settings, bind=bind)


@pytest.fixture(scope="module")
def server(project) -> Iterator[Server]:
    with Server(project, Settings(refresh_s=0.2, url_allow_list=[])) as s:
        yield s


def png(w: int = 120, h: int = 90, *, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    a[20:60, 30:70] = (250, 30, 30)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def jpeg(w: int = 120, h: int = 90, *, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def one_ray_cluster(tmp_path_factory):
    """One local Ray cluster at a time across the xdist workers (two at once on 2 cores time out Serve's proxy):
    a file lock in the session's shared temp folder."""
    import fcntl

    with open(tmp_path_factory.getbasetemp().parent / "ray.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield

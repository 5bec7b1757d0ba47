from __future__ import annotations

import numpy as np
import pytest

from visionloop import formats
from visionloop.demo import synthetic
from visionloop.ingest import import_dataset
from visionloop.store import Store
from visionloop.versions import create_version

SPLIT = {"schema": 1, "seed": 0, "split": {"mode": "random", "ratios": {"train": 0.75, "valid": 0.25, "test": 0.0}}}


@pytest.fixture(scope="session")
def shapes_project(tmp_path_factory) -> tuple[Store, str]:
    """16 synthetic 96 px images of squares, triangles and discs, versioned 12/4."""
    root = tmp_path_factory.mktemp("shapes")
    formats.write(synthetic.shapes(16, seed=0, size=(96, 96), folder=root / "render"), root / "coco",
                  format="coco", classes=synthetic.classes())
    store = Store.init(root / "project")
    import_dataset(store, root / "coco")
    info = create_version(store, SPLIT, workers=0)
    return store, info.name


@pytest.fixture(scope="session")
def colours_project(tmp_path_factory) -> tuple[Store, str]:
    """Classification folders: 16 flat images, `red` or `blue`, with a little noise."""
    import cv2

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for i in range(16):
        cls = ("red", "blue")[i % 2]
        img = rng.integers(0, 60, (48, 48, 3)).astype(np.uint8)
        img[..., 2 if cls == "red" else 0] += 180  # BGR on disk
        (root / "data" / cls).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "data" / cls / f"{cls}_{i:02d}.png"), img)
    store = Store.init(root / "project")
    import_dataset(store, root / "data")
    info = create_version(store, SPLIT, workers=0)
    return store, info.name

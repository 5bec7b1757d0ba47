from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from visionloop.ingest import import_dataset
from visionloop.store import Store


def raccoon_subset(raccoon: Path, dest: Path, names: list[str]) -> Path:
    """A VOC folder with a few raccoon photos and their XML, laid out like the original."""
    (dest / "images").mkdir(parents=True)
    (dest / "annotations").mkdir()
    for n in names:
        shutil.copy(raccoon / "images" / f"{n}.jpg", dest / "images")
        shutil.copy(raccoon / "annotations" / f"{n}.xml", dest / "annotations")
    return dest


#: 24 raccoon photos, including the byte-identical pair raccoon-11 / raccoon-116
SMALL = [f"raccoon-{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                   23, 116)]


@pytest.fixture(scope="module")
def small_raccoon(raccoon, tmp_path_factory) -> Path:
    return raccoon_subset(raccoon, tmp_path_factory.mktemp("raccoon-small") / "voc", SMALL)


def new_project(root: Path, data: Path) -> Store:
    store = Store.init(root)
    import_dataset(store, data)
    return store

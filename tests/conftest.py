from __future__ import annotations

from pathlib import Path

import pytest
from vl_testdata import DATASETS  # tests/vl_testdata.py: where the real data is

ROOT = Path(__file__).resolve().parents[1]


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.fail(f"real test data missing: {path} (CI has ../shared/datasets beside the checkout; "
                    "or set VISIONLOOP_DATASETS)")
    return path


@pytest.fixture(scope="session")
def raccoon() -> Path:
    return dataset("raccoon")


@pytest.fixture(scope="session")
def lund() -> Path:
    return dataset("lund")


@pytest.fixture(scope="session")
def voc_subset(raccoon):
    """make(dest, numbers, shift={n: px}) → a VOC folder of raccoon-<n> photos laid out like the original;
    `shift` moves the first box of some photos right by px (the same images, relabelled)."""
    import shutil

    def make(dest: Path, numbers, *, shift: dict[int, int] | None = None) -> Path:
        (dest / "images").mkdir(parents=True)
        (dest / "annotations").mkdir()
        for n in numbers:
            shutil.copy(raccoon / "images" / f"raccoon-{n}.jpg", dest / "images")
            xml = (raccoon / "annotations" / f"raccoon-{n}.xml").read_text()
            if shift and n in shift:
                a, b = xml.index("<xmin>") + len("<xmin>"), xml.index("</xmin>")
                xml = xml[:a] + str(int(xml[a:b]) + shift[n]) + xml[b:]
            (dest / "annotations" / f"raccoon-{n}.xml").write_text(xml)
        return dest

    return make

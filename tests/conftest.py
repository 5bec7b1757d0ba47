from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _datasets() -> Path:
    """The real test data: $VISIONLOOP_DATASETS, else ../shared/datasets beside this checkout (as CI has it),
    else beside the local checkout this one was cloned from (a throwaway clone in a temp folder)."""
    if os.environ.get("VISIONLOOP_DATASETS"):
        return Path(os.environ["VISIONLOOP_DATASETS"]).resolve()
    beside = (ROOT / ".." / "shared" / "datasets").resolve()
    if beside.is_dir():
        return beside
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).is_dir():
        cloned_from = (Path(origin) / ".." / "shared" / "datasets").resolve()
        if cloned_from.is_dir():
            return cloned_from
    return beside


DATASETS = _datasets()


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

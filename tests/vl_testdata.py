"""Where the real test data is, for the suite's conftest and for test modules that need the path at import
time (`from vl_testdata import DATASETS`; not `from conftest import …`: with several conftest.py files the
name `conftest` may be another folder's)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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

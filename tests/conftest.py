from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = (ROOT / ".." / "shared" / "datasets").resolve()


@pytest.fixture(scope="session")
def raccoon() -> Path:
    path = DATASETS / "raccoon"
    if not path.exists():
        pytest.fail(f"real test data missing: {path} (CI has ../shared/datasets beside the checkout)")
    return path


@pytest.fixture(scope="session")
def lund() -> Path:
    path = DATASETS / "lund"
    if not path.exists():
        pytest.fail(f"real test data missing: {path}")
    return path

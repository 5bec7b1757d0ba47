"""ruff on everything; mypy on the typed core layers (core, store, formats), as ARCHITECTURE.md asks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff():
    proc = subprocess.run([_tool("ruff"), "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_core_store_formats():
    proc = subprocess.run([_tool("mypy"), "src/visionloop/core", "src/visionloop/store", "src/visionloop/formats"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_linter_layer_contracts_are_kept():
    """The layers of ARCHITECTURE.md, as contracts in pyproject.toml ([tool.importlinter])."""
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_importing_transforms_loads_no_store_and_no_sql():
    """Training, inference and serving share the transforms: importing them must stay cheap."""
    code = ("import sys, visionloop.transforms; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'torch') "
            "or m.startswith(('visionloop.store', 'visionloop.versions', 'visionloop.formats'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

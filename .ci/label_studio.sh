#!/usr/bin/env bash
# A Label Studio server for tests/loop/test_labelstudio.py, in its own virtual environment:
# `label-studio` pins Django and friends, so it cannot share the project's .venv.
# Usage: bash .ci/label_studio.sh [VENV_DIR]   (default .ci/ls-venv; skipped when already installed)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.ci/ls-venv}"
VERSION="1.23.2"
if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" -c "import label_studio, sys; sys.exit(label_studio.__version__ != '$VERSION')" 2>/dev/null; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "label-studio==$VERSION"

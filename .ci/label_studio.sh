#!/usr/bin/env bash
# A Label Studio server for tests/loop/test_labelstudio.py, in its own virtual environment:
# `label-studio` pins Django and friends, so it cannot share the project's .venv. Every package is pinned by
# .ci/label_studio-constraints.txt (a freeze of an install that passed): label-studio leaves most of its
# dependencies open, and one new release (sentry-sdk 3.0) was enough to stop it from starting.
# Usage: bash .ci/label_studio.sh [VENV_DIR]   (default .ci/ls-venv; skipped when already installed)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.ci/ls-venv}"
VERSION="1.23.2"
CONSTRAINTS=".ci/label_studio-constraints.txt"
STAMP="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
if [ -x "$VENV/bin/label-studio" ] && [ "$(cat "$VENV/.constraints-sha256" 2>/dev/null)" = "$STAMP" ] \
   && "$VENV/bin/python" -c "import label_studio, sys; sys.exit(label_studio.__version__ != '$VERSION')" 2>/dev/null; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -c "$CONSTRAINTS" "label-studio==$VERSION"
echo "$STAMP" > "$VENV/.constraints-sha256"

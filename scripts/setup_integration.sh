#!/usr/bin/env bash
# Create .venv-integration: the environment of the framework integration tests (tests/integration/), which need
# torchvision and so a torch build other than the main .venv's.  Python 3.11; idempotent (skips what is there);
# prints one line.  Tested versions: torch 2.14.1, torchvision 0.29.1, timm 1.0.31, ultralytics 8.4.190.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-integration
PINS=(torch==2.14.1 torchvision==0.29.1 timm==1.0.31 ultralytics==8.4.190 safetensors pytest pytest-xdist hypothesis)
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$candidate"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "setup_integration: python3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - <<'PYCHECK' >/dev/null 2>&1
import importlib.metadata as md
want = {"torch": "2.14.1", "torchvision": "0.29.1", "timm": "1.0.31", "ultralytics": "8.4.190"}
assert all(md.version(k).split("+")[0] == v for k, v in want.items())
for extra in ("safetensors", "pytest", "xdist", "hypothesis"):
    __import__(extra)
PYCHECK
then
  "$VENV/bin/python" -m pip install --quiet "${PINS[@]}" 2>&1 | { grep -v -e "^WARNING: Location" || true; }
fi
if ! "$VENV/bin/python" -P -c "import visionblocks" >/dev/null 2>&1; then  # (-P: not the checkout on sys.path)
  "$VENV/bin/python" -m pip install --quiet --no-deps -e . 2>&1 | { grep -v -e "^WARNING: Location" || true; }
fi
"$VENV/bin/python" -c "import importlib.metadata as md; print('$VENV ready: ' + ', '.join(f'{p} {md.version(p)}' for p in ('torch', 'torchvision', 'timm', 'ultralytics')))"

#!/usr/bin/env bash
# Create/refresh the project-local virtual environment `.venv/` with the pinned stack.
#
# Idempotent and fast when nothing changed: a stamp file records the hash of the
# requirement files and this script; if it matches, we exit in about a second.
# mmcv 2.1.0 has no CPU wheel with compiled ops on PyPI, so it is built once (9-17 min on
# 2 cores) into a wheel cache outside the repo and reused by every later install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMTRS_VENV:-$ROOT/.venv}"
WHEEL_CACHE="${MMTRS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmtrs/wheels}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.mmtrs-install-stamp"

hash_inputs() {
  cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/setup.py" \
      "$ROOT/tools/install.sh" "$ROOT"/mmtrs/quant/csrc/*.cpp | sha256sum | cut -d' ' -f1
}
want="$(hash_inputs)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c "import mmtrs" 2>/dev/null; then
  echo "[install] .venv is up to date ($VENV)"
  exit 0
fi

echo "[install] setting up $VENV"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check -q)
# This machine's pip config lists local indexes that may be empty; their warnings are noise.
exec 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

# torch first and pinned, so nothing later resolves a (multi-GB) CUDA build.
"${PIP[@]}" "torch==2.13.0"
if ! "$VPY" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  mkdir -p "$WHEEL_CACHE"
  if ! ls "$WHEEL_CACHE"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "[install] building mmcv 2.1.0 with ops (one-off, 9-17 min on 2 cores); cached in $WHEEL_CACHE"
    # mmcv's setup.py needs an old setuptools and must see torch: no build isolation,
    # or pip would fetch a fresh (CUDA) torch into the build env.
    "${PIP[@]}" "setuptools<70" wheel
    "${PIP[@]}" "mmengine==0.10.7" ninja
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$VPY" -m pip wheel --disable-pip-version-check -q \
      --no-build-isolation --no-deps -w "$WHEEL_CACHE" "mmcv==2.1.0"
    echo "[install] mmcv built; setuptools goes back to >=77 below (pip's conflict notice about it is expected)"
  else
    echo "[install] reusing cached mmcv wheel from $WHEEL_CACHE"
  fi
  "${PIP[@]}" "$WHEEL_CACHE"/mmcv-2.1.0-*.whl
fi
"${PIP[@]}" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
# also compiles the fused quantizer kernel (mmtrs/quant/csrc, ~1 min)
"${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
"$VPY" -c "import torch, mmcv, mmcv.ops, mmdet, mmengine, mmtrs; from mmtrs.quant.quantizer import fused_kernel_available as f; assert f(), 'fused quantizer kernel not built'; print('[install] ok: torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmengine', mmengine.__version__, '+ fused quantizer kernel')"
echo "$want" > "$STAMP"

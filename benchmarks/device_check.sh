#!/usr/bin/env bash
# Device check: install, then run benchmarks/device_check.py with the given arguments.
#
#   bash benchmarks/device_check.sh [ARGS]                  # online: `make install` (.venv), then run
#   bash benchmarks/device_check.sh --fetch-wheels          # online, once: pure-Python wheels the
#                                                           #   offline GPU image lacks -> .whl/
#   SSG_EVAL_WHEELS=.whl bash benchmarks/device_check.sh [ARGS]
#                                                           # offline GPU machine: its python3 (with
#                                                           #   CUDA torch) + the wheels; no network
# ARGS go to device_check.py (--cpu --quick, --num-images N, --batch B, --dtype ..., --commit SHA).
# When $OUT is set (the lent device machine), the log and the JSON line are copied there too.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 torch-fidelity==0.4.0)

if [ "${1:-}" = "--fetch-wheels" ]; then
  PIP_PY=python3
  [ -x .venv/bin/python ] && PIP_PY=.venv/bin/python
  mkdir -p .whl
  # antlr4 4.9.3 is an sdist only: `pip wheel` builds it (pure Python, any platform).
  "$PIP_PY" -m pip wheel -q --no-deps -w .whl "${WHEELS[@]}"
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  ls -l .whl
  exit 0
fi

if [ -n "${SSG_EVAL_WHEELS:-}" ]; then
  PY=python3
  "$PY" -c "import torch" || { echo "device_check: $PY has no torch" >&2; exit 2; }
  SITE=/tmp/ssg_eval_site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$SSG_EVAL_WHEELS"/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  make install
  PY=.venv/bin/python
fi

export PYTHONUNBUFFERED=1
status=0
if [ -n "${OUT:-}" ]; then
  set -o pipefail
  "$PY" benchmarks/device_check.py "$@" 2>&1 | tee "$OUT/device_check.log" || status=$?
  cp "${SSG_EVAL_RESULTS:-results}/bench/device_check.jsonl" "$OUT/" 2>/dev/null || true
else
  "$PY" benchmarks/device_check.py "$@" || status=$?
fi
exit "$status"

#!/usr/bin/env bash
# README command 1: install (if needed), then the CPU demo: synthetic COCO data ->
# FP RetinaNet -> W4A4 SGD and W4A4 TR-scheduled QAT -> side-by-side COCO AP table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/python tools/demo.py "$@"

#!/usr/bin/env bash
# README command 2: install (if needed) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
# Exit code 5 (no test collected) is a failure here, as any non-zero code.
exec .venv/bin/python -m pytest tests "$@"

#!/bin/sh
# Run the test suite: sh tests/run.sh [pytest arguments]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/venv.sh"
ensure_venv "$ROOT"
. "$ROOT/deploy/echarts.sh"
ensure_echarts "$ROOT"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"

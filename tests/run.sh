#!/bin/sh
# Run the test suite: sh tests/run.sh [pytest arguments]
# Tests run in SENSORS_TEST_WORKERS processes (pytest-xdist, 3 by default; 0 runs them in this one):
# most of their time is spent waiting on services, subprocesses and browsers. A test file stays in
# one process, so module fixtures are made once.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/venv.sh"
ensure_venv "$ROOT"
. "$ROOT/deploy/echarts.sh"
ensure_echarts "$ROOT"

# The browser tests drive Debian's chromium (never a browser downloaded by Playwright).
ensure_chromium() {
    chromium=${SENSORS_TEST_CHROMIUM:-/usr/bin/chromium}
    [ -x "$chromium" ] && return 0
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing chromium with apt-get (browser tests)"
    if $sudo apt-get update -q >/dev/null && \
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null && [ -x "$chromium" ]; then
        return 0
    fi
    if [ "${CI:-}" = true ]; then
        echo "error: chromium is missing at $chromium and apt-get could not install it (CI=true)" >&2
        return 1
    fi
    echo "warning: chromium could not be installed: the browser tests will be skipped" >&2
}
ensure_chromium

cd "$ROOT"
workers=${SENSORS_TEST_WORKERS:-3}
if [ "$workers" = 0 ]; then
    exec "$ROOT/.venv/bin/python" -m pytest "$@"
fi
exec "$ROOT/.venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"

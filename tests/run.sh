#!/bin/sh
# Run the test suite: sh tests/run.sh [pytest arguments]
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
exec "$ROOT/.venv/bin/python" -m pytest "$@"

#!/bin/sh
# Known vulnerabilities of the versions pinned in requirements.lock: sh deploy/audit.sh [pip-audit options]
# pip-audit (in var/tools-venv) asks PyPI's advisory data (or OSV: --vulnerability-service osv) about
# each name==version of the lock; nothing is installed. Exit 1: vulnerabilities listed, each with the
# releases that fix it; 0: none known. Where the advisory database cannot be reached (no network, a
# mirror without PyPI's JSON API), it says "vulnerability check skipped" and exits 0: skipped, not passed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/tools.sh"
python3 "$ROOT/deploy/audit.py" probe || exit 0
ensure_tools "$ROOT" || { echo "vulnerability check skipped: pip-audit could not be installed" >&2; exit 0; }
exec "$ROOT/var/tools-venv/bin/python" "$ROOT/deploy/audit.py" run "$@"

#!/bin/sh
# Regenerate requirements.lock from requirements.txt: every package of the install, direct or not,
# pinned with the sha256 hashes of its files (pip-tools). Run it after each change to
# requirements.txt and commit both; deploy/venv.sh installs the lock with --require-hashes.
#   sh deploy/lock.sh            # keeps the pins of the current lock where requirements.txt allows
#   sh deploy/lock.sh --upgrade  # newest versions of the packages requirements.txt does not pin
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/deploy/tools.sh"
ensure_tools "$ROOT"
cd "$ROOT"
# --allow-unsafe pins setuptools too where a package needs it: --require-hashes installs nothing unpinned.
CUSTOM_COMPILE_COMMAND="sh deploy/lock.sh" "$ROOT/var/tools-venv/bin/pip-compile" --quiet \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
    --output-file requirements.lock "$@" requirements.txt
python3 "$ROOT/deploy/lockcheck.py" requirements.txt requirements.lock
echo "requirements.lock regenerated from requirements.txt"

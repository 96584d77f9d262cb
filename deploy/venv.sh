# Sourced by start.sh and tests/run.sh: make sure .venv exists with requirements.lock installed.
# requirements.txt is the list people edit; requirements.lock (sh deploy/lock.sh) pins everything it
# installs with hashes, and pip installs it with --require-hashes: a file changed on the index (or on
# the way) is refused. Re-installs only when the lock changed since the last successful install.

ensure_venv() {
    root=$1
    venv="$root/.venv"
    stamp="$venv/.requirements.sha256"
    python=${PYTHON:-python3}
    # A lock older than requirements.txt would install something else than asked: stop and say so.
    "$python" "$root/deploy/lockcheck.py" "$root/requirements.txt" "$root/requirements.lock" || return 1
    if [ ! -x "$venv/bin/python" ]; then
        echo "creating $venv with $($python --version 2>&1)"
        "$python" -m venv "$venv" || { echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
    fi
    want=$(sha256sum "$root/requirements.lock" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing requirements.lock into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
            -r "$root/requirements.lock" \
            || { echo "error: pip could not install requirements.lock (hashes checked)" >&2; return 1; }
        echo "$want" > "$stamp"
    fi
}

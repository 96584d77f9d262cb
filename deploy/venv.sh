# Sourced by start.sh and tests/run.sh: make sure .venv exists with requirements.txt installed.
# Re-installs only when requirements.txt changed since the last successful install.

ensure_venv() {
    root=$1
    venv="$root/.venv"
    stamp="$venv/.requirements.sha256"
    python=${PYTHON:-python3}
    if [ ! -x "$venv/bin/python" ]; then
        echo "creating $venv with $($python --version 2>&1)"
        "$python" -m venv "$venv" || { echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
    fi
    want=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing requirements.txt into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt" \
            || { echo "error: pip could not install requirements.txt" >&2; return 1; }
        echo "$want" > "$stamp"
    fi
}

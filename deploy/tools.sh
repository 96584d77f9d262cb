# Sourced by deploy/lock.sh and deploy/audit.sh: a venv of their own with deploy/requirements-tools.txt.
# Re-installs only when that file changed since the last successful install.

ensure_tools() {
    root=$1
    tools="$root/var/tools-venv"
    stamp="$tools/.requirements.sha256"
    python=${PYTHON:-python3}
    if [ ! -x "$tools/bin/python" ]; then
        echo "creating $tools" >&2
        "$python" -m venv "$tools" || { echo "error: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
    fi
    want=$(sha256sum "$root/deploy/requirements-tools.txt" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing deploy/requirements-tools.txt into $tools" >&2
        "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/deploy/requirements-tools.txt" \
            || { echo "error: pip could not install deploy/requirements-tools.txt" >&2; return 1; }
        echo "$want" > "$stamp"
    fi
}

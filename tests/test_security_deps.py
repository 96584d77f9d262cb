"""Dependencies: requirements.lock pins every package with hashes and matches requirements.txt;
deploy/venv.sh installs only from it; deploy/audit.sh skips, saying so, without the advisory database."""
from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys

import pytest

from lib.config import REPO_ROOT

LOCK, REQUIREMENTS = REPO_ROOT / "requirements.lock", REPO_ROOT / "requirements.txt"


def load_lockcheck():
    """deploy/lockcheck.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("lockcheck", REPO_ROOT / "deploy" / "lockcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lockcheck = load_lockcheck()


def test_the_lock_matches_requirements_txt():
    """Every name==version of requirements.txt is locked at that version; every locked package has hashes.

    Fails after an edit of requirements.txt until `sh deploy/lock.sh` has regenerated the lock.
    """
    assert lockcheck.differences(REQUIREMENTS.read_text(), LOCK.read_text()) == []
    pinned = lockcheck.requirements(REQUIREMENTS.read_text())
    locked = lockcheck.lock_entries(LOCK.read_text())
    assert len(locked) > len(pinned) >= 20  # the dependencies of the dependencies too
    assert "--find-links" not in LOCK.read_text() and "--index-url" not in LOCK.read_text()


def test_the_uvloop_marker_survives_in_the_lock():
    """uvloop stays off Windows: its platform marker is carried into the lock."""
    line = next(line for line in LOCK.read_text().splitlines() if line.startswith("uvloop=="))
    assert 'sys_platform != "win32"' in line


REQ = "# comment\nFlask==3.1.3\nuvloop==0.23.0; sys_platform != \"win32\"\n"
GOOD_LOCK = """flask==3.1.3 \\
    --hash=sha256:aa
    # via -r requirements.txt
uvloop==0.23.0 ; sys_platform != "win32" \\
    --hash=sha256:bb
    # via -r requirements.txt
werkzeug==3.1.4 \\
    --hash=sha256:cc
    # via flask
"""


@pytest.mark.parametrize("requirements, lock, problem", [
    (REQ, GOOD_LOCK, None),
    (REQ.replace("3.1.3", "3.1.4"), GOOD_LOCK, "flask: requirements.txt pins 3.1.4, requirements.lock has 3.1.3"),
    (REQ + "bcrypt==5.0.0\n", GOOD_LOCK, "bcrypt: in requirements.txt, not in requirements.lock"),
    (REQ.replace("uvloop==0.23.0", "uvloop>=0.23"), GOOD_LOCK, "uvloop: requirements.txt must pin it exactly"),
    ("Flask==3.1.3\n", GOOD_LOCK, "uvloop==0.23.0: in requirements.lock for requirements.txt, which no longer"),
    (REQ, GOOD_LOCK.replace("    --hash=sha256:cc\n", ""), "werkzeug==3.1.4: no hash in requirements.lock"),
], ids=["in-sync", "version-changed", "package-added", "not-pinned", "package-removed", "hash-missing"])
def test_lockcheck_finds_each_kind_of_drift(requirements, lock, problem):
    problems = lockcheck.differences(requirements, lock)
    assert problems == [] if problem is None else any(p.startswith(problem) for p in problems), problems


def test_venv_sh_refuses_a_stale_lock(tmp_path):
    """start.sh and tests/run.sh stop before installing anything when the lock is behind requirements.txt."""
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "lockcheck.py", tmp_path / "deploy")
    (tmp_path / "requirements.txt").write_text(REQ + "bcrypt==5.0.0\n")
    (tmp_path / "requirements.lock").write_text(GOOD_LOCK)
    run = subprocess.run(["sh", "-c", f'. "{REPO_ROOT}/deploy/venv.sh"; ensure_venv "{tmp_path}"'],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "run sh deploy/lock.sh" in run.stderr
    assert not (tmp_path / ".venv").exists()


def test_audit_is_skipped_with_a_message_without_the_advisory_database():
    """No network: the check says it was skipped (exit 0) rather than failing or claiming a pass."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    run = subprocess.run(["sh", str(REPO_ROOT / "deploy" / "audit.sh")], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", "SENSORS_AUDIT_PROBE_URL":
                                          f"http://127.0.0.1:{closed}/pypi/pip/json"})
    assert run.returncode == 0
    assert "vulnerability check skipped: the advisory database" in run.stderr
    assert "no known vulnerabilities" not in run.stdout


FOUND = {"dependencies": [
    {"name": "flask", "version": "3.1.3", "vulns": []},
    {"name": "werkzeug", "version": "3.1.4", "vulns": [
        {"id": "PYSEC-0000-1", "fix_versions": ["3.1.5"], "aliases": ["CVE-0000-1"], "description": ""}]},
    {"name": "uvloop", "skip_reason": "Dependency not found on PyPI and could not be audited: uvloop (0.23.0)"}],
    "fixes": []}
NOTHING = {"dependencies": [{"name": "flask", "skip_reason": "Dependency not found on PyPI: flask (3.1.3)"}],
           "fixes": []}


@pytest.mark.parametrize("report, status, out, err", [
    (FOUND, 1, "werkzeug==3.1.4: PYSEC-0000-1 (CVE-0000-1); fixed in 3.1.5", "not audited: Dependency not found"),
    (NOTHING, 0, "", "vulnerability check skipped: the advisory database had no data for any of the 1"),
    ({"dependencies": [{"name": "flask", "version": "3.1.3", "vulns": []}], "fixes": []}, 0,
     "no known vulnerabilities in 1 audited packages", ""),
], ids=["found", "nothing-audited", "clean"])
def test_audit_reports_what_pip_audit_found(tmp_path, report, status, out, err):
    """deploy/audit.py's summary of pip-audit's JSON: advisories with their fixes, or skipped, never a false pass."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    fake = bin_dir / "pip-audit"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(report)}\nEOF\n")
    fake.chmod(0o755)
    run = subprocess.run([str(bin_dir / "python"), str(REPO_ROOT / "deploy" / "audit.py"), "run"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == status and out in run.stdout and err in run.stderr, run

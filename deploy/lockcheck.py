"""Check that requirements.lock matches requirements.txt: python3 deploy/lockcheck.py [REQUIREMENTS LOCK].

Every `name==version` of requirements.txt must be in the lock with that version and a hash, and
every package the lock installs for requirements.txt must still be listed there. Standard library
only: deploy/venv.sh runs it with the system python before .venv exists. Exit 1 with the
differences when they do not match (rerun `sh deploy/lock.sh`).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def canonical(name: str) -> str:
    """A package name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(text: str) -> dict[str, str | None]:
    """name -> pinned version (None when not pinned with ==) of each requirement line."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        name = match[1] if match else re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0]
        found[canonical(name)] = match[2] if match else None
    return found


def lock_entries(text: str) -> dict[str, tuple[str, bool, bool]]:
    """name -> (version, has a hash, required by requirements.txt directly) of each locked package."""
    entries: dict[str, tuple[str, bool, bool]] = {}
    name = None
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name = canonical(match[1])
            entries[name] = (match[2], False, False)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, _, direct = entries[name]
            entries[name] = (version, True, direct)
        elif name and re.search(r"(#|via)\s+-r requirements\.txt", line):
            version, hashed, _ = entries[name]
            entries[name] = (version, hashed, True)
    return entries


def differences(requirements_text: str, lock_text: str) -> list[str]:
    """What makes the lock stale, one line each; empty when it matches."""
    wanted, locked = requirements(requirements_text), lock_entries(lock_text)
    problems = []
    for name, version in sorted(wanted.items()):
        if name not in locked:
            problems.append(f"{name}: in requirements.txt, not in requirements.lock")
        elif version is None:
            problems.append(f"{name}: requirements.txt must pin it exactly (name==version)")
        elif locked[name][0] != version:
            problems.append(f"{name}: requirements.txt pins {version}, requirements.lock has {locked[name][0]}")
    for name, (version, hashed, direct) in sorted(locked.items()):
        if not hashed:
            problems.append(f"{name}=={version}: no hash in requirements.lock")
        if direct and name not in wanted:
            problems.append(f"{name}=={version}: in requirements.lock for requirements.txt, which no longer lists it")
    return problems


def main(argv: list[str]) -> int:
    """Compare the two files; print what differs."""
    req = Path(argv[0]) if argv else ROOT / "requirements.txt"
    lock = Path(argv[1]) if len(argv) > 1 else ROOT / "requirements.lock"
    if not lock.exists():
        print(f"error: {lock} does not exist: run sh deploy/lock.sh", file=sys.stderr)
        return 1
    problems = differences(req.read_text(), lock.read_text())
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"error: {lock.name} does not match {req.name}: run sh deploy/lock.sh", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

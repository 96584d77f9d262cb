"""Known vulnerabilities of requirements.lock's pins, through pip-audit: run by deploy/audit.sh.

    python3 deploy/audit.py probe          # exit 1 when the advisory data cannot be reached
    TOOLS_PYTHON deploy/audit.py run [pip-audit options]

`run` prints each vulnerable package with its advisories and fixed versions (exit 1), or that
none is known (exit 0). Packages the advisory database has no data for are listed as not
audited; when none could be audited the check says it was skipped (exit 0), never that it passed.
Standard library only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
SKIPPED = "vulnerability check skipped"


def first_pin() -> tuple[str, str]:
    """The lock's first name==version: the release the probe asks about."""
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==", 1)
            return name.strip(), version.split()[0].rstrip("\\;")
    raise SystemExit(f"error: {LOCK} holds no pinned package")


def probe() -> int:
    """0 when PyPI answers for a pinned release (its JSON carries the advisories), else 1 with why."""
    name, version = first_pin()
    url = os.environ.get("SENSORS_AUDIT_PROBE_URL") or f"https://pypi.org/pypi/{name}/{version}/json"
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except (OSError, urllib.error.URLError) as exc:  # HTTPError (404 from a mirror) included
        print(f"{SKIPPED}: the advisory database cannot be reached ({url}: {exc})", file=sys.stderr)
        return 1
    return 0


def run(options: list[str]) -> int:
    """pip-audit on the lock, summarised; see the module docstring for the exit status."""
    pip_audit = Path(sys.executable).parent / "pip-audit"
    done = subprocess.run([str(pip_audit), "--requirement", str(LOCK), "--require-hashes", "--disable-pip",
                           "--progress-spinner", "off", "--format", "json", *options],
                          capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stderr)
        print(f"{SKIPPED}: pip-audit failed (exit {done.returncode})", file=sys.stderr)
        return 0
    packages = report.get("dependencies", [])
    unaudited = [p for p in packages if p.get("skip_reason")]
    vulnerable = [p for p in packages if p.get("vulns")]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            print(f"{package['name']}=={package['version']}: {vuln['id']} "
                  f"({', '.join(vuln.get('aliases') or []) or 'no alias'}); fixed in {fixed}")
    for package in unaudited:
        print(f"not audited: {package['skip_reason']}", file=sys.stderr)
    audited = len(packages) - len(unaudited)
    if vulnerable:
        print(f"{sum(len(p['vulns']) for p in vulnerable)} known vulnerabilities in {len(vulnerable)} of "
              f"{audited} audited packages")
        return 1
    if not audited:
        print(f"{SKIPPED}: the advisory database had no data for any of the {len(packages)} pinned releases",
              file=sys.stderr)
        return 0
    print(f"no known vulnerabilities in {audited} audited packages"
          + (f" ({len(unaudited)} not audited, listed above)" if unaudited else ""))
    return 0


def main(argv: list[str]) -> int:
    """probe | run [pip-audit options]."""
    if argv[:1] == ["probe"]:
        return probe()
    if argv[:1] == ["run"]:
        return run(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

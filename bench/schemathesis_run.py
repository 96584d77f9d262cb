"""schemathesis against the running web app's OpenAPI document: server errors and schema violations.

Run from the repository root:  .venv/bin/python -m bench.schemathesis_run [--minutes 10] [--sqlite]
    [--seed 1] [--max-examples 500] [--workers 1] [--keep-reports DIR]

gunicorn serves the app as start.sh runs it (bench/web_server.py), on a free port of 127.0.0.1,
on a fresh database (MariaDB, or SQLite with --sqlite) with an administrator, its API token and a
device. `schemathesis run` (the CLI, as a child process) then reads /api/v1/openapi.json and runs
all four phases (examples, coverage, fuzzing, and stateful through the document's links) in
positive and negative mode with every check, twice: with the administrator's token (POST
/api/v1/readings with the device's), then anonymously. --minutes is split between the two runs;
fuzzing and stateful testing repeat until it is spent. The table counts per operation the test
cases, 5xx answers, answers that break the document (body schema, status code, content type,
headers) and other failed checks (their codes are listed below it). Exit status 1 when any is
found. tests/test_schemathesis.py runs the same, seeded and bounded to a few seconds, in CI.

What the document cannot say (see CONFIG): DELETE /devices/{id} revokes, so the device stays
readable (marked revoked); and some schema-valid requests are refused with 400 and a reason, by
rules it gives in words only (min below max, which fields a rule kind takes, a device name that is
not blank) or by data (an unknown metric in ?metrics=).
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lib.config import REPO_ROOT

API = "/api/v1"
SCHEMA_CHECKS = frozenset({"response_schema_conformance", "status_code_conformance",
                           "content_type_conformance", "response_headers_conformance"})
UNDECLARED = "(undeclared methods)"
# Every check schemathesis has except max_response_time (timing belongs to bench/web.py).
CHECKS = ("not_a_server_error", *sorted(SCHEMA_CHECKS), "positive_data_acceptance", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "allow_header_conformance", "use_after_free",
          "ensure_resource_availability", "ignored_auth", "object_level_authorization")
CONFIG = """\
phases.stateful.max-steps = 6
output.sanitization.enabled = false  # the reports show the requests as sent (throw-away tokens)

[generation]
database = "none"
# Anonymous: no made-up tokens (ignored_auth still sends wrong ones to operations that need one).
with-security-parameters = {made_up_tokens}

[checks]
{checks}

[[operations]]
# DELETE /devices/{{id}} revokes the device: it stays readable, marked revoked (README, "The web API").
include-path-regex = "^/api/v1/devices/\\\\{{device_id\\\\}}"
checks.use_after_free.enabled = false

[[operations]]
# 400 with a reason for rules the document gives in words only: min below max, which fields a rule
# kind takes, metrics the catalogue must hold (?metrics=), device names of spaces or with control
# characters (lib.storage.add_device).
include-name = ["POST /api/v1/metrics", "POST /api/v1/alerts/rules", "POST /api/v1/devices",
                "GET /api/v1/devices/{{device_id}}/readings", "GET /api/v1/devices/{{device_id}}/readings.csv"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
{auth}"""


@dataclass
class Row:
    """What happened to one operation."""

    cases: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    other: int = 0


@dataclass
class Report:
    """A run's figures, per operation, from schemathesis's NDJSON event stream."""

    rows: dict[str, Row] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)  # check name -> failed cases
    examples: dict[str, str] = field(default_factory=dict)  # check name -> one failing request
    errors: list[str] = field(default_factory=list)  # schemathesis's own errors (not the app's)
    links: str = ""
    seconds: float = 0.0

    def total(self) -> Row:
        """The rows added up."""
        rows = self.rows.values()
        return Row(*(sum(getattr(r, name) for r in rows)
                     for name in ("cases", "server_errors", "schema_violations", "other")))

    def merge(self, other: Report) -> None:
        """Add another run's figures to these."""
        for label, row in other.rows.items():
            mine = self.rows.setdefault(label, Row())
            for name in ("cases", "server_errors", "schema_violations", "other"):
                setattr(mine, name, getattr(mine, name) + getattr(row, name))
        self.failures.update(other.failures)
        for name, example in other.examples.items():
            self.examples.setdefault(name, example)
        self.errors += other.errors
        self.seconds += other.seconds


def config_text(admin_token: str | None, device_token: str | None) -> str:
    """schemathesis.toml: every check on, what the document cannot say, and the tokens to send."""
    checks = "\n".join(f"{name}.enabled = true" for name in CHECKS)
    auth = ""
    if admin_token:
        auth += f'\n[auth.openapi.bearerAuth]\nbearer = "{admin_token}"\n'
    if device_token:  # POST /readings takes a device's token where the others take a user's
        auth += (f'\n[[operations]]\ninclude-name = "POST {API}/readings"\n'
                 f'headers = {{ Authorization = "Bearer {device_token}" }}\n')
    return CONFIG.format(checks=checks, auth=auth, made_up_tokens="true" if admin_token else "false")


def run(base_url: str, folder: Path, *, seed: int, max_examples: int, max_time: float | None = None,
        admin_token: str | None = None, device_token: str | None = None, workers: int = 1,
        phases: str = "examples,coverage,fuzzing,stateful", timeout: float = 3600) -> Report:
    """One `schemathesis run` against base_url's document; its report is kept in `folder`.

    One worker by default: with several, CPython 3.11.7's ast module (used by hypothesis to
    describe filters) fails now and then across threads, an error of the tool, not of the app.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    config.write_text(config_text(admin_token, device_token))
    events = folder / "events.ndjson"
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
               f"{base_url}{API}/openapi.json", "--seed", str(seed), "--max-examples", str(max_examples),
               "--mode", "all", "--phases", phases, "--workers", str(workers), "--no-color",
               "--report", "ndjson", "--report-ndjson-path", str(events), "--output-truncate", "true"]
    if max_time:
        command += ["--max-time", str(max(1, round(max_time)))]
    started = time.monotonic()
    # Its working folder is `folder`: hypothesis and schemathesis keep caches in the current one.
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout)
    (folder / "output.txt").write_text(done.stdout + done.stderr)  # the failures in full, with curl lines
    if not events.exists():
        raise RuntimeError(f"schemathesis failed to run (exit {done.returncode}):\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")
    output = done.stdout + done.stderr
    report = read_events(events, declared_operations(base_url))
    report.seconds = time.monotonic() - started
    links = re.search(r"API Links:\s+(.+)", output)
    report.links = links.group(1).strip() if links else "none"
    if done.returncode not in (0, 1):  # 1: failures were found, which the report holds
        report.errors.append(f"schemathesis exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return report


def declared_operations(base_url: str) -> list[str]:
    """"METHOD path" of every operation in the app's document."""
    with urllib.request.urlopen(f"{base_url}{API}/openapi.json", timeout=30) as response:
        paths = json.load(response)["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in item
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")]


def read_events(path: Path, operations: list[str]) -> Report:
    """The figures of one run from its NDJSON events: every case with its response and checks."""
    report = Report(rows={label: Row() for label in operations})
    for line in path.read_text().splitlines():
        event = json.loads(line)
        error = event.get("NonFatalError") or event.get("FatalError")
        if error:
            report.errors.append(f"{error.get('label', '')}: {json.dumps(error.get('info', error))[:2000]}")
        finished = event.get("ScenarioFinished")
        if finished:
            _add_scenario(report, finished.get("recorder") or {})
    return report


def _add_scenario(report: Report, recorder: dict) -> None:
    """Count the cases of one scenario under their operations (methods the document lacks together)."""
    interactions = recorder.get("interactions", {})
    for case_id, entry in recorder.get("cases", {}).items():
        case = entry["value"]
        label = f"{case['method']} {case['path']}"
        row = report.rows.get(label) or report.rows.setdefault(UNDECLARED, Row())
        row.cases += 1
        response = (interactions.get(case_id) or {}).get("response") or {}
        status = response.get("status_code") or 0
        failed = {c["name"] for c in recorder.get("checks", {}).get(case_id, []) if c["status"] == "failure"}
        if status >= 500 or "not_a_server_error" in failed:
            row.server_errors += 1
        if failed & SCHEMA_CHECKS:
            row.schema_violations += 1
        if failed - SCHEMA_CHECKS - {"not_a_server_error"}:
            row.other += 1
        for name in failed:
            report.failures[name] += 1
            report.examples.setdefault(name, _describe(case, status, response))


def _describe(case: dict, status: int, response: dict) -> str:
    """One failing case in a line: request and answer."""
    query = "&".join(f"{k}={v}" for k, v in (case.get("query") or {}).items())
    body = case.get("body")
    content = response.get("content") or {}
    answer = base64.b64decode(content["$base64"])[:300].decode("utf-8", "replace") if "$base64" in content else ""
    return (f"{case['method']} {case['path']}{'?' + query if query else ''} "
            f"path={case.get('path_parameters')} body={json.dumps(body)[:200] if body is not None else '-'} "
            f"-> {status} {answer}")


def print_table(title: str, report: Report) -> None:
    """Operations, cases, server errors, schema violations, other failed checks."""
    print(f"\n{title} ({report.seconds:.0f} s; links of the document followed: {report.links})")
    print(f"{'operation':<52} {'cases':>7} {'5xx':>5} {'schema':>7} {'other':>6}")
    for label in sorted(report.rows, key=lambda l: (l == UNDECLARED, l.split(" ", 1)[-1], l)):
        row = report.rows[label]
        print(f"{label:<52} {row.cases:>7} {row.server_errors:>5} {row.schema_violations:>7} {row.other:>6}")
    total = report.total()
    operations = sum(1 for label in report.rows if label != UNDECLARED)
    print(f"{f'total: {operations} operations':<52} {total.cases:>7} {total.server_errors:>5} "
          f"{total.schema_violations:>7} {total.other:>6}")
    for name, count in report.failures.most_common():
        print(f"  {name}: {count} cases, e.g. {report.examples[name][:400]}")
    for error in report.errors:
        print(f"  schemathesis error: {error[:400]}")


def clean(report: Report) -> bool:
    """No 5xx, no answer that breaks the document, no other failed check, no error of the tool."""
    total = report.total()
    return not (total.server_errors or total.schema_violations or total.other or report.errors)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.schemathesis_run", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="time for both runs together (default 10)")
    parser.add_argument("--sqlite", action="store_true", help="the embedded database instead of MariaDB")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-examples", type=int, default=500, help="test cases per operation and phase")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep-reports", type=Path, help="keep schemathesis's reports and output here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start gunicorn on a fresh database, run schemathesis with and without a token, print the tables."""
    args = parse_args(argv)
    from bench.ingest import database_settings
    from bench.web_server import Gunicorn
    from lib import storage
    from lib.celery_config import prepare_folders
    from lib.storage import users

    with tempfile.TemporaryDirectory(prefix="schemathesis-") as tmp_name:
        tmp = Path(tmp_name)
        reports = args.keep_reports or tmp / "reports"
        with database_settings(args.sqlite, tmp, "st") as base:
            cfg = base.with_overrides({"rabbitmq": {"host": ""},
                                       "celery": {"embedded_dir": str(tmp / "var" / "celery")},
                                       "other": {"flask_path": str(tmp / "var" / "charts")}})
            prepare_folders(cfg)
            engine = storage.make_engine(cfg.database_url)
            try:
                storage.init_db(engine)
                users.create_user(engine, "fuzz-admin", "fuzz-admin-password", admin=True)
                admin_token = users.create_api_token(engine, "fuzz-admin")[1]
                device_token = storage.add_device(engine, "fuzz-device")[1]
            finally:
                engine.dispose()
            print(f"database: {'SQLite' if args.sqlite else 'MariaDB'}; schemathesis seed {args.seed}, "
                  f"{args.minutes:g} min, at most {args.max_examples} cases per operation and phase")
            gun = Gunicorn(cfg, tmp / "var", tmp / "web.log")
            url = f"http://127.0.0.1:{gun.port}"
            try:
                budget = args.minutes * 60
                authed = run(url, reports / "admin", seed=args.seed, max_examples=args.max_examples,
                             max_time=budget * 0.7, admin_token=admin_token, device_token=device_token,
                             workers=args.workers)
                print_table("With an administrator's API token (and a device token for POST /readings)", authed)
                anonymous = run(url, reports / "anonymous", seed=args.seed, max_examples=args.max_examples,
                                max_time=budget * 0.3, workers=args.workers)
                print_table("Anonymous", anonymous)
            finally:
                gun.close()
            tracebacks = (tmp / "web.log").read_text().count("Traceback")
    both = Report()
    both.merge(authed)
    both.merge(anonymous)
    total = both.total()
    print(f"\nboth runs: {total.cases} cases, {total.server_errors} server errors, "
          f"{total.schema_violations} schema violations, {total.other} other failures, "
          f"{len(both.errors)} schemathesis errors, {tracebacks} tracebacks in the web log")
    if args.keep_reports:
        print(f"reports: {args.keep_reports}")
    return 0 if clean(both) and not tracebacks else 1


if __name__ == "__main__":
    sys.exit(main())

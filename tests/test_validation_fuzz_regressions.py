"""Frames with which the atheris fuzz run (bench/fuzz.py) broke a promise of the parser, kept.

Each runs through bench.fuzz.check_frame: the frame as bytes (HTTP ingest) and as text
(WebSocket), every invariant the fuzz run checks.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench.fuzz import check_frame, outcome
from lib.config import REPO_ROOT

FOUND = {
    # The reason of a bad legacy frame quoted 80 characters of it, 330 once escaped, not at most 40.
    "legacy-reason-quotes-at-most-40-characters":
        b"61\x16" + b"\x00" * 113 + b"\x12\x00\x00\x004\x10,40.10",
    # White space JSON does not have before the JSON: the text (WebSocket) was parsed, the bytes
    # (HTTP) refused, as str.lstrip() strips Unicode spaces and bytes.lstrip() only ASCII ones.
    "no-break-space-before-json": '\u00a0{"values": {"co2": 1}}'.encode(),
    "file-separator-before-json": b'\x1c{"values": {"co2": 1}}',
    "line-separator-before-json": '\u2028{"readings": [{"values": {"co2": 1}}]}'.encode(),
}


@pytest.mark.parametrize("data", list(FOUND.values()), ids=list(FOUND))
def test_a_frame_found_by_fuzzing_keeps_every_promise(data):
    check_frame(data)


@pytest.mark.parametrize("space", [" \t\r\n", "\ufeff ", "\r\n\ufeff\t"], ids=["json-space", "bom", "both"])
def test_json_white_space_and_a_bom_before_the_json_are_still_skipped(space):
    """The fix strips JSON's own white space only: frames with it (and a BOM) parse as before."""
    frame = space + '{"readings": [{"seq": 1, "values": {"co2": 500}}]}'
    for data in (frame, frame.encode()):
        assert [r.seq for r in outcome(data).readings] == [1]


def test_a_short_fuzz_run_breaks_no_promise():
    """bench/fuzz.py runs (atheris installed, lib instrumented) and three seconds find nothing."""
    out = subprocess.run([sys.executable, "-m", "bench.fuzz", "--seconds", "3"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    figures = dict(line.rsplit(None, 1) for line in out.stdout.splitlines()[1:] if line.strip())
    assert figures["crashes"] == "0" and int(figures["executions"]) > 100, out.stdout

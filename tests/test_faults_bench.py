"""bench.faults: the table it prints and its command line (the scenarios run in tests/test_faults_*.py)."""
from __future__ import annotations

import pytest

from bench import faults
from bench.fault_stack import Result


def test_the_table_shows_each_scenario_and_its_problems():
    ok = Result("broker outage", "acks, live push", sent=100, stored=100, recovery_s=4.31,
                figures={"live during outage": 40})
    bad = Result("lossy link", "every reading once", sent=10, stored=8, pending=1, lost=1,
                 problems=["1 lost"])
    text = faults.table([ok, bad])
    assert "| broker outage | acks, live push | 100 | 100 | 0 | 0 | 4.3 s | pass |" in text
    assert "| lossy link | every reading once | 10 | 8 (+1 spooled) | 1 | 0 |  | FAIL |" in text
    assert "broker outage: live during outage 40" in text and "  problem: 1 lost" in text


def test_unknown_scenarios_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        faults.main(["--only", "power-cut"])
    assert exit_info.value.code == 2 and "invalid choice: 'power-cut'" in capsys.readouterr().err

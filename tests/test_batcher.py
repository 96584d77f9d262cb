"""Pi_Sensor.batcher: group commit hands each submitter its own outcome."""
from __future__ import annotations

import asyncio

import pytest

from Pi_Sensor.batcher import GroupCommitter


def run(coro):
    return asyncio.run(coro)


def test_each_submitter_gets_its_own_outcome():
    def write(batch):
        return [ValueError(f"bad {key}") if key == "bad" else {"rows": len(rows)} for key, rows in batch]

    async def main():
        committer = GroupCommitter(write, max_rows=100, writers=1)
        committer.start()
        results = await asyncio.gather(committer.submit("a", [1, 2]), committer.submit("bad", [3]),
                                       committer.submit("b", [4]), return_exceptions=True)
        await committer.close()
        return results

    ok_a, bad, ok_b = run(main())
    assert ok_a == {"rows": 2} and ok_b == {"rows": 1}
    assert isinstance(bad, ValueError) and str(bad) == "bad bad"


def test_a_crashing_write_fails_every_submitter_of_its_batch():
    def write(batch):
        raise RuntimeError("boom\nwith a second line that is not logged")

    async def main():
        committer = GroupCommitter(write, writers=1)
        committer.start()
        results = await asyncio.gather(committer.submit("a", [1]), committer.submit("b", [2]),
                                       return_exceptions=True)
        await committer.close()
        return results

    assert all(isinstance(r, RuntimeError) for r in run(main()))


def test_submit_before_start_is_refused():
    async def main():
        await GroupCommitter(lambda batch: []).submit("a", [1])

    with pytest.raises(RuntimeError, match="not running"):
        run(main())

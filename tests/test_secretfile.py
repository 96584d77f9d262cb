"""lib/secretfile.py: one secret per file, 0600, even when several processes start at once."""
from __future__ import annotations

import multiprocessing
import stat

from lib.secretfile import read_or_create


def test_created_once_with_mode_0600(tmp_path):
    """The first call generates the secret, later calls read the same one back."""
    path = tmp_path / "var" / "secret_key"
    secret = read_or_create(path)
    assert len(secret) >= 40 and read_or_create(path) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary left


def _racer(path, barrier, results) -> None:
    barrier.wait()
    try:
        results.put(read_or_create(path))
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"error: {exc!r}")


def test_processes_starting_at_once_agree(tmp_path):
    """Eight processes racing for a missing file (gunicorn workers without preload) get one secret."""
    context = multiprocessing.get_context("fork")
    for trial in range(15):  # the race window is small: try it several times
        path = tmp_path / f"try{trial}" / "secret_key"
        barrier, results = context.Barrier(8), context.Queue()
        racers = [context.Process(target=_racer, args=(path, barrier, results)) for _ in range(8)]
        for racer in racers:
            racer.start()
        secrets = {results.get(timeout=30) for _ in racers}
        for racer in racers:
            racer.join(30)
        assert len(secrets) == 1 and not next(iter(secrets)).startswith("error"), secrets
        assert [p.name for p in path.parent.iterdir()] == ["secret_key"]

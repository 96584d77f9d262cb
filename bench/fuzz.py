"""Coverage-guided fuzzing (atheris, libFuzzer) of the ingest frame parser, checking its promises.

Run from the repository root:  .venv/bin/python -m bench.fuzz [--seconds 60] [--seed 1] [--keep DIR]

Needs atheris (pinned in requirements.txt; by hand: `.venv/bin/pip install atheris==3.0.0`, a
wheel: no compiler). Each input is a frame as the servers get it: bytes (HTTP ingest) and, when
it is UTF-8, the same text (a WebSocket text frame), parsed by lib.validation.parse_frame, the
function both servers call, and answered with lib.ingest.reply. Beyond "no exception but
FrameError" (check_frame):
- a frame-level reason is non-empty and short; a frame's readings are each accepted xor rejected
  (accepted + rejected = the readings the message holds, seqs echoed as the protocol says);
- an accepted reading has known metrics with finite values in range and a plausible time stamp;
  a rejection has a non-empty, short reason; a legacy frame gives exactly one reading;
- the reply is JSON (orjson writes it, json reads it back the same) and acks the accepted seqs;
- parsing is deterministic, and the bytes and the text of one frame get the same outcome (HTTP
  and WebSocket ingest agree), legacy CSV frames aside (WebSocket text only).
libFuzzer runs in a child process for --seconds, from a small seed corpus and a dictionary of
the protocol's words; the parent prints executions, executions/s, coverage (edges and features),
corpus size and crashes. A crash leaves its input in the artifacts folder (printed), to be kept
as a regression test in tests/test_validation_fuzz_regressions.py. Exit status 1 on a crash.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
LAST_STAMP_MS = NOW_MS - 3  # a previous server stamp of this device, as the servers pass it
MAX_READINGS = 8  # [ingest] max_readings, small so the fuzzer reaches the limit cheaply
MAX_FUTURE_MS = 300_000
MAX_REASON = 200  # characters: reasons quote at most 40 of the client's
SEQ_MIN, SEQ_END = -2 ** 63, 2 ** 64
_LEADING = re.compile(r"^[ \t\n\r]*\ufeff?[ \t\n\r]*")
SEEDS = [
    b'{"readings": [{"seq": 41, "ts": "2023-11-14T22:00:00.000Z", "values": {"co2": 612.3, '
    b'"temperature": 21.4, "humidity": 40.1}}, {"seq": 42, "ts": 1699999999.5, "values": {"co2": 613.0}}]}',
    b'{"seq": 7, "values": {"co2": null, "humidity": 140.0}}',
    b'\xef\xbb\xbf {"readings": [{"seq": 1, "values": {"co2": 1e400}}, {"seq": "x", "values": {}}]}',
    b'{"readings": [{"seq": 1, "values": {"co2": 5, "co2": 6}}, [], 3, {"ts": "2023-11-14T22:00:00"}]}',
    b"612.30,21.40,40.10",
    b'{"readings": [{"seq": 18446744073709551615, "ts": -1, "values": {"pressure": 1}}], "readings": []}',
]
DICTIONARY = ['"readings"', '"values"', '"seq"', '"ts"', '"co2"', '"temperature"', '"humidity"', "null",
              "true", "false", "1e400", "-0", "NaN", "Infinity", '"\\ud800"', '"\\u0000"', "\\ufeff",
              "18446744073709551616", "9223372036854775808", '"2023-11-14T22:13:20Z"', '"+00:00"',
              "1699999999.999", "[[[[[[[[", "{}", "[]", ",", ":"]


def outcome(frame: bytes | str):
    """parse_frame's Parsed, or the FrameError it raised (any other exception propagates)."""
    from lib.catalogue import Catalogue
    from lib.validation import FrameError, Limits, parse_frame

    try:
        return parse_frame(frame, Catalogue(), NOW_MS, Limits(MAX_READINGS, MAX_FUTURE_MS), LAST_STAMP_MS)
    except FrameError as exc:
        return exc


def check_frame(data: bytes) -> None:
    """Every invariant for one input as bytes and, when UTF-8, as text; AssertionError says which failed."""
    result = outcome(data)
    _check(data, result)
    assert _same(result, outcome(data)), f"not deterministic: {data!r}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    as_text = outcome(text)
    _check(text, as_text)
    if not isinstance(as_text, Exception) and as_text.legacy:
        assert isinstance(result, Exception), f"a legacy frame as bytes was parsed: {data!r}"
    else:
        assert _same(result, as_text), (f"bytes and text differ for {data!r}: "
                                        f"{_show(result)} against {_show(as_text)}")


def _check(frame: bytes | str, result) -> None:
    """The invariants of one outcome."""
    if isinstance(result, Exception):
        assert 0 < len(str(result)) <= MAX_REASON, f"frame reason {str(result)!r} for {frame!r}"
        return
    for reading in result.readings:
        _check_reading(frame, reading)
    for rejection in result.rejected:
        assert set(rejection) == {"seq", "error"}, rejection
        assert isinstance(rejection["error"], str) and 0 < len(rejection["error"]) <= MAX_REASON, rejection
        assert rejection["seq"] is None or _is_seq(rejection["seq"]), rejection
    if result.legacy:
        assert len(result.readings) == 1 and not result.rejected, f"legacy frame {frame!r}: {result}"
    else:
        _check_count(frame, result)
    _check_reply(frame, result)


def _check_reading(frame: bytes | str, reading) -> None:
    """An accepted reading: known metrics, finite values in range, a plausible time stamp."""
    from lib.catalogue import Catalogue
    from lib.validation import MIN_TS_MS

    catalogue = Catalogue()
    assert reading.seq is None or _is_seq(reading.seq), f"seq {reading.seq!r} of {frame!r}"
    assert type(reading.ts_ms) is int and MIN_TS_MS <= reading.ts_ms <= NOW_MS + MAX_FUTURE_MS, reading
    assert reading.values, f"a reading without values was accepted from {frame!r}"
    for name, value in reading.values.items():
        metric = catalogue.get(name)
        assert metric is not None and type(value) is float and math.isfinite(value), (name, value, frame)
        assert metric.min_value <= value <= metric.max_value, (name, value, frame)


def _check_count(frame: bytes | str, result) -> None:
    """Each reading of the message accepted xor rejected, with its seq echoed (read with the stdlib)."""
    items = _items(frame)
    if items is None:
        return
    assert len(result.readings) + len(result.rejected) == len(items), (
        f"{len(items)} readings in {frame!r}, {len(result.readings)} accepted + {len(result.rejected)} rejected")
    expected = Counter(_echo(item) for item in items)
    got = Counter([r.seq for r in result.readings] + [r["seq"] for r in result.rejected])
    assert got == expected, f"seqs {dict(got)} for {dict(expected)} in {frame!r}"


def _items(frame: bytes | str) -> list | None:
    """The readings a message holds, read by the stdlib's json (None when it reads no message)."""
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        message = json.loads(_LEADING.sub("", text, count=1))
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    items = message["readings"] if "readings" in message else [message]
    return items if isinstance(items, list) else None


def _echo(item) -> int | None:
    """The seq the protocol echoes for an item: an integer of 64 bits, else null."""
    seq = item.get("seq") if isinstance(item, dict) else None
    return seq if _is_seq(seq) else None


def _is_seq(value) -> bool:
    """An integer orjson can write back."""
    return type(value) is int and SEQ_MIN <= value < SEQ_END


def _check_reply(frame: bytes | str, result) -> None:
    """The reply is JSON that reads back the same, and acks exactly the accepted seqs."""
    import orjson

    from lib.ingest import reply

    body = reply(result)
    assert json.loads(orjson.dumps(body)) == json.loads(json.dumps(body)), f"reply to {frame!r}"
    assert body["ack"] == [r.seq for r in result.readings if r.seq is not None], body


def _same(one, other) -> bool:
    """Two outcomes alike: both frame errors (wording may differ: bytes and characters are counted
    differently), or the same readings and rejections."""
    if isinstance(one, Exception) or isinstance(other, Exception):
        return isinstance(one, Exception) and isinstance(other, Exception)
    return (one.readings, one.rejected, one.legacy) == (other.readings, other.rejected, other.legacy)


def _show(result) -> str:
    """An outcome in a line."""
    if isinstance(result, Exception):
        return f"FrameError({str(result)[:80]!r})"
    return f"{len(result.readings)} accepted, rejected {result.rejected[:3]}"


def child(args: argparse.Namespace) -> None:
    """Run libFuzzer in this process (it exits when done): lib instrumented, then fuzzed."""
    import atheris

    with atheris.instrument_imports(include=["lib"]):
        import lib.catalogue  # noqa: F401
        import lib.ingest  # noqa: F401
        import lib.validation  # noqa: F401

    def one_input(data: bytes) -> None:
        check_frame(data)

    atheris.Setup([sys.argv[0], *args.libfuzzer], one_input)
    atheris.Fuzz()


def libfuzzer_args(args: argparse.Namespace, folder: Path) -> list[str]:
    """libFuzzer's options: time, seed, corpus, dictionary, where crash inputs go."""
    corpus = args.keep / "corpus" if args.keep else folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    dictionary = folder / "frames.dict"
    dictionary.write_text("".join(f"{json.dumps(token)}\n" for token in DICTIONARY))
    artifacts = args.keep or folder
    return [f"-max_total_time={args.seconds}", f"-seed={args.seed}", f"-dict={dictionary}",
            "-max_len=4096", "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048",
            f"-artifact_prefix={artifacts}/", str(corpus)]


def summary(log: str) -> dict[str, str]:
    """Figures of a libFuzzer log: executions, executions/s, coverage, corpus, peak memory."""
    figures = {}
    for name in ("number_of_executed_units", "average_exec_per_sec", "new_units_added", "peak_rss_mb"):
        found = re.search(rf"stat::{name}:\s+(\d+)", log)
        figures[name] = found.group(1) if found else "?"
    status = re.findall(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log)
    if status:
        figures["cov"], figures["ft"], figures["corpus"], figures["corpus_size"] = status[-1]
    figures["crashes"] = str(len(re.findall(r"Test unit written to (\S+)", log)))
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the corpus and crash inputs here (default: a temporary folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fuzz in a child process for --seconds and print its figures."""
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install atheris==3.0.0 (pinned in requirements.txt)")
        return 2
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        folder = Path(tmp)
        command = [sys.executable, "-m", "bench.fuzz", "--child", "--", *libfuzzer_args(args, folder)]
        print(f"fuzzing lib.validation.parse_frame + lib.ingest.reply for {args.seconds} s (seed {args.seed})")
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=args.seconds + 600)
        elapsed = time.monotonic() - started
        log = done.stdout + done.stderr
        if args.keep:
            (args.keep / "libfuzzer.log").write_text(log)
        figures = summary(log)
        print(f"{'seconds':<24} {elapsed:.0f}\n{'executions':<24} {figures['number_of_executed_units']}\n"
              f"{'executions/s':<24} {figures['average_exec_per_sec']}\n"
              f"{'coverage (edges)':<24} {figures.get('cov', '?')}\n"
              f"{'coverage (features)':<24} {figures.get('ft', '?')}\n"
              f"{'corpus':<24} {figures.get('corpus', '?')} inputs, {figures.get('corpus_size', '?')}\n"
              f"{'new inputs':<24} {figures['new_units_added']}\n{'peak RSS MB':<24} {figures['peak_rss_mb']}\n"
              f"{'crashes':<24} {figures['crashes']}")
        if done.returncode != 0:
            tail = "\n".join(line for line in log.splitlines() if not line.startswith("#"))[-4000:]
            print(f"\nlibFuzzer exited {done.returncode}:\n{tail}")
            for path in re.findall(r"Test unit written to (\S+)", log):
                data = Path(path).read_bytes() if Path(path).exists() else b"?"
                print(f"crash input {path}: {data[:500]!r}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

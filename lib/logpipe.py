"""Rotating log writer for start.sh: `python -m lib.logpipe FILE [--max-bytes N] [--backups K]`.

Copies standard input to FILE line by line, rotating FILE to FILE.1 … FILE.K when it would
grow past N bytes (the way logging.handlers.RotatingFileHandler does). It exits at end of
input, i.e. when every process writing to the pipe has exited.
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import signal
import sys
from typing import BinaryIO

from lib import config as config_mod

CHUNK = 64 * 1024  # a line longer than this is written in pieces, so memory stays bounded


def max_bytes(settings: config_mod.Config) -> int:
    """[other] log_max_mb as bytes (fractions allowed); at least one byte."""
    return max(1, int(settings.other.log_max_mb * 1024 * 1024))


def backups(settings: config_mod.Config) -> int:
    """[other] log_backups, the number of rotated files kept."""
    return settings.other.log_backups


def make_handler(path: str, limit: int, keep: int) -> logging.handlers.RotatingFileHandler:
    """A handler appending raw lines to `path`, rotated at `limit` bytes keeping `keep` files."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=limit, backupCount=keep,
                                                   encoding="utf-8", errors="replace")
    handler.terminator = ""  # the lines keep their own newlines
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def copy(source: BinaryIO, handler: logging.Handler) -> int:
    """Write every line of `source` through `handler` until end of input; return the lines."""
    lines = 0
    while chunk := source.readline(CHUNK):
        text = chunk.decode("utf-8", errors="replace")
        # handle() rather than a logger: no level filtering, no propagation. A failed write
        # is reported by handleError and skipped, so the pipe is always drained and the
        # service writing into it never blocks or gets EPIPE because its log cannot be written.
        handler.handle(logging.makeLogRecord({"msg": text, "args": None}))
        lines += 1
    return lines


def main(argv: list[str] | None = None) -> None:
    """Copy standard input to a rotated log file."""
    parser = argparse.ArgumentParser(description="Copy standard input to a rotated log file.")
    parser.add_argument("file")
    parser.add_argument("--max-bytes", type=int, help="rotate above this size (default: [other] log_max_mb)")
    parser.add_argument("--backups", type=int, help="rotated files kept (default: [other] log_backups)")
    args = parser.parse_args(argv)
    if args.max_bytes is None or args.backups is None:
        settings = config_mod.load()
        args.max_bytes = args.max_bytes or max_bytes(settings)
        args.backups = args.backups or backups(settings)
    # The service decides when to stop; this writer only stops at end of input, so a hang-up
    # or Ctrl-C in the terminal that ran start.sh cannot cut the service off from its log.
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    handler = make_handler(args.file, args.max_bytes, args.backups)
    try:
        copy(sys.stdin.buffer, handler)
    finally:
        handler.close()


if __name__ == "__main__":
    main()

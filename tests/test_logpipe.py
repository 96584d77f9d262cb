"""The rotating log writer start.sh puts behind every service."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from lib import config as config_mod
from lib.config import REPO_ROOT
from lib.logpipe import copy, make_handler, max_bytes


def test_lines_are_copied_verbatim(tmp_path):
    """Every line arrives unchanged, including a last line without newline and invalid UTF-8."""
    path = tmp_path / "x.log"
    handler = make_handler(str(path), 1 << 20, 2)
    data = b"first line\nsecond \xff line\nno newline"
    assert copy(io.BytesIO(data), handler) == 3
    handler.close()
    assert path.read_text() == "first line\nsecond \ufffd line\nno newline"


def test_rotates_at_the_limit_and_keeps_the_backups(tmp_path):
    """Files never exceed the limit and only `backups` old files are kept, newest in .1."""
    path = tmp_path / "x.log"
    handler = make_handler(str(path), 100, 2)
    lines = [f"line {i:03d} ".ljust(29, "x") + "\n" for i in range(20)]  # 30 bytes each
    copy(io.BytesIO("".join(lines).encode()), handler)
    handler.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log", "x.log.1", "x.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    kept = "".join((tmp_path / name).read_text() for name in ("x.log.2", "x.log.1", "x.log"))
    assert kept == "".join(lines[-len(kept) // 30:])  # the newest lines, in order


def test_a_long_line_is_written_in_pieces(tmp_path):
    """A line longer than the read chunk is stored whole (in pieces), memory stays bounded."""
    path = tmp_path / "x.log"
    handler = make_handler(str(path), 10 << 20, 1)
    line = b"a" * 200_000 + b"\n"
    assert copy(io.BytesIO(line), handler) > 1
    handler.close()
    assert path.read_bytes() == line


def test_a_failed_write_does_not_stop_the_copy(tmp_path, capsys):
    """When the log cannot be written the input is still drained to the end."""
    path = tmp_path / "x.log"
    handler = make_handler(str(path), 1 << 20, 1)
    handler.stream.close()
    handler.stream = open(os.devnull, "rb")  # read-only: every write now raises
    assert copy(io.BytesIO(b"a\nb\nc\n"), handler) == 3
    assert "Logging error" in capsys.readouterr().err
    handler.stream.close()


@pytest.mark.parametrize("mb, expected", [("10", 10 << 20), ("0.5", 1 << 19), ("0.0000001", 1)])
def test_max_bytes_from_settings(mb, expected):
    """[other] log_max_mb may be a fraction."""
    assert max_bytes(config_mod.load(environ={"SENSORS_OTHER_LOG_MAX_MB": mb})) == expected


@pytest.mark.parametrize("section_key, value", [("LOG_MAX_MB", "0"), ("LOG_MAX_MB", "-1"),
                                                ("LOG_MAX_MB", "big"), ("LOG_BACKUPS", "0")])
def test_bad_settings_name_the_key(section_key, value):
    """A zero, negative or non-numeric size or count is refused with its name."""
    with pytest.raises(ValueError, match=section_key.lower()):  # refused when the settings load
        config_mod.load(environ={f"SENSORS_OTHER_{section_key}": value})


def test_command_reads_a_fifo_until_its_writer_exits(tmp_path):
    """As start.sh uses it: a fifo between service and writer; the writer ends with the service."""
    fifo, log = tmp_path / "svc.fifo", tmp_path / "svc.log"
    os.mkfifo(fifo)
    env = dict(os.environ, SENSORS_OTHER_LOG_MAX_MB="0.0001", SENSORS_OTHER_LOG_BACKUPS="3")
    with open(os.devnull, "w") as null:
        writer = subprocess.Popen(f'exec "{sys.executable}" -m lib.logpipe "{log}" < "{fifo}"',
                                  shell=True, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE)
        service = subprocess.run(f'for i in $(seq 1 200); do echo "message $i"; done > "{fifo}"',
                                 shell=True, stdout=null, timeout=20)
    assert service.returncode == 0
    assert writer.wait(20) == 0, writer.stderr.read()
    writer.stderr.close()
    files = sorted(tmp_path.glob("svc.log*"))
    assert [p.name for p in files] == ["svc.log", "svc.log.1", "svc.log.2", "svc.log.3"]
    assert all(p.stat().st_size <= 104 for p in files)  # 0.0001 MB = 104 bytes
    assert log.read_text().splitlines()[-1] == "message 200"

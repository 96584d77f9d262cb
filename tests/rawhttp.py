"""Reading an HTTP answer off a raw socket, for requests no HTTP client would send."""
from __future__ import annotations

import socket


def read_answer(sock: socket.socket) -> tuple[int | None, bytes]:
    """Status and body of the next answer on the socket (None, b"": closed without one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            assert not data, f"connection closed in the middle of an answer's head: {data!r}"
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of an answer's body"
        body += chunk
    return int(head.split(b" ", 2)[1]), body[:length]

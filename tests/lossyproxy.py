"""A TCP proxy that behaves like a slow, lossy radio link, for clients that must deliver anyway.

TCP never hands an application corrupt or missing bytes, so "5 % loss" cannot mean dropped
bytes here. What a lossy link does to an application is what this proxy reproduces:

- every segment (1,448 bytes at most, as on Ethernet) arrives `delay` seconds late;
- a segment is lost with probability `loss`. TCP resends it after a retransmission timeout
  (RTO: `rto` seconds, doubled each time the resent copy is lost too), and delivers nothing
  behind it meanwhile (in-order delivery): the direction stalls;
- a connection lives `reset_s` seconds on average (0.5 to 1.5 times that, drawn when it opens),
  then ends with a reset, as when a NAT forgets the flow, a mobile link changes cells or Wi-Fi
  roams: both ends see the connection reset, and what was in flight is gone.

Randomness comes from `seed`, so a run's pattern of losses and resets can be told and repeated.
"""
from __future__ import annotations

import heapq
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass

SEGMENT = 1448


@dataclass
class LinkStats:
    """What the link did so far."""

    connections: int = 0
    segments: int = 0
    lost: int = 0
    resets: int = 0
    stalled_s: float = 0.0


class LossyProxy:
    """Forward 127.0.0.1:<port> to a target through a delaying, losing, resetting link."""

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.3, loss: float = 0.05,
                 rto: float = 1.0, reset_s: float = 60.0, seed: int = 1) -> None:
        self.target = (target_host, target_port)
        self.delay, self.loss, self.rto, self.reset_s = delay, loss, rto, reset_s
        self.stats = LinkStats()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._links: set["_Link"] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="lossy-accept").start()

    def close(self) -> None:
        """Stop listening and reset every link."""
        _close(self._listener)
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            link.reset()

    def fate(self) -> float:
        """For one segment: the extra seconds its retransmissions cost (0 when it is not lost)."""
        with self._lock:
            self.stats.segments += 1
            if self._random.random() >= self.loss:
                return 0.0
            self.stats.lost += 1
            extra, timeout = 0.0, self.rto
            while True:  # each resent copy is lost with the same probability
                extra += timeout
                timeout *= 2
                if self._random.random() >= self.loss:
                    break
            self.stats.stalled_s += extra
            return extra

    def lifetime(self) -> float:
        """Seconds a new connection lives before its reset (inf: forever)."""
        with self._lock:
            return self._random.uniform(0.5, 1.5) * self.reset_s if self.reset_s > 0 else float("inf")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            link = _Link(self, client, upstream)
            with self._lock:
                self._links.add(link)
                self.stats.connections += 1
            link.start(self.lifetime())

    def _forget(self, link: "_Link") -> None:
        with self._lock:
            self._links.discard(link)


class _Link:
    """One proxied connection: two directions, each a reader that schedules and a sender that waits."""

    def __init__(self, proxy: LossyProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.sockets = (client, upstream)
        self._closed = threading.Event()

    def start(self, lifetime: float) -> None:
        if lifetime < float("inf"):
            timer = threading.Timer(lifetime, self.reset, kwargs={"counted": True})
            timer.daemon = True
            timer.start()
        client, upstream = self.sockets
        for src, dst in ((client, upstream), (upstream, client)):
            direction = _Direction(self, dst)
            threading.Thread(target=self._read, args=(src, direction), daemon=True).start()
            threading.Thread(target=direction.run, daemon=True).start()

    def _read(self, src: socket.socket, direction: "_Direction") -> None:
        try:
            while data := src.recv(65536):
                for start in range(0, len(data), SEGMENT):
                    direction.push(data[start:start + SEGMENT], self.proxy.fate())
        except OSError:
            pass
        direction.push(b"", 0.0)  # the peer closed: close the other side once the data is out

    def reset(self, counted: bool = False) -> None:
        """End the connection with a reset on both sides (data in flight is lost)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if counted:
            with self.proxy._lock:
                self.proxy.stats.resets += 1
        for sock in self.sockets:
            try:
                # Linger 0: closing sends a reset instead of a FIN. SHUT_RD wakes the thread
                # blocked in recv() without telling the peer anything; the reset goes out when
                # that thread lets go of the socket.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            sock.close()
        self.proxy._forget(self)

    def finish(self) -> None:
        """Close both sides in order (one side closed the connection)."""
        if not self._closed.is_set():
            self._closed.set()
            for sock in self.sockets:
                _close(sock)
            self.proxy._forget(self)


class _Direction:
    """Segments of one direction, delivered in order at their due times."""

    def __init__(self, link: _Link, dst: socket.socket) -> None:
        self.link, self.dst = link, dst
        self._due: list[tuple[float, int, bytes]] = []
        self._last_due = 0.0
        self._count = 0
        self._ready = threading.Condition()

    def push(self, data: bytes, extra: float) -> None:
        """Schedule a segment `delay + extra` from now, never before the one in front of it."""
        with self._ready:
            due = max(time.monotonic() + self.link.proxy.delay + extra, self._last_due)
            self._last_due = due
            self._count += 1
            heapq.heappush(self._due, (due, self._count, data))
            self._ready.notify()

    def run(self) -> None:
        while not self.link._closed.is_set():
            with self._ready:
                while not self._due:
                    self._ready.wait(0.5)
                    if self.link._closed.is_set():
                        return
                due, _, data = self._due[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._ready.wait(min(wait, 0.5))
                    continue
                heapq.heappop(self._due)
            if not data:
                self.link.finish()
                return
            try:
                self.dst.sendall(data)
            except OSError:
                self.link.reset()
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

"""HTTP probes of the fault scenarios: an API poller that records every answer, a device posting readings."""
from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

from lib import storage


@dataclass
class Answer:
    """One API answer: when, what, and whether its body was a JSON error."""

    at: float  # monotonic
    path: str
    status: int
    json_error: bool  # the body is a JSON object saying why (see json_error)
    note: str = ""


def get(port: int, path: str, method: str = "GET", body: bytes | None = None,
        headers: dict | None = None, timeout: float = 15) -> tuple[int, str, bytes]:
    """One request on a new connection: status, content type and the whole body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def json_error(content_type: str, body: bytes) -> bool:
    """Whether a body is a JSON object saying what went wrong: "error", or the health check's "status"."""
    if not content_type.startswith("application/json"):
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and ("error" in answer or "status" in answer)


class ApiPoller:
    """Requests `paths` round and round in a thread, keeping every answer (a connection error is status 0)."""

    def __init__(self, port: int, paths: list[str], every: float = 0.05) -> None:
        self.port, self.paths, self.every = port, paths, every
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.paths:
                try:
                    status, ctype, body = get(self.port, path)
                    note = "" if status < 500 else body[:200].decode(errors="replace")
                    self.answers.append(Answer(time.monotonic(), path, status, json_error(ctype, body), note))
                except (OSError, http.client.HTTPException) as exc:
                    self.answers.append(Answer(time.monotonic(), path, 0, False, repr(exc)))
                if self._stop.wait(self.every):
                    return

    def all_ok_since(self, moment: float) -> bool:
        """Whether every path has answered 200 after `moment`."""
        return {a.path for a in self.answers if a.at >= moment and a.status == 200} >= set(self.paths)

    def missing_since(self, moment: float) -> str:
        """The paths without a 200 after `moment`, each with its last answer (for a failure's message)."""
        ok = {a.path for a in self.answers if a.at >= moment and a.status == 200}
        last = {a.path: a for a in self.answers}
        return "; ".join(f"{path}: last {last[path].status} {last[path].note[:120]}" if path in last
                         else f"{path}: never answered" for path in self.paths if path not in ok)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class HttpDevice:
    """A device on HTTP ingest (POST /api/v1/readings), 5 readings every `every` s, in a thread.

    Like the Pi client it keeps unacked readings and sends them again; a 503 must be JSON
    saying why, with nothing acked.
    """

    port: int
    token: str
    every: float = 0.1
    generated: dict[int, float] = field(default_factory=dict)  # ts -> co2
    backlog: list[dict] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._seq = self._last_ts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._new_readings(5)
            self._post()

    def _new_readings(self, count: int) -> None:
        start = max(storage.now_ms(), self._last_ts + 1)
        self._last_ts = start + count - 1
        for i in range(count):
            co2 = 400.0 + self._seq % 500
            self.generated[start + i] = co2
            self.backlog.append({"seq": self._seq, "ts_ms": start + i, "co2": co2})
            self._seq += 1

    def _post(self) -> None:
        frame = {"readings": [{"seq": r["seq"], "ts": r["ts_ms"] / 1000, "values": {"co2": r["co2"]}}
                              for r in self.backlog[:500]]}
        try:
            status, ctype, body = get(self.port, "/api/v1/readings", "POST", json.dumps(frame).encode(),
                                      {"Authorization": f"Bearer {self.token}",
                                       "Content-Type": "application/json"})
        except (OSError, http.client.HTTPException) as exc:
            self.statuses[0] = self.statuses.get(0, 0) + 1
            return self._problem(f"POST /api/v1/readings: {exc!r}")
        self.statuses[status] = self.statuses.get(status, 0) + 1
        reply = json.loads(body) if ctype.startswith("application/json") else {}
        if status == 200:
            done = set(reply.get("ack", [])) | {r.get("seq") for r in reply.get("rejected", [])}
            self.backlog = [r for r in self.backlog if r["seq"] not in done]
        elif status != 503 or reply.get("ack") != [] or "error" not in reply:
            self._problem(f"POST /api/v1/readings answered {status}: {body[:200]!r}")

    def _problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)

    def drain(self, timeout: float) -> None:
        """Stop making readings; send the backlog until it is empty (TimeoutError after `timeout`)."""
        self._stop.set()
        self._thread.join(30)
        deadline = time.monotonic() + timeout
        while self.backlog:
            if time.monotonic() > deadline:
                raise TimeoutError(f"HTTP device: {len(self.backlog)} readings still unacked")
            self._post()
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

"""Load of the soak bench, run in child processes: devices sending on a schedule, /live viewers.

A generator process holds a few hundred device connections and sends one reading per message
on a fixed open-loop schedule (one loop per process, frames formatted from pre-encoded parts).
Each device keeps a journal of the timestamps the server acked. A viewer process holds the
/live WebSockets. Both report per-window figures to the parent through a queue.
"""
from __future__ import annotations

import asyncio
import signal
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import connect

from bench import loadgen

# One reading per message; seq, ts (epoch seconds to the ms) and values are filled in per send.
FRAME = b'{"readings":[{"seq":%d,"ts":%d.%03d,"values":%b}]}'
VALUES_JSON = [orjson.dumps(v) for v in loadgen.VALUES]
ACK_BUCKETS_PER_S = 10_000  # ack latency histogram: 0.1 ms buckets
YIELD_EVERY = 32  # sends in a row (catching up) before letting the ack receivers run
TICK_S = 0.002  # the schedule wakes at most this often and sends what fell due meanwhile: fewer timers
DRAIN_S = 30.0  # how long to wait for the last acks after sending stops
READY_WAIT_S = 10.0  # a viewer waits this long for the server's ready message (lib.live.READY)


@dataclass
class Plan:
    """What one child process does: its devices (id, token) or viewers, its share of the rate."""

    url: str
    seconds: float
    window: float
    devices: list[tuple[int, str]] = field(default_factory=list)
    rate: float = 0.0
    viewers: int = 0


@dataclass
class Window:
    """Figures of one window, summed by the parent over the processes."""

    sent: int = 0
    acked: int = 0
    ack_hist: Counter = field(default_factory=Counter)  # latency in ACK_BUCKETS_PER_S units
    behind_s: float = 0.0  # worst delay of a send behind its schedule
    live_readings: int = 0
    live_hist: Counter = field(default_factory=Counter)  # latency in whole ms
    errors: list[str] = field(default_factory=list)  # the first MAX_ERRORS of the window
    error_count: int = 0


class Reporter:
    """The current window; flush() hands it to the parent (tagged with its index) and starts the next."""

    def __init__(self, queue, name: str) -> None:
        self.queue, self.name, self.index, self.now = queue, name, 0, Window()

    def flush(self, final: bool = False) -> None:
        """Hand the window to the parent and start the next one."""
        self.queue.put(("window", self.name, self.index, self.now, final))
        self.index, self.now = self.index + 1, Window()

    def error(self, message: str) -> None:
        """Count a problem; keep the text of the window's first MAX_ERRORS."""
        self.now.error_count += 1
        if len(self.now.errors) < loadgen.MAX_ERRORS:
            self.now.errors.append(message)


async def flusher(reporter: Reporter, start: float, window: float, count: int) -> None:
    """Flush a window at each boundary: start + window, start + 2 window ... (count of them)."""
    for k in range(1, count + 1):
        await asyncio.sleep(start + k * window - time.monotonic())
        reporter.flush()


class DeviceState:
    """A device's next seq and timestamp, its readings in flight and its journal of acked ts."""

    __slots__ = ("id", "ws", "seq", "last_ms", "inflight", "journal", "alive")

    def __init__(self, device_id: int, ws) -> None:
        self.id, self.ws, self.seq, self.last_ms = device_id, ws, 0, 0
        self.inflight: dict[int, tuple[float, int]] = {}  # seq -> (monotonic send time, ts ms)
        self.journal = array("q")
        self.alive = True

    def frame(self, now_ms: int) -> tuple[int, int, bytes]:
        """(seq, ts ms, frame) of the next reading; ts is now, or 1 ms after the last one."""
        seq, ms = self.seq, max(now_ms, self.last_ms + 1)
        self.seq, self.last_ms = seq + 1, ms
        return seq, ms, FRAME % (seq, ms // 1000, ms % 1000, VALUES_JSON[seq % 100])


async def receive_acks(dev: DeviceState, rep: Reporter, counts: Counter) -> None:
    """Match acks to readings in flight: latency, journal; anything else is counted as an error."""
    try:
        async for raw in dev.ws:
            now = time.monotonic()
            reply = orjson.loads(raw)
            if reply.get("rejected") or reply.get("retry") or "error" in reply:
                counts["bad replies"] += 1  # rejected, held back by the rate limit, or an error
                rep.error(f"device {dev.id}: {str(reply)[:200]}")
            for seq in reply.get("ack") or ():
                sent = dev.inflight.pop(seq, None)
                if sent is None:
                    counts["unexpected acks"] += 1  # acked twice, or never sent
                    continue
                dev.journal.append(sent[1])
                rep.now.acked += 1
                rep.now.ack_hist[int((now - sent[0]) * ACK_BUCKETS_PER_S)] += 1
    except Exception as exc:  # a dropped connection ends this device; the bench reports it
        rep.error(f"device {dev.id} receiving: {exc!r}")
    finally:
        lose(dev, counts)


def lose(dev: DeviceState, counts: Counter) -> None:
    """Mark a device's connection gone (once)."""
    if dev.alive:
        dev.alive = False
        counts["connections lost"] += 1


async def send_schedule(devs: list[DeviceState], rate: float, start: float, end: float,
                        rep: Reporter, counts: Counter) -> None:
    """Send reading k at start + k / rate to device k mod n, never waiting for acks."""
    k, n, burst = 0, len(devs), 0
    while (due := start + k / rate) < end:
        dev = devs[k % n]
        if not dev.alive:
            k += 1
            counts["not sent (connection gone)"] += 1
            if counts["connections lost"] == n:
                return  # nothing left to send on
            continue
        now = time.monotonic()
        if due > now:
            burst = 0
            await asyncio.sleep(max(due - now, TICK_S))
            continue
        k += 1
        rep.now.behind_s = max(rep.now.behind_s, now - due)
        seq, ms, frame = dev.frame(int(time.time() * 1000))
        dev.inflight[seq] = (time.monotonic(), ms)
        try:
            await dev.ws.send(frame, text=True)
        except Exception as exc:
            lose(dev, counts)
            rep.error(f"device {dev.id} sending: {exc!r}")
        rep.now.sent += 1
        burst += 1
        if burst % YIELD_EVERY == 0:
            await asyncio.sleep(0)


async def generator(plan: Plan, queue, go) -> None:
    """Open the devices' connections, wait for the start time, run the schedule, drain, report."""
    devices = [loadgen.Device(i, token, 0) for i, token in plan.devices]
    conns = await loadgen.open_all(plan.url, devices)
    devs = [DeviceState(d.id, ws) for d, ws in zip(devices, conns)]
    rep, counts = Reporter(queue, "generator"), Counter()
    queue.put(("ready", "generator", f"{len(devs)} device connections open"))
    start = await asyncio.to_thread(go.get)
    end = start + plan.seconds
    windows = round(plan.seconds / plan.window)
    receivers = [asyncio.create_task(receive_acks(d, rep, counts)) for d in devs]
    flush = asyncio.create_task(flusher(rep, start, plan.window, windows))
    await send_schedule(devs, plan.rate, start, end, rep, counts)
    give_up = time.monotonic() + DRAIN_S
    while any(d.inflight and d.alive for d in devs) and time.monotonic() < give_up:
        await asyncio.sleep(0.05)
    await flush
    counts["unanswered"] = sum(len(d.inflight) for d in devs)
    lost = counts["connections lost"]
    await loadgen.close_all(conns)
    for task in receivers:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    counts["connections lost"] = lost  # not the closes of the end
    rep.flush(final=True)
    queue.put(("journal", {d.id: d.journal for d in devs}, dict(counts)))


async def receive_live(ws, rep: Reporter) -> None:
    """Latency of each reading pushed to a viewer: its arrival minus its ts (both wall clock, ms)."""
    try:
        async for raw in ws:
            now_ms = time.time() * 1000
            readings = orjson.loads(raw)["readings"]
            rep.now.live_readings += len(readings)
            hist = rep.now.live_hist
            for reading in readings:
                hist[int(now_ms - reading["ts"])] += 1
    except Exception as exc:  # a viewer dropped by the server (close 1013) is a finding
        rep.error(f"viewer: {exc!r}")


async def told_ready(ws, timeout: float = READY_WAIT_S) -> bool:
    """Wait for the server's ready message: readings committed from then on reach this viewer."""
    deadline = time.monotonic() + timeout
    try:
        while not orjson.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic())).get("ready"):
            pass
    except TimeoutError:
        return False
    return True


async def viewers(plan: Plan, queue, go) -> None:
    """Hold plan.viewers /live connections from before the start until told to stop."""
    conns = [await connect(plan.url, compression=None, max_size=None, open_timeout=60)
             for _ in range(plan.viewers)]
    rep = Reporter(queue, "viewers")
    told = await asyncio.gather(*(told_ready(ws) for ws in conns))
    queue.put(("ready", "viewers", f"{len(conns)} /live connections open, {sum(told)} told ready"))
    start = await asyncio.to_thread(go.get)
    receivers = [asyncio.create_task(receive_live(ws, rep)) for ws in conns]
    await flusher(rep, start, plan.window, round(plan.seconds / plan.window))
    await asyncio.to_thread(go.get)  # the parent says stop once the devices are drained
    await loadgen.close_all(conns)
    for task in receivers:
        task.cancel()
    rep.flush(final=True)


def child_main(kind: str, plan: Plan, queue, go) -> None:
    """Entry point of a child process (multiprocessing)."""
    from bench.ingest import raise_nofile, run_async
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's clean-up handler is not ours
    raise_nofile(2 * len(plan.devices) + 256)
    try:
        run_async((generator if kind == "generator" else viewers)(plan, queue, go))
    except BaseException as exc:  # the parent must hear of it rather than wait forever
        queue.put(("failed", kind, repr(exc)))
        raise

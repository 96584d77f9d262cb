"""The parent's side of the soak's load: the generator and viewer processes, their reports, and the
table's rows printed as they complete."""
from __future__ import annotations

import multiprocessing
import queue as queue_mod
import time

from bench import loadgen, soak_report as report
from bench.soak_load import Plan, Window, child_main
from bench.soak_stack import Sampler
from lib import live

STALL_S = 90.0  # no report from the load processes for this long ends the run as failed
TICKS_PER_ROW = 6  # the processes report every row / 6 (10 s in a 10-minute run): the plot's points


class Load:
    """The generator and viewer processes, and what they report."""

    def __init__(self, args, server: loadgen.Server, devices, secret: str) -> None:
        ctx = multiprocessing.get_context("fork")  # no imports to repeat; this process has no threads now
        self.results = ctx.Queue()
        self.args, self.procs, self.gos = args, [], []
        port = server.url.rsplit(":", 1)[1].split("/")[0]
        view_url = f"ws://127.0.0.1:{port}{live.PATH}?token={live.sign_token(secret)}"
        share = [devices[i::args.generators] for i in range(args.generators)]
        plans = [("generator", Plan(server.url, args.seconds, args.tick,
                                    [(d.id, d.token) for d in part], args.rate * len(part) / len(devices)))
                 for part in share]
        if args.viewers:
            plans.append(("viewers", Plan(view_url, args.seconds, args.tick, viewers=args.viewers)))
        for kind, plan in plans:
            go = ctx.Queue()
            proc = ctx.Process(target=child_main, args=(kind, plan, self.results, go), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.gos.append(go)
        self.windows = [Window() for _ in range(args.ticks + 1)]  # the last: the drain after the run
        self.reported = [0] * (args.ticks + 1)
        self.journals: dict[int, object] = {}
        self.counts: dict[str, int] = {}
        self.finals = 0

    def get(self, timeout: float = STALL_S):
        """The next report; a failed process or silence for `timeout` s raises."""
        try:
            message = self.results.get(timeout=timeout)
        except queue_mod.Empty:
            raise RuntimeError(f"no report from the load processes for {timeout:.0f} s") from None
        if message[0] == "failed":
            raise RuntimeError(f"{message[1]} process failed: {message[2]}")
        return message

    def wait_ready(self) -> None:
        """Wait until every process has its connections open (viewers: told ready)."""
        for _ in self.procs:
            _, name, detail = self.get(300)
            print(f"  {name}: {detail}")

    def go(self, start: float) -> None:
        """Tell every process when the run starts (monotonic clock, shared by the processes)."""
        for go in self.gos:
            go.put(start)

    def receive(self) -> tuple[int, bool] | None:
        """Take one report; returns (tick, complete) for windows, None for a journal."""
        message = self.get()
        if message[0] == "journal":
            self.journals.update(message[1])
            for key, value in message[2].items():
                self.counts[key] = self.counts.get(key, 0) + value
            return None
        _, name, index, window, final = message
        index = min(index, len(self.windows) - 1)
        report.merge(self.windows[index], window)
        self.reported[index] += 1
        self.finals += final
        return index, self.reported[index] == len(self.procs)

    def stop_viewers(self) -> None:
        """Tell the viewer process to report its last window and close."""
        if self.args.viewers:
            self.gos[-1].put(0.0)

    def close(self) -> None:
        """Wait for the processes to end once they reported everything; else end them now."""
        done = self.finals == len(self.procs)
        for proc in self.procs:
            proc.join(10 if done else 0)
            if proc.is_alive():
                proc.kill()
                proc.join(10)


def run_load(args, load: Load, sampler: Sampler) -> float:
    """Start the load, print a row per completed row of ticks, drain; return the start time."""
    start = time.monotonic() + 0.5
    load.go(start)
    sampler.start()
    print(report.HEADER)
    printed = journals = 0
    while journals < args.generators or load.finals < args.generators:
        if load.receive() is None:
            journals += 1
        while printed < args.ticks:
            last = min(printed + TICKS_PER_ROW, args.ticks)
            if any(load.reported[i] < len(load.procs) for i in range(printed, last)):
                break
            row = report.rows_of(load.windows[:last], sampler.samples, start, args.tick, TICKS_PER_ROW)[-1]
            print(report.row_line(row, report.cpu_percent(row.samples)), flush=True)
            printed = last
    time.sleep(0.5)  # the last readings' live messages
    load.stop_viewers()
    while load.finals < len(load.procs):
        load.receive()
    return start

"""Wall-clock timeline of one `cwm-ingest folder` command: where its seconds go, per thread.

    .venv/bin/python bench/ingest_timeline.py --src DIR [--workers N] [--reps 1] [-- extra args]

Runs the command as a fresh process (`python bench/ingest_timeline.py --child ...`), which wraps
the ingest's phases (probe, plan, cluster start, each decode and shard task, layout, index,
cluster close) to record when each started and ended (wall clock, relative to the parent's spawn
of the process), on which thread, and the CPU time of that thread meanwhile (`time.thread_time`).
Prints the phases in order, each task's [start, end] per worker thread, the idle time of the
workers between the first decode task's start and the last one's end, and the process's own
start (interpreter + imports) and exit (the command's `main`, so its exit path too). Nothing of
this runs in the real command.
"""

from __future__ import annotations

import time

T_START = time.time()       # first thing the child does: the interpreter is up

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

EVENTS: list[dict] = []


def _wrap(owner, name: str, label: str | None = None):
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0, c0 = time.time(), time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            detail = ""
            if name in ("_decode_task", "_shard_task"):
                detail = getattr(args[0], "name", "")
            EVENTS.append({"what": label or name, "detail": detail,
                           "thread": threading.current_thread().name,
                           "t0": t0, "t1": time.time(), "cpu": time.thread_time() - c0})
    # dask pickles task functions by reference: the wrapper must be found under its own name
    wrapper.__module__, wrapper.__qualname__ = inner.__module__, inner.__qualname__
    setattr(owner, name, wrapper)


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of every live thread of this process (/proc, clock ticks)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        out[f"{names.get(int(task.name), (task / 'comm').read_text().strip())}"
            f"[{task.name}]"] = cpu
    return out


def child(argv: list[str], spawned: float, dump: Path) -> None:
    import cwm.cli.ingest as cli
    t_imported = time.time()
    import cwm.ingest.distribute as distribute
    import cwm.ingest.run as run
    import cwm.ingest.writer as writer

    for name in ("_probe", "make_plan", "layout", "collect", "write_index", "_decode_task",
                 "_shard_task", "_summary"):
        _wrap(run, name)
    _wrap(writer, "decode_input")
    for name in ("start", "map", "close"):
        _wrap(distribute.Executor, name, f"Executor.{name}")
    cpu_at_close = {}
    close = distribute.Executor.close

    def close_and_count(self):
        cpu_at_close.update(_thread_cpu())
        close(self)
    distribute.Executor.close = close_and_count

    def save() -> None:            # at exit, which the command's own `main` takes
        dump.write_text(json.dumps({"spawned": spawned, "started": T_START,
                                    "imported": t_imported, "ended": time.time(),
                                    "events": EVENTS, "thread_cpu": cpu_at_close}))
    atexit.register(save)
    sys.argv = ["cwm-ingest", *argv]
    cli.main()


def report(data: dict, exited: float) -> None:
    t0 = data["spawned"]
    rel = lambda t: t - t0   # noqa: E731
    print(f"  interpreter up        {rel(data['started']):6.2f} s")
    print(f"  cwm.cli.ingest import {rel(data['imported']):6.2f} s")
    events = sorted(data["events"], key=lambda e: e["t0"])
    tasks = [e for e in events if e["what"] in ("_decode_task", "_shard_task", "decode_input")]
    for e in events:
        if e in tasks:
            continue
        print(f"  {e['what']:<22}{rel(e['t0']):6.2f} -> {rel(e['t1']):6.2f} s "
              f"({e['t1'] - e['t0']:.2f} s wall, {e['cpu']:.2f} CPU-s) [{e['thread']}]")
    by_thread: dict[str, list] = {}
    for e in tasks:
        by_thread.setdefault(e["thread"], []).append(e)
    for thread, es in sorted(by_thread.items()):
        print(f"  thread {thread}:")
        for e in es:
            print(f"    {e['what']:<14}{e['detail']:<20}{rel(e['t0']):6.2f} -> {rel(e['t1']):6.2f}"
                  f" s ({e['t1'] - e['t0']:.2f} s wall, {e['cpu']:.2f} CPU-s)")
    decodes = [e for e in tasks if e["what"] == "_decode_task"]
    if decodes:
        lo, hi = min(e["t0"] for e in decodes), max(e["t1"] for e in decodes)
        for thread, es in sorted(by_thread.items()):
            busy = sum(e["t1"] - e["t0"] for e in es if e["what"] == "_decode_task")
            print(f"  decode phase {hi - lo:.2f} s: {thread} busy {busy:.2f} s, "
                  f"idle {hi - lo - busy:.2f} s")
    print(f"  at exit               {rel(data['ended']):6.2f} s")
    print(f"  process exited        {exited - t0:6.2f} s")
    cpu = data["thread_cpu"]
    print("  thread CPU at close: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                               sorted(cpu.items(), key=lambda kv: -kv[1])
                                               if v >= 0.01))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("SPAWNED", "DUMP"))
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.child:
        child(extra, float(args.child[0]), Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            out = Path(tmp) / f"out{rep}"
            cmd = ["folder", "--src", str(args.src), "--out", str(out), "--no-progress", *extra]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            dump = Path(tmp) / f"dump{rep}.json"
            print(f"rep {rep + 1}, load {os.getloadavg()[0]:.1f}: cwm-ingest {' '.join(cmd)}")
            spawned = time.time()
            subprocess.run([sys.executable, __file__, "--child", str(spawned), str(dump), "--",
                            *cmd], check=True, stdout=subprocess.DEVNULL)
            report(json.loads(dump.read_text()), time.time())


if __name__ == "__main__":
    main()

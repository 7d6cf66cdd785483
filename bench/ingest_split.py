"""Where the extra CPU of a split long video goes (issue 14): one 10-minute 320x240 video decoded
whole against the same video cut into ranges, sequentially, on 2 threads and on 2 processes.

    .venv/bin/python bench/ingest_split.py [--reps 3] [--work /tmp/cwm-bench-ingest]
                                           [--level decode|task] [--ranges 8,2]

Per repetition, interleaved, in this process (inputs made by `ingest_scale.py`):

  whole        `decode_file` of the whole video in one thread
  N seq        N ranges as the planner cuts them (`SegmentRange`s of equal segment counts, the
               last open; for 2 workers the plan cut 8 before issue 14's third pass, 2 since)
               one after the other in one thread: the cost of the ranges themselves (per-range
               open, demux pass, seek, keyframe pre-roll)
  N thr        the same N ranges on 2 threads (range i on thread i % 2): what the embedded
               cluster's worker threads add (GIL hand-offs, the allocator, the shared caches)
  N proc       the same on 2 forked processes: the same split without a shared GIL
  demux        one demux-only pass over the file (what a range after the first pays first)

`--level task` runs `write_part` (decode, segments, npy, tar into a temporary part) instead of
`decode_file`, one task per range, as the cluster does. CPU seconds: process CPU
(`getrusage`, RUSAGE_CHILDREN for the forked processes), voluntary/involuntary context
switches of the threads for `thr`. Medians of the per-repetition figures, and each against
`whole` of the same repetition.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest_scale import looped  # noqa: E402

import av  # noqa: E402

from cwm.ingest.config import FrameOptions  # noqa: E402
from cwm.ingest.decode import SegmentRange, _packet_times, _stream_setup, decode_file  # noqa: E402
from cwm.ingest.plan import PlannedVideo, Task, Unit  # noqa: E402
from cwm.ingest.sources.base import VideoInput  # noqa: E402
from cwm.ingest.writer import write_part  # noqa: E402


def usage(who=resource.RUSAGE_SELF) -> tuple[float, int]:
    """(CPU s, minor page faults)"""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_minflt


def cut(segments: int, n: int) -> list[SegmentRange]:
    cuts = [round(segments * j / n) for j in range(n + 1)]
    return [SegmentRange(cuts[j], cuts[j + 1] if j + 1 < n else None) for j in range(n)]


class Work:
    """One range's job at the chosen level; returns the source frames it decoded."""

    def __init__(self, path: Path, level: str, parts: Path):
        self.path, self.level, self.parts, self.opts = path, level, parts, FrameOptions()
        self.video = PlannedVideo(path.stem, VideoInput(video_id=path.stem, path=path.name))

    def __call__(self, segments: SegmentRange) -> int:
        if self.level == "decode":
            return decode_file(self.path, self.opts, segments).decoded
        unit = Unit(self.video, segments, 1.0)
        task = Task(name=f"p{segments.first}-{threading.get_native_id()}",
                    root=str(self.path.parent), units=(unit,))
        return write_part(task, self.opts, self.parts, "folder")["decoded"]


def measured(fn, who=resource.RUSAGE_SELF) -> dict:
    (c0, f0), t0 = usage(who), time.perf_counter()
    decoded = fn()
    c1, f1 = usage(who)
    return {"cpu": c1 - c0, "wall": time.perf_counter() - t0, "faults": f1 - f0,
            "decoded": decoded}


def sequential(work: Work, ranges: list[SegmentRange]) -> dict:
    return measured(lambda: sum(work(r) for r in ranges))


def threads(work: Work, ranges: list[SegmentRange], n: int = 2) -> dict:
    decoded = [0] * n
    switches = [0] * n

    def worker(i: int) -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        decoded[i] = sum(work(r) for r in ranges[i::n])
        after = resource.getrusage(resource.RUSAGE_THREAD)
        switches[i] = (after.ru_nvcsw - before.ru_nvcsw, after.ru_nivcsw - before.ru_nivcsw)

    def run() -> int:
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return sum(decoded)

    return {**measured(run), "switches": [list(s) for s in switches]}


def processes(work: Work, ranges: list[SegmentRange], n: int = 2) -> dict:
    return measured(lambda: _forked(work, ranges, n), resource.RUSAGE_CHILDREN)


def _forked(work: Work, ranges: list[SegmentRange], n: int) -> int:
    pipes, pids = [], []
    for i in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, str(sum(work(x) for x in ranges[i::n])).encode())
            os._exit(0)
        os.close(w)
        pipes.append(r)
        pids.append(pid)
    decoded = 0
    for r, pid in zip(pipes, pids):
        decoded += int(os.read(r, 64) or 0)
        os.close(r)
        os.waitpid(pid, 0)
    return decoded


def demux(path: Path) -> dict:
    def run() -> int:
        with av.open(str(path)) as container:
            return len(_packet_times(container, _stream_setup(container)[0]))
    return measured(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    ap.add_argument("--level", choices=("decode", "task"), default="decode")
    ap.add_argument("--ranges", default="8,2")
    ap.add_argument("--minutes", type=float, default=10)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = looped(args.work, 320, 240, args.minutes * 60)
    segments = int(args.minutes * 60 * 25) // FrameOptions().segment_frames
    with tempfile.TemporaryDirectory() as parts:
        work = Work(path, args.level, Path(parts))
        cases = {"whole": lambda: sequential(work, [SegmentRange()]),
                 "demux": lambda: demux(path)}
        for n in (int(x) for x in args.ranges.split(",")):
            ranges = cut(segments, n)
            cases[f"{n} seq"] = lambda r=ranges: sequential(work, r)
            cases[f"{n} thr"] = lambda r=ranges: threads(work, r)
            cases[f"{n} proc"] = lambda r=ranges: processes(work, r)
        print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {path.name}, "
              f"level {args.level}", flush=True)
        table = {name: [] for name in cases}
        for rep in range(args.reps):
            load = os.getloadavg()[0]
            row = {name: case() for name, case in cases.items()}
            for name, m in row.items():
                table[name].append(m["cpu"] / row["whole"]["cpu"])
            print(f"rep {rep + 1} (load {load:.1f}): " + "; ".join(
                f"{name} {m['cpu']:.2f} CPU-s {m['wall']:.1f} s {m['decoded']} fr {m['faults']} flt"
                + (f" cs {m['switches']}" if "switches" in m else "")
                for name, m in row.items()), flush=True)
        print("median CPU-s / whole: " + ", ".join(
            f"{name} {statistics.median(v):.3f}" for name, v in table.items()))


if __name__ == "__main__":
    main()

"""The work plan: sorted inputs with unique sanitized ids, cut into decode tasks of equal work.

Ids: each input's raw id is sanitized to `[A-Za-z0-9_-]` (webdataset splits keys at the first
dot). Two inputs that end up with the same id keep it in path order for the first, and `-2`,
`-3`, ... for the others; every such rename is recorded in the plan (and in `_index.json`).
The same file listed twice (an annotation repeating an id) is ingested once.

Work: each input's cost is estimated from its probe (`cwm.ingest.probe`) as decoded frames x
(88,000 + width x height), the per-frame decode+resize time measured per core at 320x240 and
1280x720 (SPEC section 2: 2,725 and 445 frames/s) fitted as a fixed part plus a per-pixel part;
a simulator episode costs its frames at the render rate measured for its env and render mode.
The run is cut into about `TASKS_PER_SLOT` tasks per worker, units packed largest first onto
the least loaded task. Inputs are split into ranges of whole segments (`SegmentRange`; its
segments come out identical, see `cwm.ingest.decode`) only where that pays, and into as few
ranges as balance needs: every range after a video's first costs a demux pass over the whole
file and the frames from its keyframe on (measured on a 10-minute 320x240 video, 8 ranges cost
~10-15% more CPU than 2, `bench/ingest_split.py`), so it holds fewer segments than the first
(by `RANGE_OVERHEAD` of the video's work) to end at the same time. So inputs stay whole when
packing them whole onto the workers already ends within `BALANCE` of an even share; otherwise
inputs larger than one worker's share are cut into pieces of at most that share, then of half
of it, and so on down to one task's share, until the packing balances (one 10-minute video on 2
workers: 2 ranges; 3 equal videos on 2 workers: 2 ranges each). Independently, an input of more
than `MAX_UNIT_SEGMENTS` segments is always split, so that one task never holds more than ~370 MB
of decoded frames. Simulator episodes are never split, and are packed in source order
(`pack_in_order`). Tasks only decide who decodes what; what ends up in the shards depends on the
inputs and the settings alone (`Plan.digest`), so a rerun with another `--workers` still resumes.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from dataclasses import dataclass, field

from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import WHOLE, SegmentRange
from cwm.ingest.probe import Probe
from cwm.ingest.sources.base import VideoInput
from cwm.shards.format import sanitize_id

TASKS_PER_SLOT = 4         # tasks per worker: enough to even out estimate errors, few parts
MIN_RANGE_SEGMENTS = 4     # a split range holds at least this many segments
BALANCE = 1.1              # whole inputs are kept when their packing ends within 10% of even
MAX_UNIT_SEGMENTS = 600    # 30,000 frames of 64x64x3 (368 MB) per unit at most
FRAME_COST = 88_000        # fixed per-frame cost in pixel equivalents (see module doc)
WORK_PER_SECOND = 2725 * (FRAME_COST + 320 * 240)   # work one core does in a second (SPEC)
# What a range after a video's first costs beyond its own frames, as a fraction of the whole
# video's work: a demux-only pass over the file (~1.5%) plus the seek and the frames from the
# keyframe before the range (10-minute 320x240 video, 2 ranges: the second cost 0.11-0.13 s
# more than the first, ~2.2% of the whole decode's 5.3 s; `bench/RESULTS.md`, fourth pass).
RANGE_OVERHEAD = 0.02


@dataclass(frozen=True)
class PlannedVideo:
    key_id: str          # unique, sanitized: sample keys are f"{key_id}_{segment:04d}"
    item: VideoInput


@dataclass(frozen=True)
class Unit:
    """One input, or one range of its segments, decoded inside one task."""

    video: PlannedVideo
    segments: SegmentRange
    work: float

    @property
    def name(self) -> str:
        return f"{self.video.key_id}@{self.segments.first}"


@dataclass(frozen=True)
class Task:
    """One dask task: decode these units into the part `<name>.tar` (+ `<name>.json`)."""

    name: str
    root: str            # dataset root the item paths are relative to
    units: tuple[Unit, ...]

    @property
    def work(self) -> float:
        return sum(u.work for u in self.units)


@dataclass
class Plan:
    videos: list[PlannedVideo]
    tasks: list[Task]
    unprobed: dict[str, str] = field(default_factory=dict)   # key_id -> probe failure
    renamed: list[dict] = field(default_factory=list)        # {source, raw_id, id}
    duplicates: list[str] = field(default_factory=list)      # sources listed more than once

    @property
    def n_videos(self) -> int:
        return len(self.videos)

    @property
    def n_units(self) -> int:
        return sum(len(t.units) for t in self.tasks)

    def digest(self) -> str:
        return inputs_digest(self.videos)


def inputs_digest(videos: list[PlannedVideo]) -> str:
    """Changes when the set of inputs or their ids change (not with the task cut)."""
    content = [(v.key_id, v.item.path, v.item.frames[:1]) for v in videos]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


def assign_ids(items: list[VideoInput]) -> tuple[list[PlannedVideo], list[dict], list[str]]:
    """Sort by source, drop repeated sources, make sanitized ids unique (see module doc)."""
    ordered = sorted(items, key=lambda it: (it.path, it.frames[:1], it.video_id))
    seen_sources, duplicates, unique = set(), [], []
    for item in ordered:
        source = (item.path, item.frames[:1])
        if source in seen_sources:
            duplicates.append(item.path)
            continue
        seen_sources.add(source)
        unique.append(item)
    taken = {}
    for item in unique:
        taken.setdefault(sanitize_id(item.video_id), item)
    planned, renamed, used = [], [], set()
    for item in unique:
        base = sanitize_id(item.video_id)
        key_id = base
        if key_id in used or taken[base] is not item:
            n = 2
            while f"{base}-{n}" in used or f"{base}-{n}" in taken:
                n += 1
            key_id = f"{base}-{n}"
            renamed.append({"source": item.path, "raw_id": item.video_id, "id": key_id})
        used.add(key_id)
        planned.append(PlannedVideo(key_id=key_id, item=item))
    return planned, renamed, duplicates


def estimate_kept(probe: Probe, opts: FrameOptions) -> int:
    """Kept frames of an input from its probe (an estimate; exact for frame runs)."""
    n = max(0, probe.frames - opts.skip_start)
    if opts.fps and probe.fps > 0:
        return min(n, math.ceil(n / probe.fps * opts.fps))
    return math.ceil(n / opts.every)


def estimate_segments(kept: int, opts: FrameOptions) -> int:
    full, tail = divmod(kept, opts.segment_frames)
    return full + (tail >= opts.min_frames)


def estimate_work(probe: Probe, item: VideoInput, opts: FrameOptions) -> float:
    if item.episode is not None:     # rendered frames, at the render rate measured for the env
        return max(1, probe.frames) * WORK_PER_SECOND / item.episode.render_rate
    decoded = estimate_kept(probe, opts) if item.is_frame_run else probe.frames
    return max(1, decoded) * (FRAME_COST + probe.width * probe.height)


def core_seconds(items: list[VideoInput], probes: dict[str, Probe], opts: FrameOptions) -> float:
    """Estimated single-core seconds of decoding all of `items` (`probes`: key_id -> Probe)."""
    planned = assign_ids(items)[0]
    return sum(estimate_work(probes[v.key_id], v.item, opts) for v in planned
               if v.key_id in probes and not probes[v.key_id].error) / WORK_PER_SECOND


def split_units(video: PlannedVideo, probe: Probe, opts: FrameOptions,
                share: float | None) -> list[Unit]:
    """The video whole, or ranges of about `share` work each (whole segments, the last open);
    share None: split only a video of more than `MAX_UNIT_SEGMENTS` segments."""
    work = estimate_work(probe, video.item, opts)
    if video.item.episode is not None:
        # Its frames exist only once every step before them was played: never split.
        return [Unit(video, WHOLE, work)]
    segments = estimate_segments(estimate_kept(probe, opts), opts)
    # (the tolerance: a video of exactly k shares is k pieces, not k + 1 by rounding)
    pieces = max(math.ceil(work / share - 1e-9) if share else 1,
                 math.ceil(segments / MAX_UNIT_SEGMENTS))
    pieces = min(pieces, segments // MIN_RANGE_SEGMENTS)
    if pieces < 2:
        return [Unit(video, WHOLE, work)]
    # Every range after the first also pays a demux pass over the file and its keyframe
    # pre-roll (none for a frame run, which reads only its own stills): those ranges hold fewer
    # segments, so that all pieces cost the same.
    extra = 0.0 if video.item.is_frame_run else RANGE_OVERHEAD * work
    cuts = _cuts(segments, pieces, extra / work)
    return [Unit(video, SegmentRange(cuts[j], cuts[j + 1] if j + 1 < pieces else None),
                 work * (cuts[j + 1] - cuts[j]) / segments + (extra if j else 0.0))
            for j in range(pieces)]


def _cuts(segments: int, pieces: int, overhead: float) -> list[int]:
    """Segment boundaries of `pieces` ranges of equal cost when every range but the first costs
    `overhead` (a fraction of the whole input's work) on top of its segments; equal segment
    counts where that would leave a range under MIN_RANGE_SEGMENTS or over MAX_UNIT_SEGMENTS."""
    share = (1 + (pieces - 1) * overhead) / pieces         # each piece's cost, whole input = 1
    cuts = [0] + [round(segments * (share + (j - 1) * (share - overhead)))
                  for j in range(1, pieces)] + [segments]
    if any(not MIN_RANGE_SEGMENTS <= b - a <= MAX_UNIT_SEGMENTS for a, b in zip(cuts, cuts[1:])):
        cuts = [round(segments * j / pieces) for j in range(pieces + 1)]
    return cuts


def _largest_first(units: list[Unit], n_bins: int) -> list[list[Unit]]:
    """Each unit, largest first, onto the least loaded of `n_bins` bins."""
    bins: list[list[Unit]] = [[] for _ in range(max(1, min(n_bins, len(units))))]
    heap = [(0.0, i) for i in range(len(bins))]
    for unit in sorted(units, key=lambda u: (-u.work, u.name)):
        load, i = heapq.heappop(heap)
        bins[i].append(unit)
        heapq.heappush(heap, (load + unit.work, i))
    return bins


def balanced(units: list[Unit], slots: int) -> bool:
    """Whether `slots` workers taking these units largest first (as dask hands out the tasks,
    heaviest submitted first) all finish within `BALANCE` of an even share."""
    total = sum(u.work for u in units)
    ends = [sum(u.work for u in b) for b in _largest_first(units, slots)]
    return slots <= 1 or max(ends, default=0.0) <= BALANCE * total / slots


def pack(units: list[Unit], n_tasks: int, root: str) -> list[Task]:
    """Largest unit first onto the least loaded task; tasks named by what they hold."""
    return _tasks(_largest_first(units, n_tasks), root)


def pack_in_order(units: list[Unit], n_tasks: int, root: str) -> list[Task]:
    """Units in source order, cut into `n_tasks` runs of equal count: for simulator episodes,
    which all cost the same in one run. A worker keeps its env while the episodes of one
    simulator task follow each other (`cwm.ingest.simulate`); `pack` would deal them out
    round-robin and every episode would build an env of its own."""
    ordered = sorted(units, key=lambda u: (u.video.item.path, u.segments.first))
    n = max(1, min(n_tasks, len(ordered)))
    cuts = [round(len(ordered) * j / n) for j in range(n + 1)]
    return _tasks([ordered[cuts[j]:cuts[j + 1]] for j in range(n)], root)


def _tasks(bins: list[list[Unit]], root: str) -> list[Task]:
    tasks = []
    for members in bins:
        if not members:
            continue
        members.sort(key=lambda u: (u.video.item.path, u.segments.first))
        digest = hashlib.sha256(json.dumps([u.name for u in members]).encode()).hexdigest()[:12]
        tasks.append(Task(name=f"part-{digest}", root=root, units=tuple(members)))
    tasks.sort(key=lambda t: (-t.work, t.name))      # heaviest submitted first
    return tasks


def make_plan(items: list[VideoInput], probes: dict[str, Probe] | None, root: str,
              opts: FrameOptions, slots: int = 1) -> Plan:
    """`probes`: key_id -> Probe (None: every input counted as equal work, never split)."""
    planned, renamed, duplicates = assign_ids(items)
    plan = Plan(videos=planned, tasks=[], renamed=renamed, duplicates=duplicates)
    probes = probes or {}
    good = []
    for video in planned:
        probe = probes.get(video.key_id, Probe(frames=1))
        if probe.error:
            plan.unprobed[video.key_id] = probe.error
        else:
            good.append((video, probe))
    slots = max(1, slots)
    n_tasks = slots * TASKS_PER_SLOT
    units = [u for v, p in good for u in split_units(v, p, opts, None)]
    total = sum(u.work for u in units)
    pieces = slots                  # per worker's share: 1, then 2, ... up to TASKS_PER_SLOT
    while not balanced(units, slots) and pieces <= n_tasks:
        units = [u for v, p in good for u in split_units(v, p, opts, total / pieces)]
        pieces *= 2
    episodes = any(u.video.item.episode is not None for u in units)
    plan.tasks = (pack_in_order if episodes else pack)(units, n_tasks, root)
    return plan

"""Which segment goes into which shard: a seeded shuffle of every segment of the run.

Once every part is written, each video's outcome is known (`collect`): all its segments, or
failed (any of its ranges failed, or its probe did: a video is never half ingested), or skipped
(too short). `layout` then orders all segments by key, shuffles them with `random.Random(seed)`
and cuts the order into N shards of (nearly) equal sample counts, N = total bytes / shard bytes
(at least 8 shards of >= 16 samples when the run has that many) or total samples / shard
samples, rounded up. One shard so holds segments of many sources and a
long source is spread over many shards. The layout is a pure function of the plan's inputs and
the settings (the segments themselves are), so a shard is too: a rerun after a crash rebuilds the
same layout and writes only the shards whose stats file is missing.

Bookkeeping: each video's status (and error, if any) is counted in exactly one shard: the one
holding its first segment, or for a video without segments the shard `crc32(id) mod N`; summing
shard stats therefore gives the run's totals.
"""

from __future__ import annotations

import dataclasses
import math
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from cwm.ingest.plan import Plan
from cwm.ingest.writer import read_part


@dataclass(frozen=True)
class SampleRef:
    key: str
    part: str            # part name; the sample's bytes are tar[offset:offset + length]
    offset: int
    length: int
    frames: int


@dataclass
class VideoOutcome:
    video_id: str
    source: str
    status: str = "ok"           # ok | failed | skipped
    error: str = ""
    decoded: int = 0
    kept: int = 0
    seek_fallbacks: int = 0
    samples: list[SampleRef] = field(default_factory=list)


@dataclass(frozen=True)
class ShardSpec:
    """One shard: its samples (in order) and the videos it accounts for."""

    index: int
    name: str
    samples: tuple[SampleRef, ...]
    videos: tuple[VideoOutcome, ...]


def collect(plan: Plan, parts_dir: Path, min_frames: int) -> list[VideoOutcome]:
    """Every planned video's outcome, from the part records (all parts must be done)."""
    outcomes = {v.key_id: VideoOutcome(v.key_id, v.item.path) for v in plan.videos}
    for key_id, reason in plan.unprobed.items():
        outcomes[key_id].status, outcomes[key_id].error = "failed", reason
    for task in plan.tasks:
        for unit in read_part(parts_dir, task.name)["units"]:
            o = outcomes[unit["video_id"]]
            o.decoded += unit["decoded"]
            o.kept += unit["kept"]
            o.seek_fallbacks += bool(unit["seek_fallback"])
            if unit["status"] != "ok":
                if o.status == "ok":          # the first failing range (in part order) names it
                    o.status, o.error = "failed", unit["error"]
                continue
            o.samples += [SampleRef(key, task.name, offset, length, n)
                          for key, offset, length, n in unit["samples"]]
    for o in outcomes.values():
        if o.status == "failed":
            o.samples = []
        elif not o.samples:
            o.status = "skipped"
            o.error = (f"too short: {o.kept} frames kept (of {o.decoded}), "
                       f"--min-frames is {min_frames}")
        o.samples.sort(key=lambda s: s.key)
    return [outcomes[v.key_id] for v in plan.videos]


MIN_SHARDS = 8             # by bytes, a dataset gets at least this many shards ...
MIN_SHARD_SAMPLES = 16     # ... as long as each still holds this many samples


def shard_count(samples: list[SampleRef], shard_samples: int | None, shard_bytes: int) -> int:
    """By samples: exactly as asked. By bytes: total / shard_bytes, rounded up, but at least
    MIN_SHARDS when there are enough samples: a streaming loader splits shards over its workers
    and nodes, and a worker without a shard of its own idles; fewer shards also mix less."""
    if shard_samples:
        return max(1, math.ceil(len(samples) / shard_samples))
    by_bytes = math.ceil(sum(s.length for s in samples) / shard_bytes)
    return max(1, by_bytes, min(MIN_SHARDS, len(samples) // MIN_SHARD_SAMPLES))


def layout(outcomes: list[VideoOutcome], prefix: str, shard_samples: int | None,
           shard_bytes: int, seed: int) -> list[ShardSpec]:
    samples = sorted((s for o in outcomes for s in o.samples), key=lambda s: s.key)
    random.Random(seed).shuffle(samples)
    n = shard_count(samples, shard_samples, shard_bytes)
    cuts = [len(samples) * i // n for i in range(n + 1)]
    shard_of = {s.key: i for i in range(n) for s in samples[cuts[i]:cuts[i + 1]]}
    accounted: list[list[VideoOutcome]] = [[] for _ in range(n)]
    for o in outcomes:
        i = shard_of[o.samples[0].key] if o.samples else zlib.crc32(o.video_id.encode()) % n
        accounted[i].append(dataclasses.replace(o, samples=[]))   # counts only: light to ship
    return [ShardSpec(i, shard_name(prefix, i), tuple(samples[cuts[i]:cuts[i + 1]]),
                      tuple(accounted[i]))
            for i in range(n)]


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}"

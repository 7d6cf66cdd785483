"""Deterministic shard specs: sorted inputs, unique sanitized ids, N videos per shard.

The same inputs and settings always give the same shards with the same contents, which is
what makes resume (skip shards whose stats exist) and dask retries safe: a shard is a pure
function of its spec.

Ids: each input's raw id is sanitized to `[A-Za-z0-9_-]` (webdataset splits keys at the first
dot). Two inputs that end up with the same id keep it in path order for the first, and `-2`,
`-3`, ... for the others; every such rename is recorded in the plan (and in `_index.json`).
The same file listed twice (an annotation repeating an id) is ingested once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from cwm.ingest.sources.base import VideoInput
from cwm.shards.format import sanitize_id


@dataclass(frozen=True)
class PlannedVideo:
    key_id: str          # unique, sanitized: sample keys are f"{key_id}_{segment:04d}"
    item: VideoInput


@dataclass(frozen=True)
class ShardSpec:
    """One dask task: write `<name>.tar` (+ stats, errors) from these videos."""

    index: int
    name: str            # "<prefix>-%06d"
    root: str            # dataset root the item paths are relative to
    videos: tuple[PlannedVideo, ...]


@dataclass
class Plan:
    shards: list[ShardSpec]
    renamed: list[dict] = field(default_factory=list)     # {source, raw_id, id}
    duplicates: list[str] = field(default_factory=list)   # sources listed more than once

    @property
    def n_videos(self) -> int:
        return sum(len(s.videos) for s in self.shards)

    def digest(self) -> str:
        """Changes when the set of inputs, their ids or their grouping changes."""
        content = [[s.name, [(v.key_id, v.item.path, v.item.frames[:1]) for v in s.videos]]
                   for s in self.shards]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}"


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


def make_plan(items: list[VideoInput], root: str, prefix: str, shard_size: int) -> Plan:
    planned, renamed, duplicates = assign_ids(items)
    shards = [
        ShardSpec(index=i, name=shard_name(prefix, i), root=root,
                  videos=tuple(planned[start:start + shard_size]))
        for i, start in enumerate(range(0, len(planned), shard_size))
    ]
    return Plan(shards=shards, renamed=renamed, duplicates=duplicates)

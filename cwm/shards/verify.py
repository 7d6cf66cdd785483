"""`verify SPEC`: decode every sample with the format's own decoder and check the contract.

A sample passes when its key uses only [A-Za-z0-9_-] and is unique within its dataset, it holds
exactly one of `frames.npy` / `frames.mp4`, the frames decode to uint8 [T >= 1, 64, 64, 3], and
`meta.json` is a JSON object. Damaged tars, unsafe members and pickle-capable members are
problems too: the shard was not written by ingest.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cwm.shards.format import FRAME_MEMBERS, FRAME_SIZE, decode_frames, decode_meta
from cwm.shards.spec import resolve_sources
from cwm.shards.tarstream import WARNINGS_PER_KIND, ReadStats, ShardWarning, iter_samples

_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class VerifyReport:
    samples: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_sample(sample: dict) -> tuple[int, list[str]]:
    """(number of frames, problems) for one raw sample."""
    key = sample["__key__"]
    where = f"{sample['__url__']}: {key!r}"
    problems = []
    if not _KEY.match(key):
        problems.append(f"{where}: key has characters outside [A-Za-z0-9_-]")
    present = [m for m in FRAME_MEMBERS if m in sample]
    if len(present) != 1:
        problems.append(f"{where}: needs exactly one of {FRAME_MEMBERS}, has {present}")
    frames = 0
    if present:
        try:
            array = decode_frames(sample)
            if array.dtype != np.uint8 or array.shape[1:] != (FRAME_SIZE, FRAME_SIZE, 3) \
                    or array.shape[0] < 1:
                problems.append(f"{where}: frames are {array.dtype} {array.shape}, "
                                f"want uint8 [T, {FRAME_SIZE}, {FRAME_SIZE}, 3]")
            frames = int(array.shape[0])
        # The sample is data: any decoder failure is the problem being looked for.
        except Exception as e:  # noqa: BLE001
            problems.append(f"{where}: frames do not decode: {e}")
    if "meta.json" not in sample:
        problems.append(f"{where}: no meta.json")
    else:
        try:
            if not isinstance(decode_meta(sample), dict):
                problems.append(f"{where}: meta.json is not an object")
        except ValueError as e:
            problems.append(f"{where}: meta.json does not parse: {e}")
    return frames, problems


def verify(spec: str, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check every sample of every shard `spec` names; `progress(1)` after each shard."""
    report = VerifyReport()
    for src in resolve_sources(spec):
        seen: set[str] = set()
        for url in src.shards:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ShardWarning)
                for sample in iter_samples(url, report.stats):
                    report.samples += 1
                    frames, problems = check_sample(sample)
                    report.frames += frames
                    if sample["__key__"] in seen:
                        problems.append(f"{url}: duplicate key {sample['__key__']!r}")
                    seen.add(sample["__key__"])
                    report.problems.extend(problems)
            report.problems.extend(str(w.message) for w in caught
                                   if issubclass(w.category, ShardWarning))
            # warnings are bounded per shard and kind: name the full counts of the rest
            report.problems.extend(
                f"{url}: {n} {kind.replace('_', ' ')} in this shard"
                for kind, n in report.stats.per_shard.get(url, {}).items()
                if n > WARNINGS_PER_KIND)
            if progress is not None:
                progress(1)
    return report

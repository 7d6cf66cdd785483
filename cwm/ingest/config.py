"""Typed configuration of one ingest run; printed at start and saved as `<out>/config.json`.

`FrameOptions` is everything a worker needs to turn one video into samples; it is shipped with
every shard task. `IngestConfig` adds what the driver needs (where, how many workers, resume).
The part of both that decides *what ends up in the shards* is the run's fingerprint: a rerun
into the same `--out` resumes only when the fingerprint matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

from cwm.errors import UserError
from cwm.values import check
from cwm.shards.format import FRAME_SIZE, STORAGES

ASPECTS = ("center-crop", "squash", "pad")
INLINE = "inline"                 # --scheduler inline: run tasks in this process, no dask
_PREFIX = re.compile(r"[A-Za-z0-9_-]+")
# dask addresses: [protocol://]host[:port], host a name, IPv4 or [IPv6]
_SCHEDULER = re.compile(r"((tcp|tls|inproc|ucx|ws|wss)://)?([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}/?")
PROBES = ("pyav", "ffprobe")
# 64 MiB: large enough that an object store's per-request latency (~20-100 ms) stays under ~10%
# of a shard's transfer at ~100 MB/s, small enough that a dataset has many shards to spread over
# nodes and loader workers (~110 segments of 50 npy frames each).
DEFAULT_SHARD_BYTES = 64 * 2**20
INTERPOLATIONS = ("area", "bilinear", "bicubic", "fast-bilinear", "point")


@dataclass(frozen=True)
class FrameOptions:
    """How source frames become a sample's `[T, 64, 64, 3] uint8` frames."""

    size: int = FRAME_SIZE
    aspect: str = "center-crop"
    every: int = 1                 # keep every k-th source frame (after skip_start)
    fps: float | None = None       # or resample to this rate by timestamps (wins over every)
    skip_start: int = 0            # source frames dropped at the start of each video
    segment_frames: int = 50       # frames per sample
    min_frames: int = 25           # shorter videos (after sampling) are skipped and counted
    min_resolution: int = 8        # a source smaller than this on either side is rejected
    storage: str = "npy"
    interpolation: str = "area"
    timeout: float = 300.0         # seconds allowed to decode one input

    def __post_init__(self):
        check("--fps", self.fps, low=0, low_open=True)
        check("--timeout", self.timeout, low=0, low_open=True)
        checks = [
            (self.aspect in ASPECTS, f"aspect must be one of {', '.join(ASPECTS)}"),
            (self.storage in STORAGES, f"storage must be one of {', '.join(STORAGES)}"),
            (self.interpolation in INTERPOLATIONS,
             f"interpolation must be one of {', '.join(INTERPOLATIONS)}"),
            (self.every >= 1, "--every must be >= 1"),
            (self.fps is None or self.fps > 0, "--fps must be > 0"),
            (self.skip_start >= 0, "--skip-start must be >= 0"),
            (self.segment_frames >= 1, "--segment-frames must be >= 1"),
            (1 <= self.min_frames <= self.segment_frames,
             "--min-frames must be between 1 and --segment-frames"),
            (self.timeout > 0, "--timeout must be > 0"),
            (self.size >= 8, "size must be >= 8"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)


@dataclass(frozen=True)
class IngestConfig:
    dataset: str
    src: str
    out: str
    frames: FrameOptions = field(default_factory=FrameOptions)
    prefix: str = ""               # shard name prefix; the dataset name when empty
    shard_samples: int | None = None   # samples per shard; when None, shard_bytes decides
    shard_bytes: int = DEFAULT_SHARD_BYTES
    shard_seed: int = 0            # seed of the order that deals segments to shards
    probe: str = "pyav"            # metadata probe backend (cwm.ingest.probe.BACKENDS)
    source_options: dict = field(default_factory=dict)  # e.g. ssv2 split, ytb source fps
    workers: int | None = None     # embedded cluster size; cores when None
    scheduler: str | None = None   # None: embedded LocalCluster; "inline": no dask; else address
    retries: int = 2
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.prefix and not _PREFIX.fullmatch(self.prefix):
            raise UserError(f"--prefix {self.prefix!r} must be a plain name of letters, digits, "
                            f"'_' and '-' (shards are written inside --out)")
        if self.scheduler and self.scheduler != INLINE and not _SCHEDULER.fullmatch(self.scheduler):
            raise UserError(f"--scheduler {self.scheduler!r} is not a dask scheduler address: use "
                            f"tcp://HOST:PORT (or another dask protocol), HOST:PORT, or {INLINE!r}")
        if self.shard_samples is not None and self.shard_samples < 1:
            raise UserError("--shard-samples must be >= 1")
        if self.shard_bytes < 1:
            raise UserError("--shard-bytes must be >= 1")
        if self.probe not in PROBES:
            raise UserError(f"--probe must be one of {', '.join(PROBES)}")
        if self.workers is not None and self.workers < 1:
            raise UserError("--workers must be >= 1")
        if self.retries < 0:
            raise UserError("--retries must be >= 0")

    @property
    def shard_prefix(self) -> str:
        return self.prefix or self.dataset.replace("-", "_")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, plan_digest: str) -> str:
        """Hash of everything that decides shard contents (not workers, scheduler, paths)."""
        content = {
            "dataset": self.dataset,
            "prefix": self.shard_prefix,
            "shard_samples": self.shard_samples,
            "shard_bytes": None if self.shard_samples else self.shard_bytes,
            "shard_seed": self.shard_seed,
            "frames": dataclasses.asdict(self.frames),
            "source_options": self.source_options,
            "plan": plan_digest,
        }
        blob = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

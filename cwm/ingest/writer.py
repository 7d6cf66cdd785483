"""One shard task: decode its videos and write `<name>.tar`, `.errors.jsonl`, `.stats.json`.

Order matters for crash safety: the tar is written under a temporary name and renamed when
complete, then the errors file, and the stats file last: a shard is done exactly when its stats
file exists. Killed at any moment, a shard is either done or redone from scratch by the next run;
no partial tar is ever visible under its final name.

Bad inputs never raise here: each becomes one line of `.errors.jsonl`
(`{"video_id", "source", "status": "failed"|"skipped", "error"}`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import webdataset as wds

from cwm.atomic import atomic_open, atomic_path, write_json
from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import InputError, decode_input
from cwm.ingest.plan import ShardSpec
from cwm.ingest.segment import build_samples

STATS_SUFFIX = ".stats.json"
ERRORS_SUFFIX = ".errors.jsonl"
TAR_SUFFIX = ".tar"
_STATS_INTS = ("videos", "ok", "failed", "skipped", "samples", "frames", "decoded_frames", "bytes")


def shard_files(out_dir: Path, name: str) -> tuple[Path, Path, Path]:
    """(tar, errors, stats) paths of shard `name`."""
    return (out_dir / f"{name}{TAR_SUFFIX}", out_dir / f"{name}{ERRORS_SUFFIX}",
            out_dir / f"{name}{STATS_SUFFIX}")


def done_stats(out_dir: Path, name: str) -> dict | None:
    """The stats of shard `name` if it is done (tar and a readable stats file), else None.

    A stats file that does not parse (damaged after the fact) means "not done": the shard is
    written again, which replaces it, instead of blocking every rerun.
    """
    tar, _, stats = shard_files(out_dir, name)
    if not (stats.is_file() and tar.is_file()):
        return None
    try:
        found = json.loads(stats.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(found, dict) or not all(isinstance(found.get(k), int) for k in _STATS_INTS):
        return None
    return found


def is_done(out_dir: Path, name: str) -> bool:
    return done_stats(out_dir, name) is not None


def write_shard(spec: ShardSpec, opts: FrameOptions, out_dir: str | Path, dataset: str,
                on_video: Callable[[str], None] | None = None) -> dict:
    """Write shard `spec` into `out_dir`; returns its stats (also saved as `.stats.json`).

    on_video(status) is called after each input ("ok", "failed", "skipped"): progress only.
    """
    out_dir = Path(out_dir)
    root = Path(spec.root)
    tar_path, errors_path, stats_path = shard_files(out_dir, spec.name)
    started = time.perf_counter()
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    samples = frames = decoded = 0
    errors = []
    with atomic_path(tar_path) as tmp, open(tmp, "wb") as stream:
        with wds.TarWriter(stream) as tar:
            for video in spec.videos:
                status, reason, written = "ok", "", 0
                try:
                    result = decode_input(root, video.item, opts)
                except InputError as e:
                    status, reason = "failed", str(e)
                except Exception as e:  # noqa: BLE001  (SPEC: one bad input never stops a shard)
                    status, reason = "failed", f"unexpected {type(e).__name__}: {e}"
                else:
                    # Writing errors (disk full) are not the input's fault: they fail the shard.
                    decoded += result.decoded
                    for sample, n in build_samples(dataset, video.key_id, video.item, result, opts):
                        tar.write(sample)
                        written += 1
                        frames += n
                    samples += written
                    if not written:
                        status = "skipped"
                        reason = (f"too short: {len(result.frames)} frames kept "
                                  f"(of {result.decoded}), --min-frames is {opts.min_frames}")
                counts[status] += 1
                if status != "ok":
                    errors.append({"video_id": video.key_id, "source": video.item.path,
                                   "status": status, "error": reason})
                if on_video is not None:
                    on_video(status)
    with atomic_open(errors_path, "w") as f:
        for line in errors:
            f.write(json.dumps(line) + "\n")
    stats = {
        "shard": tar_path.name,
        "videos": len(spec.videos),
        **counts,
        "samples": samples,
        "frames": frames,
        "decoded_frames": decoded,
        "bytes": tar_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(stats_path, stats)
    return stats

"""One shard task: copy its samples' bytes out of the parts into `<name>.tar`, then write
`.errors.jsonl` and `.stats.json`.

Samples are copied verbatim (their tar members are self-contained, `cwm.ingest.tarout`): no
decoding, no re-encoding. Order matters for crash safety: the tar is written under a temporary
name and renamed when complete, then the errors file, and the stats file last: a shard is done
exactly when its stats file exists.

Errors lines: `{"video_id", "source", "status": "failed"|"skipped", "error"}`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cwm.atomic import atomic_open, atomic_path, read_json, write_json
from cwm.ingest.layout import ShardSpec
from cwm.ingest.tarout import TarOut
from cwm.ingest.writer import part_files

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
    found = read_json(stats) if tar.is_file() else None
    if found is None or not all(isinstance(found.get(k), int) for k in _STATS_INTS):
        return None
    return found


def is_done(out_dir: Path, name: str) -> bool:
    return done_stats(out_dir, name) is not None


def write_shard(spec: ShardSpec, parts_dir: str | Path, out_dir: str | Path) -> dict:
    """Write shard `spec` into `out_dir`; returns its stats (also saved as `.stats.json`)."""
    out_dir, parts_dir = Path(out_dir), Path(parts_dir)
    tar_path, errors_path, stats_path = shard_files(out_dir, spec.name)
    started = time.perf_counter()
    fds: dict[str, int] = {}
    try:
        with atomic_path(tar_path) as tmp, open(tmp, "wb") as stream:
            tar = TarOut(stream)
            for ref in spec.samples:
                if ref.part not in fds:
                    fds[ref.part] = os.open(part_files(parts_dir, ref.part)[0], os.O_RDONLY)
                try:
                    tar.copy_range(fds[ref.part], ref.offset, ref.length)
                except EOFError:
                    raise OSError(f"part {ref.part} is shorter than its record says") from None
            tar.close()
    finally:
        for fd in fds.values():
            os.close(fd)
    with atomic_open(errors_path, "w") as f:
        for o in spec.videos:
            if o.status != "ok":
                f.write(json.dumps({"video_id": o.video_id, "source": o.source,
                                    "status": o.status, "error": o.error}) + "\n")
    stats = {
        "shard": tar_path.name,
        "videos": len(spec.videos),
        **{k: sum(o.status == k for o in spec.videos) for k in ("ok", "failed", "skipped")},
        "samples": len(spec.samples),
        "frames": sum(r.frames for r in spec.samples),
        "decoded_frames": sum(o.decoded for o in spec.videos),
        "bytes": tar_path.stat().st_size,
        "sources": len({r.key.rsplit("_", 1)[0] for r in spec.samples}),
        "seek_fallbacks": sum(o.seek_fallbacks for o in spec.videos),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(stats_path, stats)
    return stats

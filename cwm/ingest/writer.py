"""One decode task: decode its units and write the part `<name>.tar` + `<name>.json`.

A part is an intermediate: the samples of its units in shard format (`cwm.ingest.tarout`), and a
JSON record of each unit (status, reason, frames decoded, and where each sample's bytes are in
the tar). Shards are assembled from parts later (`cwm.ingest.assemble`). Order matters for crash
safety: the tar is written under a temporary name and renamed when complete, the JSON last: a
part is done exactly when its JSON exists. Killed at any moment, a part is either done or redone.

Bad inputs never raise here: a unit that fails records `status: "failed"` and the reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from cwm.atomic import atomic_path, read_json, write_json
from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import InputError, decode_input
from cwm.ingest.plan import Task
from cwm.ingest.segment import build_samples
from cwm.ingest.tarout import TarOut

TAR_SUFFIX = ".tar"
PART_SUFFIX = ".json"


def part_files(parts_dir: Path, name: str) -> tuple[Path, Path]:
    return parts_dir / f"{name}{TAR_SUFFIX}", parts_dir / f"{name}{PART_SUFFIX}"


def read_part(parts_dir: Path, name: str) -> dict | None:
    """The record of part `name` if the part is done (its tar and a readable record), else None.

    A record damaged after the fact means "not done": the decode task runs again and replaces it
    (as a damaged shard stats file does), instead of a traceback on every rerun."""
    tar, record = part_files(parts_dir, name)
    found = read_json(record) if tar.is_file() else None
    return found if found is not None and isinstance(found.get("units"), list) else None


def part_done(parts_dir: Path, name: str) -> bool:
    return read_part(parts_dir, name) is not None


def write_part(task: Task, opts: FrameOptions, parts_dir: str | Path, dataset: str,
               on_unit: Callable[[str], None] | None = None) -> dict:
    """Write part `task` into `parts_dir`; returns its record (also saved as `<name>.json`).

    on_unit(status) is called after each unit ("ok" or "failed"): progress only.
    """
    parts_dir = Path(parts_dir)
    root = Path(task.root)
    tar_path, record_path = part_files(parts_dir, task.name)
    started = time.perf_counter()
    units = []
    with atomic_path(tar_path) as tmp, open(tmp, "wb") as stream:
        tar = TarOut(stream)
        for unit in task.units:
            entry = {"video_id": unit.video.key_id, "source": unit.video.item.path,
                     "first_segment": unit.segments.first, "status": "ok", "error": "",
                     "decoded": 0, "kept": 0, "seek_fallback": False, "samples": []}
            try:
                result = decode_input(root, unit.video.item, opts, unit.segments)
            except InputError as e:
                entry.update(status="failed", error=str(e))
            except Exception as e:  # noqa: BLE001  (SPEC: one bad input never stops a task)
                entry.update(status="failed", error=f"unexpected {type(e).__name__}: {e}")
            else:
                # Writing errors (disk full) are not the input's fault: they fail the task.
                entry.update(decoded=result.decoded, kept=len(result.frames),
                             seek_fallback=result.seek_fallback)
                for sample, n in build_samples(dataset, unit.video.key_id, unit.video.item,
                                               result, opts):
                    offset, length = tar.write_sample(sample)
                    entry["samples"].append([sample["__key__"], offset, length, n])
            units.append(entry)
            if on_unit is not None:
                on_unit(entry["status"])
        tar.close()
    record = {"part": task.name, "units": units,
              "seconds": round(time.perf_counter() - started, 3)}
    write_json(record_path, record, indent=None)
    return {"part": task.name, "seconds": record["seconds"],
            "decoded": sum(u["decoded"] for u in units),
            "frames": sum(s[3] for u in units for s in u["samples"])}

"""Reading a shard directory: its `_index.json` (written by ingest) or, failing that, its tars.

The index lists shards with sample counts. Accepted shapes, so that the reader does not break
when the writer adds fields:

    {"shards": [{"file": "ssv2-000000.tar", "samples": 812, ...}, ...], ...}
    {"shards": ["ssv2-000000.tar", ...]}
    {"shards": {"ssv2-000000.tar": 812, ...}}

(the name may also be under "name", "path", "shard", "url" or "tar"; the count under "count",
"num_samples", "n_samples" or "segments"). Relative names are relative to the directory. A
directory without an index falls back to its `*.tar` files (sorted), counts unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cwm.errors import UserError

INDEX_NAME = "_index.json"
_NAME_KEYS = ("file", "name", "path", "shard", "url", "tar")
_COUNT_KEYS = ("samples", "count", "num_samples", "n_samples", "segments")


def read_index(directory: Path, spec: str) -> tuple[list[str], dict[str, int]]:
    """(shard paths, {path: sample count}) for a shard directory."""
    index = directory / INDEX_NAME
    if not index.exists():
        shards = sorted(str(p) for p in directory.glob("*.tar") if p.is_file())
        if not shards:
            raise UserError(f"directory {str(directory)!r} has no {INDEX_NAME} and no .tar files "
                            f"(shard spec {spec!r})")
        return shards, {}
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {str(index)!r}: {e} (shard spec {spec!r})") from None
    entries = data.get("shards") if isinstance(data, dict) else data
    shards: list[str] = []
    counts: dict[str, int] = {}
    for name, count in _entries(entries, index, spec):
        path = name if "://" in name or os.path.isabs(name) else str(directory / name)
        if "://" not in path and not os.path.isfile(path):
            raise UserError(f"{str(index)!r} lists {name!r}, which does not exist (shard spec {spec!r})")
        shards.append(path)
        if count is not None:
            counts[path] = count
    if not shards:
        raise UserError(f"{str(index)!r} lists no shards (shard spec {spec!r})")
    return shards, counts


def _entries(entries, index: Path, spec: str):
    if isinstance(entries, dict):
        for name, value in entries.items():
            yield name, _count_of(value)
        return
    if not isinstance(entries, list):
        raise UserError(f"{str(index)!r} has no 'shards' list (shard spec {spec!r})")
    for entry in entries:
        if isinstance(entry, str):
            yield entry, None
            continue
        name = next((entry[k] for k in _NAME_KEYS if isinstance(entry, dict) and k in entry), None)
        if not isinstance(name, str):
            raise UserError(f"{str(index)!r}: shard entry {entry!r} has no file name (shard spec {spec!r})")
        yield name, _count_of(entry)


def _count_of(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict):
        for k in _COUNT_KEYS:
            if isinstance(value.get(k), int):
                return value[k]
    return None

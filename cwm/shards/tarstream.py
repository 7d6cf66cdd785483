"""Reading raw samples out of shard tars without trusting them: a shard is data, never code.

webdataset's own tar expander is replaced here because a training run must survive hostile or
damaged shards and say what it skipped:

- members that could be pickles (`.pyd`, `.pth`, `.pt`, `.pkl`, `.pickle`, `.ckpt`) are never
  read, only counted, with a warning;
- member names that are absolute or contain `..`, and links/devices, are skipped and counted
  (nothing is ever extracted to disk, but such a shard was not written by ingest);
- a truncated or unreadable tar ends that shard with a warning; the samples read before the damage
  are kept (their members were complete) and training goes on with the next shard.

A raw sample is `{"__key__", "__url__", "<field>": bytes, ...}` for the fields in `FIELDS`; the
members of one sample are consecutive in the tar and share the key (webdataset's convention: the
key is the member path up to the first dot of its base name).
"""

from __future__ import annotations

import os
import tarfile
import warnings
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

from webdataset.gopen import gopen

FIELDS = ("frames.npy", "frames.mp4", "meta.json")
PICKLE_EXTENSIONS = ("pyd", "pth", "pt", "pkl", "pickle", "ckpt")


class ShardWarning(UserWarning):
    """Something in a shard was skipped (unsafe member, damaged tar, unusable sample)."""


@dataclass
class ReadStats:
    """What this process skipped while reading; printed by inspect/verify, named in warnings."""

    shards: int = 0
    samples: int = 0
    bytes: int = 0
    damaged_shards: int = 0
    unsafe_members: int = 0
    pickle_members: int = 0
    bad_samples: int = 0
    short_samples: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def warn(message: str) -> None:
    warnings.warn(message, ShardWarning, stacklevel=2)


def _is_unsafe(member: tarfile.TarInfo) -> bool:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or not member.isfile()


def _split_name(name: str) -> tuple[str, str]:
    """`dir/abc_0001.frames.npy` -> (`dir/abc_0001`, `frames.npy`)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def _open_tar(url: str) -> tarfile.TarFile:
    # Local files are read in random-access mode: headers by seeking, each member's data in one
    # read call. Stream mode ("r|") copies everything through 10 KB chunks and was the largest
    # cost of the whole loader in profiles. URLs and pipes can only be streamed.
    if os.path.isfile(url):
        return tarfile.open(url, mode="r:*")
    return tarfile.open(fileobj=gopen(url, "rb"), mode="r|*")


def iter_samples(url: str, stats: ReadStats) -> Iterator[dict]:
    """Raw samples of one shard, in tar order; never raises on damaged or hostile content."""
    stats.shards += 1
    current: dict | None = None
    try:
        with _open_tar(url) as tar:
            for member in tar:
                if member.isdir():
                    continue
                if _is_unsafe(member):
                    stats.unsafe_members += 1
                    warn(f"{url}: skipped unsafe tar member {member.name!r} "
                         f"({stats.unsafe_members} so far)")
                    continue
                key, field = _split_name(member.name)
                if field.rsplit(".", 1)[-1].lower() in PICKLE_EXTENSIONS:
                    stats.pickle_members += 1
                    warn(f"{url}: ignored {member.name!r}: pickle-capable members are never loaded "
                         f"({stats.pickle_members} so far)")
                    continue
                if field not in FIELDS:
                    continue
                data = tar.extractfile(member).read()
                if current is not None and current["__key__"] != key:
                    stats.samples += 1
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[field] = data
                stats.bytes += len(data)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        stats.damaged_shards += 1
        warn(f"{url}: damaged or unreadable tar, rest of shard skipped: {e} "
             f"({stats.damaged_shards} damaged so far)")
        # The sample being assembled when the damage hit may lack members: drop it.
        return
    if current is not None:
        stats.samples += 1
        yield current


def iter_shards(urls: Iterable, stats: ReadStats) -> Iterator[dict]:
    """Raw samples of a stream of shards (plain paths or webdataset's `{"url": ...}` dicts)."""
    for item in urls:
        url = item["url"] if isinstance(item, dict) else item
        yield from iter_samples(url, stats)

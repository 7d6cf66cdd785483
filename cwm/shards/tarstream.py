"""Reading raw samples out of shard tars without trusting them: a shard is data, never code.

webdataset's own tar expander is replaced here because a training run must survive hostile or
damaged shards and say what it skipped:

- members that could be pickles (`.pyd`, `.pth`, `.pt`, `.pkl`, `.pickle`, `.ckpt`) are never
  read, only counted, with a warning;
- member names that are absolute or contain `..`, and links/devices, are skipped and counted
  (nothing is ever extracted to disk, but such a shard was not written by ingest);
- a truncated or unreadable tar ends that shard with a warning; the samples read before the damage
  are kept (their members were complete) and training goes on with the next shard.

Local uncompressed shards are memory-mapped and their headers parsed here (`_mapped_members`):
tarfile's header parsing and the copy of every member into a new bytes object cost ~230 us per
sample, more than everything else the loader does; mapped, a `frames.npy` member is a read-only
view of the page cache (~15 us), copied once, window only, into the batch. (A shard truncated
*while* a worker has it mapped would fault that worker; shards are only ever replaced by rename.)
Compressed tars, URLs and pipes go through tarfile.

A raw sample is `{"__key__", "__url__", "<field>": bytes, ...}` (`frames.npy` may be a read-only
memoryview) for the fields in `FIELDS`; the
members of one sample are consecutive in the tar and share the key (webdataset's convention: the
key is the member path up to the first dot of its base name).
"""

from __future__ import annotations

import mmap
import os
import tarfile
import warnings
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, Iterator


FIELDS = ("frames.npy", "frames.mp4", "meta.json")
PICKLE_EXTENSIONS = ("pyd", "pth", "pt", "pkl", "pickle", "ckpt")


class ShardWarning(UserWarning):
    """Something in a shard was skipped (unsafe member, damaged tar, unusable sample)."""


# The one channel for data problems: each kind of problem is warned about at most this many times
# per shard (and process), then once more to say the rest are only counted. A shard of 100,000
# bad members must not write 100,000 lines (nor fill the warnings registry with unique messages).
WARNINGS_PER_KIND = 3


@dataclass
class ReadStats:
    """What this process skipped while reading; printed by inspect/verify, named in warnings.

    `per_shard[url][kind]` counts each problem kind (a field name below) per shard.
    """

    shards: int = 0
    samples: int = 0
    bytes: int = 0
    damaged_shards: int = 0
    unsafe_members: int = 0
    pickle_members: int = 0
    bad_samples: int = 0
    short_samples: int = 0
    per_shard: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """The totals (without the per-shard breakdown)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_shard"}

    def problem(self, url: str, kind: str, message: str) -> None:
        """Count one problem of `kind` in shard `url`; warn only the first few of each kind."""
        setattr(self, kind, getattr(self, kind) + 1)
        counts = self.per_shard.setdefault(url, {})
        n = counts[kind] = counts.get(kind, 0) + 1
        if n == WARNINGS_PER_KIND + 1:
            message = f"further {kind.replace('_', ' ')} of this shard are counted, not shown"
        if n <= WARNINGS_PER_KIND + 1:
            warnings.warn(f"{url}: {message}", ShardWarning, stacklevel=2)

    def problem_lines(self) -> list[str]:
        """One line per shard with problems: `url: 3 bad samples, 1 damaged shards`."""
        return [f"{url}: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in kinds.items())
                for url, kinds in self.per_shard.items()]


def _is_unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts


def _split_name(name: str) -> tuple[str, str]:
    """`dir/abc_0001.frames.npy` -> (`dir/abc_0001`, `frames.npy`)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


# A member as the readers below yield it: name, kind ("file", "dir" or "other": links, devices)
# and a function returning its data (called only for members that are kept).
Member = tuple[str, str, Callable[[], object]]

_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_BLOCK = 512


class DamagedTar(ValueError):
    pass


def _tarfile_members(url: str) -> Iterator[Member]:
    if os.path.isfile(url):
        # random access: headers by seeking, each member's data in one read call
        tar = tarfile.open(url, mode="r:*")
    else:
        # webdataset imports torch: only a remote shard pays for it (cwm-ingest never does)
        from webdataset.gopen import gopen
        tar = tarfile.open(fileobj=gopen(url, "rb"), mode="r|*")
    with tar:
        last = -1
        for member in tar:
            # tarfile follows a negative pax size back to an earlier header and loops forever:
            # a member that does not start after the previous one means the tar is damaged.
            if member.offset <= last or member.size < 0:
                raise DamagedTar(f"member {member.name!r} at byte {member.offset} does not "
                                 f"follow the previous one")
            last = member.offset
            kind = "file" if member.isfile() else "dir" if member.isdir() else "other"
            yield member.name, kind, lambda m=member: tar.extractfile(m).read()


def _nts(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[0] == 0xFF:                       # GNU base-256, negative
        raise DamagedTar(f"negative number field {bytes(field)!r}")
    if field[0] & 0x80:                        # GNU base-256 (sizes of 8 GiB and more)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise DamagedTar(f"bad number field {bytes(field)!r}") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise DamagedTar("bad pax header")
        length = int(data[pos:space])
        if length <= 0:
            raise DamagedTar("bad pax header")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _mapped_members(path: str) -> Iterator[Member]:
    """The members of an uncompressed tar file, parsed off a read-only memory map."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)   # ValueError when empty
    view = memoryview(mm)
    end, pos = len(mm), 0
    long_name, pax = None, {}
    while True:
        if pos == end:
            return                              # no end-of-archive blocks: accept, as tarfile does
        if pos + _BLOCK > end:
            raise DamagedTar(f"truncated header at byte {pos}")
        header = mm[pos : pos + _BLOCK]
        if header.count(0) == _BLOCK:
            return                              # end-of-archive marker
        stored = _number(header[148:156])
        if stored != sum(header) - sum(header[148:156]) + 8 * 32:
            raise DamagedTar(f"bad header checksum at byte {pos}")
        size = _number(header[124:136])
        kind_flag = header[156:157]
        name = _nts(header[0:100])
        if header[257:262] == b"ustar" and header[345] != 0:
            name = _nts(header[345:500]) + "/" + name
        if "size" in pax:
            size = int(pax["size"])
        if size < 0:
            # A negative size would send the reader back to an earlier header, forever (Python's
            # tarfile loops on such a file): every header must move the position forward.
            raise DamagedTar(f"negative member size {size} at byte {pos}")
        start, pos = pos + _BLOCK, pos + _BLOCK + (size + _BLOCK - 1) // _BLOCK * _BLOCK
        if start + size > end:
            raise DamagedTar(f"member {name!r} truncated ({end - start} of {size} bytes)")
        if kind_flag in (b"x", b"g", b"L", b"K"):  # metadata for the next member
            if kind_flag == b"x":
                pax = _pax_records(mm[start : start + size])
            elif kind_flag == b"L":
                long_name = _nts(mm[start : start + size])
            continue
        name = pax.get("path", long_name or name)
        long_name, pax = None, {}
        kind = "file" if kind_flag in (b"0", b"\0", b"7") else "dir" if kind_flag == b"5" else "other"
        if name.endswith(".npy") and size > 4096:
            # large arrays stay in the page cache; the view keeps the map alive
            yield name, kind, lambda a=start, b=start + size: view[a:b]
        else:
            yield name, kind, lambda a=start, b=start + size: mm[a:b]


def _members(url: str) -> Iterator[Member]:
    if os.path.isfile(url):
        with open(url, "rb") as f:
            magic = f.read(6)
        if magic and not magic.startswith(_COMPRESSED):
            return _mapped_members(url)
    return _tarfile_members(url)


def iter_samples(url: str, stats: ReadStats) -> Iterator[dict]:
    """Raw samples of one shard, in tar order; never raises on damaged or hostile content."""
    stats.shards += 1
    current: dict | None = None
    try:
        for name, kind, read in _members(url):
            if kind == "dir":
                continue
            if kind != "file" or _is_unsafe(name):
                stats.problem(url, "unsafe_members", f"skipped unsafe tar member {name!r}")
                continue
            key, field = _split_name(name)
            if field.rsplit(".", 1)[-1].lower() in PICKLE_EXTENSIONS:
                stats.problem(url, "pickle_members",
                              f"ignored {name!r}: pickle-capable members are never loaded")
                continue
            if field not in FIELDS:
                continue
            data = read()
            if current is not None and current["__key__"] != key:
                stats.samples += 1
                yield current
                current = None
            if current is None:
                current = {"__key__": key, "__url__": url}
            current[field] = data
            stats.bytes += len(data)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        stats.problem(url, "damaged_shards",
                      f"damaged or unreadable tar, rest of shard skipped: {e}")
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

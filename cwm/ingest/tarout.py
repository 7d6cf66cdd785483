"""A minimal tar writer that says where each sample's bytes are (stdlib only: no torch).

Each sample is written as consecutive members `<key>.<field>` (webdataset's layout), and
`write_sample` returns the byte range `(offset, length)` those members occupy. A tar member is a
self-contained run of 512-byte blocks (header, long-name blocks, data, padding), so a range can
be copied verbatim into another tar: that is how shards are assembled from parts
(`cwm.ingest.shards_out`). Headers carry a fixed mtime, owner and mode, so the same samples give
the same bytes.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK          # tar's record size: the archive ends padded to a multiple of it


def member_bytes(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    info.mtime = 0
    info.uname = info.gname = "cwm"
    pad = -len(data) % BLOCK
    return info.tobuf(format=tarfile.GNU_FORMAT) + data + b"\0" * pad


def sample_bytes(sample: dict) -> bytes:
    """The members of one sample dict (`__key__` + fields of bytes), in field order."""
    key = sample["__key__"]
    return b"".join(member_bytes(f"{key}.{field}", data)
                    for field, data in sample.items() if field != "__key__")


class TarOut:
    """Append samples (or raw member ranges) to an open binary file; `close()` ends the tar."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.offset = 0

    def write_raw(self, blob: bytes) -> tuple[int, int]:
        start = self.offset
        self.stream.write(blob)
        self.offset += len(blob)
        return start, len(blob)

    def write_sample(self, sample: dict) -> tuple[int, int]:
        return self.write_raw(sample_bytes(sample))

    def close(self) -> None:
        end = self.offset + 2 * BLOCK
        self.stream.write(b"\0" * (2 * BLOCK + (-end % RECORD)))
        self.stream.flush()

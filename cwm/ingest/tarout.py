"""A minimal tar writer that says where each sample's bytes are (stdlib only: no torch).

Each sample is written as consecutive members `<key>.<field>` (webdataset's layout), and
`write_sample` returns the byte range `(offset, length)` those members occupy. A tar member is a
self-contained run of 512-byte blocks (header, long-name blocks, data, padding), so a range can
be copied verbatim into another tar: that is how shards are assembled from parts
(`cwm.ingest.assemble`). Headers carry a fixed mtime, owner and mode, so the same samples give
the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK          # tar's record size: the archive ends padded to a multiple of it


def member_buffers(name: str, data) -> list:
    """One member's bytes as buffers to write in order; `data` is bytes or a tuple of buffers
    (`cwm.shards.format.npy_buffers`), written as they are, without joining them."""
    parts = data if isinstance(data, tuple) else (data,)
    size = sum(memoryview(part).nbytes for part in parts)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.mtime = 0
    info.uname = info.gname = "cwm"
    return [info.tobuf(format=tarfile.GNU_FORMAT), *parts, b"\0" * (-size % BLOCK)]


def sample_buffers(sample: dict) -> list:
    """The members of one sample dict (`__key__` + fields), in field order."""
    key = sample["__key__"]
    return [buf for field, data in sample.items() if field != "__key__"
            for buf in member_buffers(f"{key}.{field}", data)]


class TarOut:
    """Append samples (or member ranges of another tar) to an open binary file; `close()` ends
    the tar."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.offset = 0

    def copy_range(self, fd: int, offset: int, length: int) -> None:
        """Append `length` bytes of the file `fd` from `offset` (one sample of a part): copied
        inside the kernel (`copy_file_range`) where the filesystem allows, else read and
        written. Raises EOFError when the file ends first."""
        self.stream.flush()
        done = 0
        with contextlib.suppress(OSError, AttributeError):   # unsupported here: copy by hand
            while done < length:
                n = os.copy_file_range(fd, self.stream.fileno(), length - done, offset + done)
                if n == 0:
                    break
                done += n
        while done < length:
            blob = os.pread(fd, length - done, offset + done)
            if not blob:
                raise EOFError(f"the file ends before byte {offset + length}")
            self.stream.write(blob)
            done += len(blob)
        self.offset += length

    def write_sample(self, sample: dict) -> tuple[int, int]:
        start = self.offset
        for buf in sample_buffers(sample):
            self.stream.write(buf)
            self.offset += memoryview(buf).nbytes
        return start, self.offset - start

    def close(self) -> None:
        end = self.offset + 2 * BLOCK
        self.stream.write(b"\0" * (2 * BLOCK + (-end % RECORD)))
        self.stream.flush()

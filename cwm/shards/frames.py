"""The frames of a raw sample, decoded no further than the clip needs.

For `frames.npy` the array is a zero-copy view on the member's bytes: only the header is parsed,
and the one copy of the clip's pixels happens when the batch is assembled (`np.load` would copy
the whole segment first, typically twice the window). The header parser accepts only uint8,
C-ordered, [T, H, W, 3] arrays, so it can never reach a pickle. `frames.mp4` goes through the
format's decoder (`cwm.shards.format.decode_frames`).
"""

from __future__ import annotations

import ast
import functools
import math
import struct

import numpy as np

from cwm.shards.format import decode_frames

_MAGIC = b"\x93NUMPY"


@functools.lru_cache(maxsize=256)
def _parse_header(raw: bytes):
    # The header is a Python dict literal of plain strings, tuples and bools: literal_eval
    # evaluates exactly that and nothing executable. Segments of one dataset share a handful of
    # headers, hence the cache.
    return ast.literal_eval(raw.decode("latin1"))


def npy_view(data: bytes) -> np.ndarray:
    """uint8 [T, H, W, 3] read-only view of a `.npy` payload; ValueError for anything else."""
    if data[:6] != _MAGIC or len(data) < 10:
        raise ValueError("not a .npy payload")
    major = data[6]
    if major == 1:
        (header_len,) = struct.unpack("<H", data[8:10])
        start = 10
    elif major in (2, 3):
        (header_len,) = struct.unpack("<I", data[8:12])
        start = 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    header = _parse_header(bytes(data[start : start + header_len]))
    if not isinstance(header, dict) or header.get("descr") not in ("|u1", "<u1", ">u1"):
        raise ValueError(f"frames.npy must be uint8, header {header!r}")
    if header.get("fortran_order"):
        raise ValueError("frames.npy must be C-ordered")
    shape = header.get("shape")
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3
            and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"frames.npy must be [T, H, W, 3], got shape {shape!r}")
    offset = start + header_len
    count = math.prod(shape)   # (np.prod costs ~25 us a call)
    if len(data) - offset < count:
        raise ValueError(f"frames.npy holds {len(data) - offset} bytes, shape {shape} needs {count}")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=offset).reshape(shape)


def sample_frames(sample: dict) -> np.ndarray:
    """uint8 [T, H, W, 3] of a raw sample (a view for npy storage, decoded for mp4)."""
    if "frames.npy" in sample:
        return npy_view(sample["frames.npy"])
    return decode_frames(sample)

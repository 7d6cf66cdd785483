"""The part/shard tar writer: samples written from buffers, ranges copied between tars."""

import io
import os
import tarfile

import numpy as np
import pytest

from cwm.ingest.tarout import TarOut
from cwm.shards.format import make_sample


def _frames(n):
    return np.random.default_rng(n).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_buffers_give_the_bytes_of_a_joined_sample(tmp_path):
    """`make_sample(buffers=True)` (the npy member as header + the frames' memory) writes
    exactly what the same sample of joined bytes writes, and tarfile reads it back."""
    paths = []
    for buffers in (False, True):
        paths.append(tmp_path / f"{buffers}.tar")
        with open(paths[-1], "wb") as f:
            tar = TarOut(f)
            ranges = [tar.write_sample(make_sample(f"v_{i:04d}", _frames(25 + i), {"i": i},
                                                   buffers=buffers)) for i in range(3)]
            tar.close()
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with tarfile.open(paths[1]) as t:
        member = t.extractfile("v_0001.frames.npy").read()
    assert np.array_equal(np.load(io.BytesIO(member)), _frames(26))
    assert ranges[0][0] == 0 and ranges[1][0] == sum(ranges[0])


def test_copied_ranges_make_the_same_tar(tmp_path):
    """Shards are assembled by copying sample ranges out of parts (copy_file_range)."""
    part = tmp_path / "part.tar"
    with open(part, "wb") as f:
        tar = TarOut(f)
        ranges = [tar.write_sample(make_sample(f"v_{i:04d}", _frames(25 + i), {"i": i},
                                               buffers=True)) for i in range(3)]
        tar.close()
    shard, direct = tmp_path / "shard.tar", tmp_path / "direct.tar"
    fd = os.open(part, os.O_RDONLY)
    try:
        with open(shard, "wb") as f:
            tar = TarOut(f)
            for offset, length in (ranges[2], ranges[0]):
                tar.copy_range(fd, offset, length)
            tar.close()
    finally:
        os.close(fd)
    with open(direct, "wb") as f:
        tar = TarOut(f)
        for i in (2, 0):
            tar.write_sample(make_sample(f"v_{i:04d}", _frames(25 + i), {"i": i}))
        tar.close()
    assert shard.read_bytes() == direct.read_bytes()


def test_a_part_shorter_than_its_record_is_an_error(tmp_path):
    part = tmp_path / "part.tar"
    part.write_bytes(b"x" * 1000)
    fd = os.open(part, os.O_RDONLY)
    try:
        with open(tmp_path / "shard.tar", "wb") as f, pytest.raises(EOFError):
            TarOut(f).copy_range(fd, 512, 1024)
    finally:
        os.close(fd)

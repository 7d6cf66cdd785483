"""The memory-mapped tar reader against Python's tarfile, on the tar dialects writers produce."""

import gzip
import io
import tarfile

import numpy as np
import pytest

from cwm.shards.format import make_sample
from cwm.shards.frames import sample_frames
from cwm.shards.tarstream import ReadStats, _tarfile_members, iter_samples
from tests.shards.conftest import segment

LONG = "a_directory_name_long_enough/" * 5        # > 100 characters: needs an extension header


def _write(path, fmt, keys, prefix=""):
    with tarfile.open(path, "w", format=fmt) as tar:
        tar.addfile(_dir(prefix + "d"))
        for n, key in enumerate(keys):
            sample = make_sample(key, segment(n, 26 + n), {"dataset": "syn", "i": n})
            for field, data in sample.items():
                if field != "__key__":
                    info = tarfile.TarInfo(f"{prefix}{key}.{field}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def _read(path):
    stats = ReadStats()
    samples = list(iter_samples(str(path), stats))
    return samples, stats


@pytest.mark.parametrize("fmt, prefix", [
    (tarfile.USTAR_FORMAT, "short/"),
    (tarfile.USTAR_FORMAT, "p" * 120 + "/"),          # name split into ustar prefix + name
    (tarfile.GNU_FORMAT, LONG),                        # GNU long-name members
    (tarfile.PAX_FORMAT, LONG + "caf\u00e9_\u00fc/"),    # pax path records, non-ASCII
])
def test_mapped_reader_matches_tarfile(tmp_path, fmt, prefix):
    path = tmp_path / "s-000000.tar"
    keys = [f"v{i}_0000" for i in range(3)]
    _write(path, fmt, keys, prefix)
    samples, stats = _read(path)
    assert [s["__key__"] for s in samples] == [prefix + k for k in keys]
    assert stats.damaged_shards == 0 and stats.unsafe_members == 0
    # the same members, byte for byte, as tarfile reads them
    reference = {name: read() for name, kind, read in _tarfile_members(str(path)) if kind == "file"}
    for s in samples:
        for field in ("frames.npy", "meta.json"):
            assert bytes(s[field]) == reference[f"{s['__key__']}.{field}"]
    frames = sample_frames(samples[2])
    assert frames.shape == (28, 64, 64, 3) and not frames.flags.writeable
    np.testing.assert_array_equal(frames, segment(2, 28))


def test_compressed_shard_is_read_through_tarfile(tmp_path):
    plain = tmp_path / "s-000000.tar"
    _write(plain, tarfile.PAX_FORMAT, ["v0_0000", "v1_0000"])
    packed = tmp_path / "s-000001.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, _ = _read(plain)
    b, stats = _read(packed)
    assert [s["__key__"] for s in b] == ["v0_0000", "v1_0000"] and stats.damaged_shards == 0
    assert all(bytes(x["frames.npy"]) == bytes(y["frames.npy"]) for x, y in zip(a, b))


def test_corrupt_header_ends_the_shard_after_the_complete_samples(tmp_path):
    path = tmp_path / "s-000000.tar"
    _write(path, tarfile.USTAR_FORMAT, ["v0_0000", "v1_0000", "v2_0000"])
    data = bytearray(path.read_bytes())
    # the header of v2's first member: flip a byte of its name. v1, the sample in progress when
    # the damage is found, cannot be known complete and is dropped too.
    at = data.find(b"v2_0000.")
    data[at] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum"):
        samples, stats = _read(path)
    assert [s["__key__"] for s in samples] == ["v0_0000"] and stats.damaged_shards == 1

"""Hostile tar headers: every read of a shard ends, with samples or a recorded skip, and warnings
about a shard's problems stay bounded however many there are."""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
import threading
import warnings
from pathlib import Path

import pytest

from cwm.shards.format import make_sample
from cwm.shards.inspect import format_report, inspect_spec
from cwm.shards.tarstream import WARNINGS_PER_KIND, ReadStats, ShardWarning, iter_samples
from cwm.shards.verify import verify
from tests.shards.conftest import segment

TIME_BOUND_S = 10.0


def _add(tar: tarfile.TarFile, name: str, data: bytes, pax: dict | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    if pax:
        info.pax_headers = pax
    tar.addfile(info, io.BytesIO(data))


def _shard(path: Path, keys=("a_0000", "b_0000", "c_0000", "d_0000"), pax: bool = True) -> Path:
    """A real shard in PAX format; every member carries a pax record when `pax`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i, key in enumerate(keys):
            for field, data in make_sample(key, segment(i, 26), {"dataset": "syn"}).items():
                if field != "__key__":
                    _add(tar, f"{key}.{field}", data, {"comment": "x"} if pax else None)
    return path


def _read_bounded(path: Path) -> tuple[list[dict], ReadStats]:
    """Read every sample of `path` in a thread; fail the test if it does not end in time."""
    result: dict = {}

    def run():
        stats = ReadStats()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShardWarning)
            result["samples"] = list(iter_samples(str(path), stats))
        result["stats"] = stats

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIME_BOUND_S)
    assert not thread.is_alive(), f"reading {path.name} did not end within {TIME_BOUND_S} s"
    assert "stats" in result, f"reading {path.name} raised instead of recording the damage"
    return result["samples"], result["stats"]


def _header_offsets(path: Path) -> list[int]:
    """Byte offsets of every 512-byte header block (pax headers and member headers)."""
    data = path.read_bytes()
    offsets, pos = [], 0
    while pos + 512 <= len(data) and data[pos:pos + 512].count(0) != 512:
        offsets.append(pos)
        size = int(data[pos + 124:pos + 136].split(b"\0")[0].strip() or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    return offsets


def _set_checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)


def _with_negative_pax_size(path: Path, size: int) -> Path:
    """A shard whose 3rd member's pax record says `size` (its header keeps the true size)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i, key in enumerate(("a_0000", "b_0000")):
            for field, data in make_sample(key, segment(i, 26), {"dataset": "syn"}).items():
                if field != "__key__":
                    _add(tar, f"{key}.{field}", data,
                         {"size": str(size)} if key == "b_0000" and field == "meta.json" else None)
    return path


@pytest.mark.parametrize("size", [-1536, -2048, -512])
def test_negative_pax_size_ends_the_shard_instead_of_looping(tmp_path, size):
    # -1536 sends a naive reader (and Python's tarfile) back to the same pax header forever
    bad = _with_negative_pax_size(tmp_path / "s.tar", size)
    samples, stats = _read_bounded(bad)
    assert stats.damaged_shards == 1
    assert len(samples) <= 1                            # what came before the damage


def test_negative_pax_size_in_a_compressed_shard_ends_too(tmp_path):
    bad = _with_negative_pax_size(tmp_path / "s.tar", -1536)
    gz = tmp_path / "s.tar.gz"
    gz.write_bytes(gzip.compress(bad.read_bytes()))
    samples, stats = _read_bounded(gz)
    assert stats.damaged_shards == 1


def test_fuzzed_headers_always_end_with_samples_or_a_recorded_skip(tmp_path):
    pristine_path = _shard(tmp_path / "fuzz.tar")
    pristine = pristine_path.read_bytes()
    offsets = _header_offsets(pristine_path)
    fields = [(0, 100), (124, 136), (156, 157), (345, 500)]   # name, size, type, prefix
    rng = random.Random(0)
    for i in range(150):
        data = bytearray(pristine)
        for _ in range(rng.randint(1, 3)):
            header = offsets[rng.randrange(len(offsets))]
            kind = rng.random()
            if kind < 0.4:                               # a random size, as octal or base-256
                value = rng.choice([0, 1, 511, 512, 513, 10**6, 2**40, rng.randrange(8**11)])
                if rng.random() < 0.3:
                    field = bytes([0xFF if rng.random() < 0.5 else 0x80]) + value.to_bytes(11, "big")
                else:
                    field = b"%011o\0" % (value % 8**11)
                data[header + 124:header + 136] = field
            elif kind < 0.7:                             # random bytes in one field
                a, b = fields[rng.randrange(len(fields))]
                data[header + a:header + b] = bytes(rng.randrange(256) for _ in range(b - a))
            else:                                        # random bytes anywhere in the block
                j = rng.randrange(512)
                data[header + j] = rng.randrange(256)
            if rng.random() < 0.8:                       # keep the checksum valid most times
                block = bytearray(data[header:header + 512])
                _set_checksum(block)
                data[header:header + 512] = block
        path = tmp_path / f"fuzz-{i:03d}.tar"
        path.write_bytes(bytes(data))
        samples, stats = _read_bounded(path)
        problems = (stats.damaged_shards + stats.unsafe_members + stats.pickle_members)
        assert samples or problems, f"mutation {i}: no sample and nothing recorded"
        path.unlink()


def test_warnings_are_bounded_per_shard_and_counted(tmp_path):
    path = tmp_path / "many-000000.tar"
    with tarfile.open(path, "w") as tar:
        for field, data in make_sample("ok_0000", segment(1, 26), {"dataset": "syn"}).items():
            if field != "__key__":
                _add(tar, f"ok_0000.{field}", data)
        for i in range(2000):                              # 2,000 pickle-capable members
            _add(tar, f"p{i}_0000.model.pth", b"x")
        for i in range(500):                               # 500 unsafe members
            _add(tar, f"../up{i}_0000.meta.json", b"{}")
    stats = ReadStats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = list(iter_samples(str(path), stats))
    assert [s["__key__"] for s in samples] == ["ok_0000"]
    shard_warnings = [w for w in caught if issubclass(w.category, ShardWarning)]
    assert len(shard_warnings) == 2 * (WARNINGS_PER_KIND + 1)
    assert stats.pickle_members == 2000 and stats.unsafe_members == 500
    assert stats.per_shard[str(path)] == {"pickle_members": 2000, "unsafe_members": 500}
    report = inspect_spec(str(path))
    assert "2000 pickle members, 500 unsafe members" in format_report(report)
    result = verify(str(path))
    assert f"{path}: 2000 pickle members in this shard" in result.problems


def test_deeply_nested_meta_json_is_a_bad_sample_not_a_crash(tmp_path):
    path = tmp_path / "deep-000000.tar"
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    with tarfile.open(path, "w") as tar:
        sample = make_sample("a_0000", segment(1, 26), {"dataset": "syn"})
        _add(tar, "a_0000.frames.npy", sample["frames.npy"])
        _add(tar, "a_0000.meta.json", deep)
    result = verify(str(path))
    assert not result.ok
    assert any("nested too deeply" in p for p in result.problems)
    json.dumps(result.problems)                           # the report itself is plain data

"""Hostile and damaged shards, as real tar files: nothing is unpickled, nothing crashes."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from cwm.shards.format import make_sample
from cwm.shards.loader import make_clip_loader
from cwm.shards.tarstream import ReadStats, ShardWarning, iter_samples
from tests.shards.conftest import segment, write_shards


class _Boom:
    """Unpickling this creates a marker file: proof that something loaded a pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _good(tar, key, length=30):
    for field, data in make_sample(key, segment(1, length), {"dataset": "syn"}).items():
        if field != "__key__":
            _add(tar, f"{key}.{field}", data)


def test_pickle_members_are_never_loaded(tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(str(marker)))
    path = tmp_path / "evil-000000.tar"
    with tarfile.open(path, "w") as tar:
        _good(tar, "a_0000")
        _add(tar, "a_0000.extra.pyd", payload)
        _add(tar, "a_0000.model.pth", payload)
        _add(tar, "b_0000.pickle", payload)
        # an .npy holding a pickled object array is data too
        buf = io.BytesIO()
        np.save(buf, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
        _add(tar, "c_0000.frames.npy", buf.getvalue())
        _add(tar, "c_0000.meta.json", b"{}")
        _good(tar, "d_0000")
    stats = ReadStats()
    with pytest.warns(ShardWarning, match="pickle"):
        keys = [s["__key__"] for s in iter_samples(str(path), stats)]
    assert stats.pickle_members == 3
    assert keys == ["a_0000", "c_0000", "d_0000"]
    with pytest.warns(ShardWarning, match="c_0000"):
        loader = make_clip_loader(str(path), batch_size=4, train=False, num_workers=0)
        batches = list(loader)
    assert [k for b in batches for k in b["key"]] == ["a_0000", "d_0000"]
    assert loader.stats.bad_samples == 1
    assert not marker.exists()


def test_path_traversal_and_link_members_are_skipped_and_counted(tmp_path):
    path = tmp_path / "trav-000000.tar"
    with tarfile.open(path, "w") as tar:
        _good(tar, "ok_0000")
        _add(tar, "../../etc/evil_0000.frames.npy", b"x")
        _add(tar, "/abs/evil_0001.meta.json", b"{}")
        link = tarfile.TarInfo("lnk_0000.frames.npy")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        _good(tar, "ok_0001")
    stats = ReadStats()
    with pytest.warns(ShardWarning, match="unsafe tar member"):
        keys = [s["__key__"] for s in iter_samples(str(path), stats)]
    assert keys == ["ok_0000", "ok_0001"]
    assert stats.unsafe_members == 3


def test_truncated_tar_keeps_complete_samples_and_training_goes_on(tmp_path):
    paths = write_shards(tmp_path, shards=2, per_shard=6, lengths=(30, 30))
    data = open(paths[0], "rb").read()
    # cut in the middle of the 4th sample's frames (each sample ~93 KB of npy)
    with open(paths[0], "wb") as f:
        f.write(data[: int(len(data) * 0.55)])
    stats = ReadStats()
    with pytest.warns(ShardWarning, match="damaged"):
        keys = [s["__key__"] for s in iter_samples(paths[0], stats)]
    assert stats.damaged_shards == 1 and 1 <= len(keys) < 6
    with pytest.warns(ShardWarning, match="damaged"):
        loader = make_clip_loader(str(tmp_path), batch_size=2, num_workers=0, shuffle_buffer=2)
        batches = [b for _, b in zip(range(12), loader)]
    assert len(batches) == 12 and all(b["frames"].dtype == torch.uint8 for b in batches)
    assert loader.stats.damaged_shards >= 1


def test_garbage_file_is_a_damaged_shard(tmp_path):
    path = tmp_path / "junk-000000.tar"
    path.write_bytes(b"this is not a tar file at all" * 50)
    stats = ReadStats()
    with pytest.warns(ShardWarning):
        assert list(iter_samples(str(path), stats)) == []
    assert stats.damaged_shards == 1

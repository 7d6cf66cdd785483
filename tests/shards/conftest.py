"""Real shard tars built in the test's tmp dir with the format's own writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from cwm.shards.format import make_sample


def segment(key_seed: int, length: int) -> np.ndarray:
    """uint8 [length, 64, 64, 3] whose frame t is filled with a value that encodes t.

    Channel 0 = t, channel 1 = key_seed % 256, so any window read back names its own start.
    """
    frames = np.zeros((length, 64, 64, 3), np.uint8)
    frames[..., 0] = np.arange(length, dtype=np.uint8)[:, None, None]
    frames[..., 1] = key_seed % 256
    frames[..., 2] = 128
    return frames


def write_shards(directory: Path, prefix: str = "d", shards: int = 4, per_shard: int = 6,
                 lengths=(25, 40), mp4_every: int = 0, dataset: str = "syn",
                 index: bool = True) -> list[str]:
    """`<prefix>-%06d.tar` with `per_shard` samples each (+ `_index.json`); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(prefix) + shards)
    paths, entries, n = [], [], 0
    for s in range(shards):
        path = directory / f"{prefix}-{s:06d}.tar"
        with wds.TarWriter(str(path)) as w:
            for i in range(per_shard):
                length = int(rng.integers(lengths[0], lengths[1] + 1))
                storage = "mp4" if mp4_every and n % mp4_every == 0 else "npy"
                meta = {"dataset": dataset, "video_id": f"{prefix}{s}v{i}"}
                w.write(make_sample(f"{prefix}{s}v{i}_0000", segment(n, length), meta, storage))
                n += 1
        paths.append(str(path))
        entries.append({"file": path.name, "samples": per_shard})
    if index:
        (directory / "_index.json").write_text(json.dumps({"shards": entries}))
    return paths


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory) -> Path:
    """4 shards x 6 samples of 25..40 frames, every 8th sample stored as mp4."""
    d = tmp_path_factory.mktemp("shards")
    write_shards(d, mp4_every=8)
    return d

"""Write small shards of synthetic clips in the real sample format, for trainer tests."""

from __future__ import annotations

from pathlib import Path

import webdataset as wds

from cwm.shards.format import make_sample

from tests.model.clips import moving_squares


def write_clip_shards(out_dir: Path, n_clips: int = 8, length: int = 12, n_shards: int = 2,
                      seed: int = 0) -> str:
    """n_clips segments over n_shards tar files; returns a brace spec naming them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = moving_squares(n_clips, length, seed=seed)
    for s in range(n_shards):
        with wds.TarWriter(str(out_dir / f"clips-{s:06d}.tar")) as sink:
            for i in range(s, n_clips, n_shards):
                sink.write(make_sample(f"clip{i:03d}_0000", clips[i],
                                       {"dataset": "test", "video_id": f"clip{i:03d}"}))
    return str(out_dir / f"clips-{{000000..{n_shards - 1:06d}}}.tar")

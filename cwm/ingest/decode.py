"""PyAV decoding of one input (a video file or a run of still frames) to `[N, S, S, 3] uint8`.

An input can be decoded whole or as a range of its segments (`SegmentRange`, planned for long
inputs so that several workers share one video). A range that starts at segment 0 decodes from the
start; a later range finds its frames in a demux-only pass over the packets (one frame per packet,
display order = sorted timestamps), seeks once to the keyframe before its first frame and drops
what comes before it. The frames it returns are bit-identical to the same frames of a whole-file
decode; when that cannot be guaranteed (no or repeated timestamps, a seek that fails or lands
after the first frame, a frame count that does not match) the range is decoded from the start of
the file instead and `seek_fallback` says so. Each kept frame goes through one
`VideoReformatter` per input, which converts to RGB and resizes in a single swscale call and
keeps its scaling context between frames (SPEC §2: 3x faster than `frame.reformat()` per frame),
and is copied straight into one array for the whole input (`_Frames`).
Decoder and swscale run single-threaded: parallelism is one worker per core (threads: PyAV
releases the GIL in both), and PyAV >= 17's default multi-threaded swscale is slower at these
sizes. The per-frame loops stop at the next frame when the run is cancelled (`cwm.ingest.cancel`).

Anything wrong with the input raises `InputError(reason)`; the shard writer records it and
moves on. Nothing here raises for a bad file in any other way.
"""

from __future__ import annotations

import math
import os
import stat
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from cwm.ingest import cancel
from cwm.ingest.config import FrameOptions
from cwm.ingest.geometry import Fit, person_square, plan_fit
from cwm.ingest.sampling import FrameSelector
from cwm.ingest.sources.base import VideoInput

_INTERPOLATION = {
    "area": Interpolation.AREA,
    "bilinear": Interpolation.BILINEAR,
    "bicubic": Interpolation.BICUBIC,
    "fast-bilinear": Interpolation.FAST_BILINEAR,
    "point": Interpolation.POINT,
}
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError)


class InputError(Exception):
    """This input cannot be ingested; the message is the reason recorded in errors.jsonl."""


@dataclass
class DecodedVideo:
    """frames [N, S, S, 3] uint8 RGB; source_indices [N] position of each in the source."""

    frames: np.ndarray
    source_indices: np.ndarray
    source_fps: float
    sampled_fps: float
    width: int            # displayed source size (after rotation)
    height: int
    rotation: int         # degrees, as stored in the display matrix
    codec: str
    decoded: int          # source frames decoded (kept or not)
    first_segment: int = 0   # frames[0] starts this segment of the whole video
    seek_fallback: bool = False
    meta: dict = field(default_factory=dict)   # what only decoding learns (an episode's return)


@dataclass(frozen=True)
class SegmentRange:
    """Segments [first, end) of one input (end None: to the end of the input)."""

    first: int = 0
    end: int | None = None

    def kept_slice(self, segment_frames: int, min_frames: int) -> tuple[int, int | None]:
        """The range as positions [lo, hi) among the input's kept frames, with a look-ahead of
        `min_frames`: a video ending less than that after the range keeps its short tail in the
        range's last segment, as a whole-file decode does (`cwm.ingest.segment`)."""
        return (self.first * segment_frames,
                None if self.end is None else self.end * segment_frames + min_frames)

    def trim(self, n: int, segment_frames: int, min_frames: int) -> int:
        """How many of the `n` frames decoded for [lo, hi) belong to this range: the look-ahead
        stays only when the video ended inside it (fewer than `min_frames` came)."""
        if self.end is None:
            return n
        core = (self.end - self.first) * segment_frames
        return n if n - core < min_frames else core


WHOLE = SegmentRange()


class _Converter:
    """One reformatter for the whole input; re-plans only if the frame geometry changes."""

    def __init__(self, opts: FrameOptions):
        self.opts = opts
        self.reformatter = VideoReformatter()
        self.interpolation = _INTERPOLATION[opts.interpolation]
        self.fit: Fit | None = None
        self._key = None
        self.display = (0, 0)
        self.rotation = 0
        self.crop_reformatter: VideoReformatter | None = None

    def __call__(self, frame: av.VideoFrame, sample_aspect: float, crop=None) -> np.ndarray:
        if crop is not None:
            return self._cropped(frame, crop)
        rotation = int(frame.rotation or 0)
        key = (frame.width, frame.height, rotation)
        if key != self._key:
            if min(frame.width, frame.height) < self.opts.min_resolution:
                raise InputError(f"resolution {frame.width}x{frame.height} is below the "
                                 f"minimum of {self.opts.min_resolution} px")
            self.fit = plan_fit(frame.width, frame.height, self.opts.size, self.opts.aspect,
                                rotation, sample_aspect)
            self._key = key
            w, h = round(frame.width * sample_aspect), frame.height
            self.display = (h, w) if self.fit.rot_k % 2 else (w, h)
            self.rotation = rotation
        rgb = self.reformatter.reformat(frame, width=self.fit.scale_w, height=self.fit.scale_h,
                                        format="rgb24", interpolation=self.interpolation,
                                        threads=1).to_ndarray()
        return self.fit.apply(rgb)

    def _cropped(self, frame: av.VideoFrame, box) -> np.ndarray:
        """The square around `box` (source pixels, `person_square`), resized to size x size."""
        if frame.rotation:
            raise InputError("per-frame crops need video without rotation metadata")
        if min(frame.width, frame.height) < self.opts.min_resolution:
            raise InputError(f"resolution {frame.width}x{frame.height} is below the "
                             f"minimum of {self.opts.min_resolution} px")
        self.display = (frame.width, frame.height)
        x0, y0, x1, y1 = person_square(box, frame.width, frame.height)
        full = self.reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        region = av.VideoFrame.from_ndarray(np.ascontiguousarray(full[y0:y1, x0:x1]),
                                            format="rgb24")
        if self.crop_reformatter is None:
            self.crop_reformatter = VideoReformatter()
        size = self.opts.size
        return self.crop_reformatter.reformat(region, width=size, height=size, format="rgb24",
                                              interpolation=self.interpolation,
                                              threads=1).to_ndarray()


class _Frames:
    """The kept frames of one input, each copied into one preallocated array as it comes.

    Keeping each converted frame as its own array until a final `np.stack` held ~1.3x the
    frames' bytes in small heap blocks (the crop is a view of the resized frame), page-faulted in
    anew by every input, and then copied them once more: for a 10-minute 320x240 video ~76,000
    page faults and ~180 MB of copying per decode, and the same again in each worker thread.
    `capacity` is the expected count (exact for a range after the first; for a video decoded
    from its start, estimated from the container's frame count); the array doubles if it is
    short.
    """

    def __init__(self, size: int, capacity: int):
        self.data = np.empty((max(0, capacity), size, size, 3), np.uint8)
        self.n = 0

    def add(self, frame: np.ndarray) -> None:
        if self.n == len(self.data):
            grown = np.empty((max(64, 2 * self.n), *self.data.shape[1:]), np.uint8)
            grown[:self.n] = self.data
            self.data = grown
        self.data[self.n] = frame
        self.n += 1

    def array(self) -> np.ndarray:
        return self.data[:self.n]


def _nearest_crop(crops: tuple, index: int):
    """The box of the crop entry nearest to source frame `index` (ties: the earlier one)."""
    i = bisect_left(crops, (index,))
    candidates = crops[max(0, i - 1) : i + 1]
    best = min(candidates, key=lambda c: (abs(c[0] - index), c[0]))
    return best[1:]


def check_regular_file(path: Path) -> None:
    """Reject what cannot be a video before libav opens it (a FIFO would block forever)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found (or a broken symlink)") from None
    except OSError as e:
        raise InputError(f"cannot stat: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError("directory cannot be read (permission denied): its videos were "
                             "not listed")
        raise InputError("is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (FIFO, socket or device)")
    if st.st_size == 0:
        raise InputError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError("permission denied")


def _raise_timeout_if_late(deadline: float, opts: FrameOptions, decoded: int) -> None:
    """libav reports its own timeout interrupt as a generic I/O error: name it properly."""
    if time.monotonic() > deadline:
        raise InputError(f"decode timeout: over {opts.timeout:g} s after {decoded} frames")


def _still_going(deadline: float, opts: FrameOptions, decoded: int) -> None:
    """Once per frame: the run was stopped (`cancel.Cancelled`) or this input ran out of time."""
    cancel.check()
    _raise_timeout_if_late(deadline, opts, decoded)


def video_stream(container):
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        raise InputError(f"no video stream (streams: {', '.join(kinds) or 'none'})")
    return streams[0]


def _finish(frames: np.ndarray, indices, source_fps, selector, conv, codec, decoded,
            first_segment=0, seek_fallback=False) -> DecodedVideo:
    return DecodedVideo(frames=frames, source_indices=np.asarray(indices, dtype=np.int64),
                        source_fps=float(source_fps), sampled_fps=selector.sampled_fps(source_fps),
                        width=conv.display[0], height=conv.display[1], rotation=conv.rotation,
                        codec=codec, decoded=decoded, first_segment=first_segment,
                        seek_fallback=seek_fallback)


class _SeekFailed(Exception):
    """This range cannot be decoded by seeking with a guaranteed identical result."""


def _open(path: Path, opts: FrameOptions, deadline: float):
    try:
        # timeout makes libav's blocking reads give up too (a stalled network mount).
        return av.open(str(path), mode="r", timeout=opts.timeout)
    except _AV_ERRORS as e:
        _raise_timeout_if_late(deadline, opts, 0)
        raise InputError(f"cannot open as a video: {e}") from None


def _stream_setup(container):
    stream = video_stream(container)
    stream.codec_context.thread_count = 1
    rate = stream.average_rate or stream.guessed_rate
    sar = stream.sample_aspect_ratio
    return stream, float(rate) if rate else 0.0, float(sar) if sar and sar > 0 else 1.0


def _expected_kept(frames: int, source_fps: float, opts: FrameOptions) -> int:
    """Kept frames of a video of `frames` frames (the container's count; 0: unknown)."""
    n = max(0, frames - opts.skip_start)
    if opts.fps and source_fps > 0:
        return math.ceil(n * min(1.0, opts.fps / source_fps)) + 1
    return math.ceil(n / opts.every)


def _decode_sequential(container, stream, source_fps, sample_aspect, opts, deadline,
                       lo: int, hi: int | None, crops: tuple):
    """Decode from the start; convert the kept frames whose position among kept frames is in
    [lo, hi) and stop after the last. Returns (frames, indices, decoded, selector, converter)."""
    selector, conv = FrameSelector(opts.every, opts.fps, opts.skip_start), _Converter(opts)
    expected = _expected_kept(stream.frames or 0, source_fps, opts)
    frames = _Frames(opts.size, expected - lo if hi is None else min(expected or hi, hi) - lo)
    indices, decoded, kept = [], 0, 0
    try:
        for frame in container.decode(stream):
            _still_going(deadline, opts, decoded)
            t = frame.time if frame.time is not None else decoded / (source_fps or 1.0)
            if selector.keep(decoded, t):
                if kept >= lo:
                    crop = _nearest_crop(crops, decoded) if crops else None
                    frames.add(conv(frame, sample_aspect, crop))
                    indices.append(decoded)
                kept += 1
            decoded += 1
            if hi is not None and kept >= hi:
                break
    except _AV_ERRORS as e:
        _raise_timeout_if_late(deadline, opts, decoded)
        raise InputError(f"decode error after {decoded} frames: {e}") from None
    if decoded == 0:
        raise InputError("no decodable video frames")
    return frames.array(), indices, decoded, selector, conv


def _packet_times(container, stream) -> list[int]:
    """Every frame's pts in display order, from a demux-only pass (no decoding)."""
    pts = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue                      # the demuxer's final flush packet
        if packet.pts is None:
            raise _SeekFailed("a packet without a timestamp")
        pts.append(packet.pts)
    pts.sort()
    if len(set(pts)) != len(pts):
        raise _SeekFailed("repeated timestamps")
    return pts


def _decode_by_seeking(container, stream, source_fps, sample_aspect, opts, deadline,
                       lo: int, hi: int | None, crops: tuple):
    """The kept frames [lo, hi) of a range that does not start at the first segment."""
    pts = _packet_times(container, stream)
    base = stream.time_base
    selector = FrameSelector(opts.every, opts.fps, opts.skip_start)
    kept = [i for i, p in enumerate(pts) if selector.keep(i, float(p * base))]
    if hi is not None:
        # every kept frame is known here: take the look-ahead only where a short tail joins
        core = hi - opts.min_frames
        hi = None if len(kept) - core < opts.min_frames else core
    wanted = kept[lo:hi]
    conv = _Converter(opts)
    frames = _Frames(opts.size, len(wanted))
    if not wanted:
        return frames.array(), [], 0, selector, conv
    index_of = {pts[i]: i for i in wanted}
    first, last = pts[wanted[0]], pts[wanted[-1]]
    try:
        container.seek(first, stream=stream, backward=True, any_frame=False)
    except _AV_ERRORS as e:
        raise _SeekFailed(f"seek: {e}") from None
    indices, decoded = [], 0
    try:
        for frame in container.decode(stream):
            _still_going(deadline, opts, decoded)
            decoded += 1
            if frame.pts is None or (decoded == 1 and frame.pts > first):
                raise _SeekFailed("seek landed after the range start")
            index = index_of.get(frame.pts)
            if index is not None:
                crop = _nearest_crop(crops, index) if crops else None
                frames.add(conv(frame, sample_aspect, crop))
                indices.append(index)
            if frame.pts >= last:
                break
    except _AV_ERRORS as e:
        _raise_timeout_if_late(deadline, opts, decoded)
        raise InputError(f"decode error after {decoded} frames: {e}") from None
    if indices != wanted:
        raise _SeekFailed("decoded frames differ from the demuxed ones")
    return frames.array(), indices, decoded, selector, conv


def decode_file(path: Path, opts: FrameOptions, segments: SegmentRange = WHOLE,
                crops: tuple = ()) -> DecodedVideo:
    """`crops`: per-frame regions (`VideoInput.crops`), each kept frame cropped to the square
    around its nearest one before the resize; empty: whole frames through `opts.aspect`."""
    check_regular_file(path)
    deadline = time.monotonic() + opts.timeout
    lo, hi = segments.kept_slice(opts.segment_frames, opts.min_frames)
    fallback = False
    with _open(path, opts, deadline) as container:
        stream, source_fps, sample_aspect = _stream_setup(container)
        codec = stream.codec_context.name
        if lo > 0:
            try:
                result = _decode_by_seeking(container, stream, source_fps, sample_aspect, opts,
                                            deadline, lo, hi, crops)
            except _SeekFailed:
                fallback = True
            except _AV_ERRORS as e:   # the demux pass itself failed: a damaged file
                raise InputError(f"cannot read packets: {e}") from None
        else:
            result = _decode_sequential(container, stream, source_fps, sample_aspect, opts,
                                        deadline, lo, hi, crops)
    if fallback:
        with _open(path, opts, deadline) as container:
            stream, source_fps, sample_aspect = _stream_setup(container)
            result = _decode_sequential(container, stream, source_fps, sample_aspect, opts,
                                        deadline, lo, hi, crops)
    frames, indices, decoded, selector, conv = result
    keep = segments.trim(len(frames), opts.segment_frames, opts.min_frames)
    frames, indices = frames[:keep], indices[:keep]
    return _finish(frames, indices, source_fps, selector, conv, codec, decoded,
                   first_segment=segments.first, seek_fallback=fallback)


def _decode_still(path: Path) -> av.VideoFrame:
    check_regular_file(path)
    try:
        with av.open(str(path), mode="r") as container:
            return next(container.decode(video=0))
    except (StopIteration, *_AV_ERRORS) as e:
        raise InputError(f"cannot decode frame {path.name}: {e}") from None


def decode_frame_run(folder: Path, item: VideoInput, opts: FrameOptions,
                     segments: SegmentRange = WHOLE) -> DecodedVideo:
    """Stills numbered `item.frame_numbers`; only the kept ones (of the range) are read at all."""
    deadline = time.monotonic() + opts.timeout
    selector, conv = FrameSelector(opts.every, opts.fps, opts.skip_start), _Converter(opts)
    kept = [index for index, number in enumerate(item.frame_numbers)
            if selector.keep(index, (number - item.frame_numbers[0]) / item.frame_rate)]
    lo, hi = segments.kept_slice(opts.segment_frames, opts.min_frames)
    if lo > 0 and len(kept) - lo < opts.min_frames:
        lo = len(kept)        # a short tail: the previous range holds it in its last segment
    wanted = kept[lo:hi]
    wanted = wanted[:segments.trim(len(wanted), opts.segment_frames, opts.min_frames)]
    hi = lo + len(wanted) if segments.end is not None else None
    frames, indices = _Frames(opts.size, len(wanted)), []
    for index in wanted:
        _still_going(deadline, opts, len(indices))
        frames.add(conv(_decode_still(folder / item.frames[index]), 1.0))
        indices.append(index)
    # source frames this range stands for; over all ranges of a run they sum to its length
    start = 0 if lo == 0 else kept[lo] if lo < len(kept) else len(item.frames)
    end = len(item.frames) if hi is None or hi >= len(kept) else kept[hi]
    return _finish(frames.array(), indices, item.frame_rate, selector, conv, "image",
                   max(0, end - start), first_segment=segments.first)


def decode_input(root: Path, item: VideoInput, opts: FrameOptions,
                 segments: SegmentRange = WHOLE) -> DecodedVideo:
    """Decode one adapter input found under the dataset `root` (or a range of its segments)."""
    if item.invalid:
        raise InputError(item.invalid)
    if item.episode is not None:
        # Rendered, not decoded; imported here so that decoding files never loads the simulators.
        # An episode is never split into ranges (`cwm.ingest.plan.split_units`).
        from cwm.ingest.simulate import render_episode

        return render_episode(item.episode, opts.size, opts.timeout)
    if item.is_frame_run:
        return decode_frame_run(root / item.path, item, opts, segments)
    return decode_file(root / item.path, opts, segments, item.crops)

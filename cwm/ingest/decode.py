"""PyAV decoding of one input (a video file or a run of still frames) to `[N, S, S, 3] uint8`.

Sequential decode only (seeking into long GOPs is very slow). Each kept frame goes through one
`VideoReformatter` per input, which converts to RGB and resizes in a single swscale call and
keeps its scaling context between frames (SPEC §2: 3x faster than `frame.reformat()` per frame).
Decoder and swscale run single-threaded: parallelism is one process per core, and PyAV >= 17's
default multi-threaded swscale is slower at these sizes.

Anything wrong with the input raises `InputError(reason)`; the shard writer records it and
moves on. Nothing here raises for a bad file in any other way.
"""

from __future__ import annotations

import os
import stat
import time
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

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


def _video_stream(container):
    streams = [s for s in container.streams.video
               if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        raise InputError(f"no video stream (streams: {', '.join(kinds) or 'none'})")
    return streams[0]


def _finish(frames, indices, source_fps, selector, conv, codec, decoded) -> DecodedVideo:
    size = conv.opts.size
    stacked = np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
    return DecodedVideo(frames=stacked, source_indices=np.asarray(indices, dtype=np.int64),
                        source_fps=float(source_fps), sampled_fps=selector.sampled_fps(source_fps),
                        width=conv.display[0], height=conv.display[1], rotation=conv.rotation,
                        codec=codec, decoded=decoded)


def decode_file(path: Path, opts: FrameOptions, crops: tuple = ()) -> DecodedVideo:
    """`crops`: per-frame regions (`VideoInput.crops`), each kept frame cropped to the square
    around its nearest one before the resize; empty: whole frames through `opts.aspect`."""
    check_regular_file(path)
    deadline = time.monotonic() + opts.timeout
    try:
        # timeout makes libav's blocking reads give up too (a stalled network mount).
        container = av.open(str(path), mode="r", timeout=opts.timeout)
    except _AV_ERRORS as e:
        _raise_timeout_if_late(deadline, opts, 0)
        raise InputError(f"cannot open as a video: {e}") from None
    with container:
        stream = _video_stream(container)
        stream.codec_context.thread_count = 1
        rate = stream.average_rate or stream.guessed_rate
        source_fps = float(rate) if rate else 0.0
        sar = stream.sample_aspect_ratio
        sample_aspect = float(sar) if sar and sar > 0 else 1.0
        selector, conv = FrameSelector(opts.every, opts.fps, opts.skip_start), _Converter(opts)
        frames, indices, decoded = [], [], 0
        try:
            for frame in container.decode(stream):
                _raise_timeout_if_late(deadline, opts, decoded)
                t = frame.time if frame.time is not None else decoded / (source_fps or 1.0)
                if selector.keep(decoded, t):
                    crop = _nearest_crop(crops, decoded) if crops else None
                    frames.append(conv(frame, sample_aspect, crop))
                    indices.append(decoded)
                decoded += 1
        except _AV_ERRORS as e:
            _raise_timeout_if_late(deadline, opts, decoded)
            raise InputError(f"decode error after {decoded} frames: {e}") from None
        if decoded == 0:
            raise InputError("no decodable video frames")
        return _finish(frames, indices, source_fps, selector, conv,
                       stream.codec_context.name, decoded)


def _decode_still(path: Path) -> av.VideoFrame:
    check_regular_file(path)
    try:
        with av.open(str(path), mode="r") as container:
            return next(container.decode(video=0))
    except (StopIteration, *_AV_ERRORS) as e:
        raise InputError(f"cannot decode frame {path.name}: {e}") from None


def decode_frame_run(folder: Path, item: VideoInput, opts: FrameOptions) -> DecodedVideo:
    """Stills numbered `item.frame_numbers`; only the kept ones are read at all."""
    deadline = time.monotonic() + opts.timeout
    selector, conv = FrameSelector(opts.every, opts.fps, opts.skip_start), _Converter(opts)
    frames, indices = [], []
    for index, (name, number) in enumerate(zip(item.frames, item.frame_numbers)):
        _raise_timeout_if_late(deadline, opts, index)
        if selector.keep(index, (number - item.frame_numbers[0]) / item.frame_rate):
            frames.append(conv(_decode_still(folder / name), 1.0))
            indices.append(index)
    return _finish(frames, indices, item.frame_rate, selector, conv, "image", len(item.frames))


def decode_input(root: Path, item: VideoInput, opts: FrameOptions) -> DecodedVideo:
    """Decode one adapter input found under the dataset `root`."""
    if item.invalid:
        raise InputError(item.invalid)
    if item.is_frame_run:
        return decode_frame_run(root / item.path, item, opts)
    return decode_file(root / item.path, opts, item.crops)

"""How much work each input is, from container metadata only (no decoding): the planner's input.

Two backends, measured against each other in `bench/ingest_probe.py`:
  pyav     `av.open` in this process, header only (default: no process start per file)
  ffprobe  `ffmpeg.probe` from ffmpeg-python (one `ffprobe` process per file)

The source frame count is the container's (`nb_frames`) when it has one, else duration x frame
rate (WebM/Matroska store no count). It is an estimate: the plan uses it to split and balance
work, never to decide what ends up in the shards. A file that cannot even be probed is failed
with the reason, like a file that cannot be decoded; frame runs (still images) and simulator
episodes need no probe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import av

from cwm.ingest.decode import InputError, check_regular_file, video_stream
from cwm.ingest.sources.base import VideoInput

BACKENDS = ("pyav", "ffprobe")
_STILL_SIZE = (640, 480)     # assumed size of a frame run's stills (their count is exact)


@dataclass(frozen=True)
class Probe:
    frames: int = 0          # estimated source frames
    fps: float = 0.0
    width: int = 0
    height: int = 0
    error: str = ""          # non-empty: this input is failed with this reason

    def to_dict(self) -> dict:
        return asdict(self)


def _estimate(count: int, duration: float, fps: float) -> int:
    if count > 0:
        return count
    return max(0, round(duration * fps)) if duration > 0 and fps > 0 else 0


def probe_pyav(path: Path, timeout: float) -> Probe:
    check_regular_file(path)
    try:
        with av.open(str(path), mode="r", timeout=timeout) as container:
            stream = video_stream(container)
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            if stream.duration is not None and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / 1e6
            return Probe(_estimate(stream.frames, duration, fps), fps,
                         stream.codec_context.width, stream.codec_context.height)
    except av.error.FFmpegError as e:
        raise InputError(f"cannot open as a video: {e}") from None


def _ratio(text: str) -> float:
    num, _, den = (text or "0/0").partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def probe_ffprobe(path: Path, timeout: float) -> Probe:
    import ffmpeg   # ffmpeg-python: only this backend needs it

    check_regular_file(path)
    try:
        info = ffmpeg.probe(str(path), select_streams="v")
    except ffmpeg.Error as e:
        lines = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise InputError(f"cannot open as a video: {lines[-1] if lines else 'ffprobe failed'}") \
            from None
    except (OSError, ValueError) as e:   # no ffprobe binary, or output that is not JSON
        raise InputError(f"ffprobe failed: {e}") from None
    streams = [s for s in info.get("streams", [])
               if not s.get("disposition", {}).get("attached_pic")]
    if not streams:
        raise InputError("no video stream")
    s = streams[0]
    fps = _ratio(s.get("avg_frame_rate")) or _ratio(s.get("r_frame_rate"))
    duration = float(s.get("duration") or info.get("format", {}).get("duration") or 0)
    return Probe(_estimate(int(s.get("nb_frames") or 0), duration, fps), fps,
                 int(s.get("width") or 0), int(s.get("height") or 0))


def probe_input(root: Path, item: VideoInput, timeout: float, backend: str = "pyav") -> Probe:
    """Never raises for a bad input: the reason goes into `Probe.error`."""
    if item.invalid:
        return Probe(error=item.invalid)
    if item.episode is not None:      # rendered: nothing to open, its length is known
        return Probe(item.episode.estimated_frames, 0.0, 0, 0)
    if item.is_frame_run:
        return Probe(len(item.frames), item.frame_rate, *_STILL_SIZE)
    probe = probe_pyav if backend == "pyav" else probe_ffprobe
    try:
        return probe(root / item.path, timeout)
    except InputError as e:
        return Probe(error=str(e))
    except Exception as e:  # noqa: BLE001  (a probe never stops the run)
        return Probe(error=f"probe failed: unexpected {type(e).__name__}: {e}")


def probe_batch(root: str, items: list[VideoInput], timeout: float,
                backend: str = "pyav") -> list[dict]:
    """One dask task's worth of probes (plain dicts: cheap to ship back)."""
    return [probe_input(Path(root), item, timeout, backend).to_dict() for item in items]

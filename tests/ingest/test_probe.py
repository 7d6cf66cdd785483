"""Probing inputs for the work plan: PyAV and ffprobe (ffmpeg-python) agree; bad files fail."""

from __future__ import annotations

import pytest

from cwm.ingest.probe import probe_input
from cwm.ingest.sources.base import VideoInput

GOOD = {"good": 30, "portrait": 30, "rotated": 30, "vfr": 48, "tenbit": 30}


@pytest.mark.parametrize("backend", ["pyav", "ffprobe"])
def test_probe_estimates_frames_and_size(media, backend):
    for name, frames in GOOD.items():
        path = media[name]
        probe = probe_input(path.parent, VideoInput(name, path.name), 10.0, backend)
        assert not probe.error, (name, probe.error)
        assert abs(probe.frames - frames) <= 2, (name, probe.frames)   # mkv: duration x rate
        assert probe.width > 0 and probe.height > 0 and probe.fps > 0
    good = probe_input(media["good"].parent, VideoInput("g", media["good"].name), 10.0, backend)
    assert (good.width, good.height, good.frames) == (160, 120, 30)


@pytest.mark.parametrize("backend", ["pyav", "ffprobe"])
def test_probe_failure_is_a_reason_not_an_exception(media, backend):
    for name in ("zero", "text", "audio", "fifo", "directory", "dangling"):
        path = media[name]
        probe = probe_input(path.parent, VideoInput(name, path.name), 10.0, backend)
        assert probe.error and probe.frames == 0, name


def test_frame_runs_need_no_probe():
    item = VideoInput("run", "dir-1", frames=("1.jpg", "2.jpg", "3.jpg"), frame_numbers=(1, 2, 3),
                      frame_rate=30.0)
    assert probe_input(__import__("pathlib").Path("/nonexistent"), item, 1.0).frames == 3

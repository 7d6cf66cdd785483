"""Where swscale scales to, and which frames the selectors keep."""

import numpy as np
import pytest

from cwm.ingest.geometry import plan_fit
from cwm.ingest.sampling import FrameSelector
from cwm.ingest.segment import segment_bounds


@pytest.mark.parametrize("w, h, aspect, rotation, scaled", [
    (320, 240, "center-crop", 0, (85, 64)),
    (1280, 720, "center-crop", 0, (114, 64)),
    (240, 320, "center-crop", 0, (64, 85)),
    (320, 240, "pad", 0, (64, 48)),
    (320, 240, "squash", 0, (64, 64)),
    (320, 240, "center-crop", 90, (85, 64)),   # stored orientation; turned after scaling
    (320, 240, "pad", 270, (64, 48)),
])
def test_scale_targets(w, h, aspect, rotation, scaled):
    fit = plan_fit(w, h, 64, aspect, rotation)
    assert (fit.scale_w, fit.scale_h) == scaled
    out = fit.apply(np.zeros((fit.scale_h, fit.scale_w, 3), np.uint8))
    assert out.shape == (64, 64, 3)


def test_anamorphic_pixels_widen_the_display():
    fit = plan_fit(176, 144, 64, "pad", 0, sample_aspect=12 / 11)
    assert (fit.scale_w, fit.scale_h) == (64, 48)


def test_every_k_and_skip_start():
    sel = FrameSelector(every=3, skip_start=2)
    assert [i for i in range(12) if sel.keep(i, i / 30)] == [2, 5, 8, 11]


def test_fps_resample_keeps_first_frame_per_tick():
    sel = FrameSelector(fps=10)
    times = [i / 30 for i in range(31)]         # 30 fps -> 10 fps: every third frame
    assert [i for i, t in enumerate(times) if sel.keep(i, t)] == list(range(0, 31, 3))
    slow = FrameSelector(fps=10)                 # a slower source keeps every frame
    assert all(slow.keep(i, i / 5) for i in range(10))


def test_segments_keep_short_tails_in_the_last_segment():
    assert segment_bounds(120, 50, 25) == [(0, 50), (50, 120)]   # a short tail joins the last
    assert segment_bounds(60, 50, 25) == [(0, 60)]               # SSv2 50-74 frames: all kept
    assert segment_bounds(100, 50, 25) == [(0, 50), (50, 100)]
    assert segment_bounds(130, 50, 25) == [(0, 50), (50, 100), (100, 130)]
    assert segment_bounds(40, 50, 25) == [(0, 40)]
    assert segment_bounds(20, 50, 25) == []

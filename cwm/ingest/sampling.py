"""Which source frames are kept: every k-th frame, or a resample to a target frame rate.

Decisions use only the frame's index and timestamp, so frames that are dropped are never
converted (swscale is most of the cost after decoding). With `fps`, a frame is kept when it is
the first at or after the next tick of the target clock; variable-frame-rate sources therefore
come out evenly spaced in time, and a source slower than the target keeps every frame.
"""

from __future__ import annotations

import math

_EPS = 1e-6


class FrameSelector:
    def __init__(self, every: int = 1, fps: float | None = None, skip_start: int = 0):
        self.every = every
        self.fps = fps
        self.skip_start = skip_start
        self._t0: float | None = None
        self._next_tick = 0

    def keep(self, index: int, t: float) -> bool:
        """index: position in the source (0-based); t: its presentation time in seconds."""
        if index < self.skip_start:
            return False
        if not self.fps:
            return (index - self.skip_start) % self.every == 0
        if self._t0 is None:
            self._t0 = t
        tick = (t - self._t0) * self.fps
        if tick + _EPS < self._next_tick:
            return False
        self._next_tick = math.floor(tick + _EPS) + 1
        return True

    def sampled_fps(self, source_fps: float) -> float:
        if self.fps:
            return min(self.fps, source_fps) if source_fps else self.fps
        return source_fps / self.every if source_fps else 0.0

"""Small video-like clips for the model tests: textured backgrounds with moving squares.

Every clip has its own background (the context) and its own motion, as in-the-wild video does.
"""

from __future__ import annotations

import numpy as np


def moving_squares(n_clips: int, length: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """uint8 [n_clips, length, size, size, 3]"""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    clips = np.empty((n_clips, length, size, size, 3), np.uint8)
    for i in range(n_clips):
        colors = rng.integers(40, 215, (2, 3))
        freq = rng.uniform(0.05, 0.3, 2)
        stripes = (np.sin(xx * freq[0] + yy * freq[1]) > 0)[..., None]
        background = np.where(stripes, colors[0], colors[1]).astype(np.uint8)
        pos = rng.uniform(8, size - 24, 2)
        vel = rng.uniform(-3, 3, 2)
        square = rng.integers(0, 255, 3)
        for t in range(length):
            frame = background.copy()
            y, x = (pos + vel * t).astype(int) % (size - 16)
            frame[y:y + 16, x:x + 16] = square
            clips[i, t] = frame
    return clips

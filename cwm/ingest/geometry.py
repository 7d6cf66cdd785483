"""How a source frame of any size, shape and orientation maps onto the `size x size` output.

swscale does the expensive part (YUV->RGB and the resize, in one call): it scales the frame to
`scale_w x scale_h`, chosen so that only a cheap numpy step is left afterwards: a quarter-turn
for rotation metadata, then a centre crop (`center-crop`) or centring on black (`pad`).
`squash` scales straight to `size x size` and ignores the aspect ratio (what upstream did).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fit:
    """scale_w/scale_h: swscale output in *stored* orientation; rot_k: np.rot90 turns after it."""

    size: int
    aspect: str
    scale_w: int
    scale_h: int
    rot_k: int

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """[scale_h, scale_w, 3] uint8 -> [size, size, 3] uint8 (possibly a view)."""
        img = np.rot90(rgb, self.rot_k) if self.rot_k else rgb
        h, w = img.shape[:2]
        s = self.size
        if self.aspect == "pad":
            out = np.zeros((s, s, 3), dtype=np.uint8)
            y, x = (s - h) // 2, (s - w) // 2
            out[y:y + h, x:x + w] = img
            return out
        y, x = (h - s) // 2, (w - s) // 2
        return img[y:y + s, x:x + s]


def rotation_turns(rotation: float) -> int:
    """Display-matrix rotation in degrees (PyAV `frame.rotation`) -> np.rot90 k.

    Checked against the ffmpeg CLI's autorotation: rotation 90 displays as np.rot90(img, 1).
    """
    return int(round(rotation / 90.0)) % 4


def plan_fit(width: int, height: int, size: int, aspect: str, rotation: float = 0.0,
             sample_aspect: float = 1.0) -> Fit:
    """Choose the swscale target for a stored `width x height` frame.

    `sample_aspect` (pixel width / pixel height, anamorphic sources) and `rotation` decide the
    displayed shape; the crop/pad then works in display orientation.
    """
    k = rotation_turns(rotation)
    disp_w, disp_h = width * (sample_aspect or 1.0), float(height)
    if k % 2:
        disp_w, disp_h = disp_h, disp_w
    if aspect == "squash":
        out_w = out_h = size
    elif aspect == "center-crop":
        scale = size / min(disp_w, disp_h)
        out_w, out_h = max(size, round(disp_w * scale)), max(size, round(disp_h * scale))
    elif aspect == "pad":
        scale = size / max(disp_w, disp_h)
        out_w, out_h = max(1, min(size, round(disp_w * scale))), max(1, min(size, round(disp_h * scale)))
    else:
        raise ValueError(f"unknown aspect policy {aspect!r}")
    if k % 2:
        out_w, out_h = out_h, out_w
    return Fit(size=size, aspect=aspect, scale_w=out_w, scale_h=out_h, rot_k=k)


# Upstream's Human3.6M person crop (ContextWM data/human36m): the joints' box grown to a square
# of its longer side plus this margin, at most this size, in source pixels.
PERSON_MARGIN = 200
PERSON_MAX_SIDE = 1000


def person_square(box: tuple[int, int, int, int], width: int, height: int,
                  margin: int = PERSON_MARGIN, max_side: int = PERSON_MAX_SIDE
                  ) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square crop around a person's box in a `width x height`
    frame: side = min(longer box side + margin, max_side, frame), centred on the box, shifted
    (not shrunk) to lie inside the frame. Upstream's rule, with the frame as the limit instead of a
    fixed 1000x1000 (the same thing for Human3.6M's frames)."""
    left, top, right, bottom = box
    side = min(max(right - left, bottom - top) + margin, max_side, width, height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = int(cx - side / 2), int(cy - side / 2)
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return x0, y0, x0 + side, y0 + side

"""Human3.6M pose annotations -> per-frame person boxes, for upstream's person crops.

Upstream (ContextWM `data/human36m`) used the 2D pose release of Pavlakos et al.
(`h36m_annot.tar`): per split `<split>.h5`, whose dataset `part` holds the 2D joints of every
annotated image ([N, joints, 2], pixels of the ~1000x1000 frame), and `<split>_images.txt`, the
N image names in the same order, `<subject>_<action>[_<take>].<camera>_<frame:06d>.jpg` with
1-based source frame numbers (every 5th frame: 1, 6, 11, ...). Splits `train` and `valid`; the
files are looked for in `<root>`, `<root>/annot` and `<root>/h36m/annot`.

Each frame's box is the joints' bounding box (floor of the minima, ceil of the maxima); the
square crop around it (`cwm.ingest.geometry.person_square`: side = box side + 200 px, at most
1,000 px, shifted inside the frame) is taken at decode time, when the frame size is known.
A kept frame without its own annotation uses the nearest annotated frame of its video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cwm.errors import UserError

ANNOTATION_DIRS = (".", "annot", "h36m/annot")
SPLITS = ("train", "valid")
_IMAGE = re.compile(r"^(?P<title>.+)_(?P<frame>\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)

# (source frame index, left, top, right, bottom) in source pixels
Box = tuple[int, int, int, int, int]


@dataclass
class PoseBoxes:
    """Per video title (`S1_Directions_1.54138969`): its boxes, or why it has none usable."""

    files: list[str] = field(default_factory=list)
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def for_video(self, title: str) -> tuple[tuple[Box, ...], str]:
        """(boxes sorted by frame, "") or ((), reason this video cannot be cropped)."""
        if title in self.errors:
            return (), self.errors[title]
        boxes = self.boxes.get(title)
        if not boxes:
            return (), f"no pose annotation for {title} in {', '.join(self.files)}"
        return tuple(sorted(boxes)), ""


def video_title(subject: str, stem: str) -> str:
    """`S1`, `Directions 1.54138969` -> `S1_Directions_1.54138969` (the annotation's name)."""
    return f"{subject}_{stem.replace(' ', '_')}"


def find_annotation_files(root: Path) -> list[tuple[Path, Path]]:
    """(`<split>.h5`, `<split>_images.txt`) pairs present under `root`."""
    pairs = []
    for sub in ANNOTATION_DIRS:
        folder = root / sub
        for split in SPLITS:
            h5, names = folder / f"{split}.h5", folder / f"{split}_images.txt"
            if h5.is_file() and names.is_file():
                pairs.append((h5, names))
        if pairs:
            return pairs
    return pairs


def load_pose_boxes(pairs: list[tuple[Path, Path]]) -> PoseBoxes:
    """Read every pair; a file that cannot be read at all is a UserError (every video would fail)."""
    import h5py

    result = PoseBoxes(files=[str(h5) for h5, _ in pairs])
    for h5, names_file in pairs:
        try:
            with h5py.File(h5, "r") as f:
                if "part" not in f:
                    raise ValueError("no 'part' dataset (2D joints)")
                part = np.asarray(f["part"], dtype=np.float64)
            names = [line.strip() for line in names_file.read_text().splitlines()]
        except (OSError, ValueError, TypeError) as e:
            raise UserError(f"cannot read Human3.6M pose annotations {h5}: {e}") from None
        names = [n for n in names if n]
        if part.ndim != 3 or part.shape[-1] != 2 or part.shape[0] != len(names):
            raise UserError(f"Human3.6M pose annotations {h5}: 'part' is {part.shape}, want "
                            f"[{len(names)} images in {names_file.name}, joints, 2]")
        finite = np.isfinite(part).all(axis=(1, 2))
        with np.errstate(invalid="ignore"):
            lo = np.floor(part.min(axis=1))
            hi = np.ceil(part.max(axis=1))
        for i, name in enumerate(names):
            match = _IMAGE.match(Path(name).name)
            if not match:
                raise UserError(f"{names_file}: line {i + 1} {name!r} is not "
                                f"<subject>_<action>.<camera>_<frame>.jpg")
            title, frame = match["title"], int(match["frame"])
            if title in result.errors:
                continue
            if not finite[i] or frame < 1 or (hi[i] < 0).any() or hi[i][0] <= lo[i][0] \
                    or hi[i][1] <= lo[i][1]:
                result.errors[title] = (f"malformed pose annotation for {title} frame {frame} "
                                        f"({names_file.name} line {i + 1}): joints "
                                        f"{part[i].tolist()[:3]}...")
                result.boxes.pop(title, None)
                continue
            result.boxes.setdefault(title, []).append(
                (frame - 1, int(lo[i][0]), int(lo[i][1]), int(hi[i][0]), int(hi[i][1])))
    return result

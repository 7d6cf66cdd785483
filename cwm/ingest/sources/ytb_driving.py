"""`ytb-driving`: the YouTube driving videos of the ACO release, shipped as JPEG frames.

Layout (SPEC §2): `<root>/dir-<k>/<i>.jpg` (+ `meta.txt`). A folder holds several recordings
back to back; the frame numbering jumps where one ends, so a gap in the numbers starts a new
run, and each run is one input. Upstream skipped the first ~100 frames of each run and kept every
5th frame (the CLI defaults). Stills carry no clock: `frame_rate` says what the numbering means.
"""

from __future__ import annotations

import re
from pathlib import Path

from cwm.ingest.sources.base import VideoInput

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_NUMBER = re.compile(r"^(\d+)$")


def _numbered_images(folder: Path) -> list[tuple[int, str]]:
    images = []
    for path in folder.iterdir():
        match = _NUMBER.match(path.stem)
        if match and path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append((int(match[1]), path.name))
    return sorted(images)


def split_runs(images: list[tuple[int, str]], max_gap: int = 1) -> list[list[tuple[int, str]]]:
    """Cut a sorted list of (frame number, name) where consecutive numbers differ by > max_gap."""
    runs: list[list[tuple[int, str]]] = []
    for number, name in images:
        if runs and number - runs[-1][-1][0] <= max_gap:
            runs[-1].append((number, name))
        else:
            runs.append([(number, name)])
    return runs


def list_videos(root: Path, frame_rate: float = 30.0, max_gap: int = 1) -> list[VideoInput]:
    videos = []
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        rel = folder.relative_to(root).as_posix()
        for run in split_runs(_numbered_images(folder), max_gap):
            numbers = tuple(n for n, _ in run)
            videos.append(VideoInput(
                video_id=f"{rel}/{numbers[0]:06d}", path=rel,
                frames=tuple(name for _, name in run), frame_numbers=numbers,
                frame_rate=frame_rate,
                meta={"folder": rel, "first_number": numbers[0], "last_number": numbers[-1]}))
    return videos

"""What every dataset adapter yields, and how `--src` is resolved.

An adapter is a function `list_videos(root: Path, **options) -> list[VideoInput]`; it only
looks at names on disk (fast, runs in the driver). Decoding happens later, on the workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cwm.errors import UserError

if TYPE_CHECKING:
    from cwm.ingest.sources.sim import Episode

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")


@dataclass(frozen=True)
class VideoInput:
    """One source video: a file, a run of still frames in one folder, or a simulator episode.

    video_id  raw id, sanitized and made unique later by the plan
    path      relative to the dataset root (a file; for frame runs, the folder)
    frames    for frame runs: the image file names inside `path`, in display order
    frame_numbers  for frame runs: the source frame number of each image
    frame_rate     for frame runs: frames per second of the numbering (stills carry no clock)
    meta      adapter metadata copied into every sample (label, template, subject, ...)
    crops     per-frame regions to crop before resizing: (source frame index, left, top, right,
              bottom) sorted by index, a frame using the nearest one (`geometry.person_square`
              turns each into a square at decode time); empty: the whole frame
    invalid   why the adapter already knows this input cannot be ingested (e.g. its pose
              annotation is missing): decoding records it as failed with this reason
    episode   for the `sim` source: the episode to render instead of a file to decode (`path`
              is then its name, not a file)
    """

    video_id: str
    path: str
    frames: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    frame_rate: float = 0.0
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    crops: tuple = field(default=(), hash=False, compare=False, repr=False)
    invalid: str = ""
    episode: Episode | None = field(default=None, compare=False)

    @property
    def is_frame_run(self) -> bool:
        return bool(self.frames)


def resolve_src(dataset: str, src: str | None) -> Path:
    """`--src` if given, else `$CWM_DATA/<dataset>`; a clear UserError saying where we looked."""
    if src:
        root = Path(src).expanduser()
        if not root.exists():
            raise UserError(f"--src {root} does not exist")
        if not root.is_dir():
            raise UserError(f"--src {root} is not a directory")
        return root.resolve()
    data = os.environ.get("CWM_DATA")
    if not data:
        raise UserError(f"no --src given and $CWM_DATA is not set; pass --src DIR "
                        f"(or set CWM_DATA so that $CWM_DATA/{dataset} holds the data)")
    root = Path(data).expanduser() / dataset
    if not root.is_dir():
        raise UserError(f"no --src given and {root} ($CWM_DATA/{dataset}) does not exist; "
                        f"pass --src DIR")
    return root.resolve()


def walk_files(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Every non-directory entry under `root` whose name ends in one of `extensions`, sorted.

    Directories that merely carry a video extension (`clip.mp4/`) are listed too, as inputs,
    so they show up in errors.jsonl instead of being silently ignored; so are subdirectories
    that cannot be read (their videos cannot be listed: that is recorded, not skipped).
    """
    found = []

    def unreadable(error: OSError) -> None:
        if error.filename and Path(error.filename) != root:
            found.append(Path(error.filename))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        here = Path(dirpath)
        for name in filenames + [d for d in dirnames if d.lower().endswith(extensions)]:
            if name.lower().endswith(extensions) and not name.startswith("."):
                found.append(here / name)
    return sorted(found)

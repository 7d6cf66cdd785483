"""`human36m`: Human3.6M videos, `<root>/S{1,5,6,7,8,9,11}/Videos/<Action>[ <n>].<camera>.mp4`.

50 Hz, ~1000x1002, four cameras (54138969, 55011271, 58860488, 60457274). File names hold spaces
and dots (`Directions 1.54138969.mp4`); the id keeps subject, action and camera and is sanitized
by the plan to `S1_Directions_1_54138969`. Upstream kept every 5th frame (the CLI default).
`_ALL.*` files (all actions concatenated, shipped by some mirrors) are left out.
"""

from __future__ import annotations

import re
from pathlib import Path

from cwm.ingest.sources.base import VideoInput

_NAME = re.compile(r"^(?P<action>.+?)(?: (?P<take>\d+))?\.(?P<camera>\d+)\.mp4$")


def list_videos(root: Path) -> list[VideoInput]:
    videos = []
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("S")):
        video_dir = subject_dir / "Videos"
        if not video_dir.is_dir():
            continue
        for path in sorted(video_dir.iterdir()):
            match = _NAME.match(path.name)
            if not match or path.name.startswith("_ALL"):
                continue
            meta = {"subject": subject_dir.name, "action": match["action"],
                    "take": int(match["take"]) if match["take"] else 0,
                    "camera": match["camera"]}
            videos.append(VideoInput(
                video_id=f"{subject_dir.name}/{path.name[:-len('.mp4')]}",
                path=path.relative_to(root).as_posix(), meta=meta))
    return videos

"""`folder`: any directory tree of videos (mp4, webm, mkv, avi, mov); the generic adapter.

The video id is the path relative to the root without its extension:
`cams/Front door.2024.mp4` -> `cams/Front door.2024` (sanitized later to `cams_Front_door_2024`).
"""

from __future__ import annotations

from pathlib import Path

from cwm.ingest.sources.base import VIDEO_EXTENSIONS, VideoInput, walk_files


def list_videos(root: Path) -> list[VideoInput]:
    videos = []
    for path in walk_files(root, VIDEO_EXTENSIONS):
        rel = path.relative_to(root).as_posix()
        videos.append(VideoInput(video_id=rel.rsplit(".", 1)[0], path=rel))
    return videos

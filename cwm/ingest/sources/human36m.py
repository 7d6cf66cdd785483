"""`human36m`: Human3.6M videos, `<root>/S{1,5,6,7,8,9,11}/Videos/<Action>[ <n>].<camera>.mp4`.

50 Hz, ~1000x1002, four cameras (54138969, 55011271, 58860488, 60457274). File names hold spaces
and dots (`Directions 1.54138969.mp4`); the id keeps subject, action and camera and is sanitized
by the plan to `S1_Directions_1_54138969`. Upstream kept every 5th frame (the CLI default).
`_ALL.*` files (all actions concatenated, shipped by some mirrors) are left out.

Person crops (upstream's, `human36m_pose`): `person_crop="auto"` (default) crops every frame
to the square around the person's 2D joints when the pose annotation files are under the root,
and takes whole frames otherwise; "on" requires the files; "off" never crops. With crops on, a
video whose annotation is missing or malformed is recorded as failed with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from cwm.errors import UserError
from cwm.ingest.sources.base import VideoInput
from cwm.ingest.sources.human36m_pose import (ANNOTATION_DIRS, find_annotation_files,
                                              load_pose_boxes, video_title)

PERSON_CROP = ("auto", "on", "off")

_NAME = re.compile(r"^(?P<action>.+?)(?: (?P<take>\d+))?\.(?P<camera>\d+)\.mp4$")


def list_videos(root: Path, person_crop: str = "auto") -> list[VideoInput]:
    if person_crop not in PERSON_CROP:
        raise UserError(f"--person-crop must be one of {', '.join(PERSON_CROP)}")
    pairs = find_annotation_files(root) if person_crop != "off" else []
    if person_crop == "on" and not pairs:
        raise UserError(f"--person-crop on needs the pose annotations <split>.h5 + "
                        f"<split>_images.txt (split train/valid) in {root} or its "
                        f"{' or '.join(d for d in ANNOTATION_DIRS if d != '.')} folder")
    poses = load_pose_boxes(pairs) if pairs else None
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
            stem = path.name[:-len(".mp4")]
            crops, invalid = (), ""
            if poses is not None:
                crops, invalid = poses.for_video(video_title(subject_dir.name, stem))
                meta["person_crop"] = True
            videos.append(VideoInput(
                video_id=f"{subject_dir.name}/{stem}",
                path=path.relative_to(root).as_posix(), meta=meta, crops=crops, invalid=invalid))
    return videos

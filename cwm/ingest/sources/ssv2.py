"""`ssv2`: Something-Something v2.

Layout (SPEC §2): `<root>/20bn-something-something-v2/<id>.webm` (VP9, 240 px tall, ~12 fps),
annotations `labels.json` (template -> class id), `train.json` / `validation.json` (entries with
`id`, `label`, `template`, `placeholders`) and `test.json` (ids only), in `<root>` or
`<root>/labels`. The videos may also sit directly in `<root>`.

A named split ingests exactly the ids its json lists, so a missing file shows up as a failed
input; `split="all"` ingests every .webm (labelled where an annotation knows it). The default is
upstream's: `train` (168,913 videos), and the CLI squashes frames to 64x64 as upstream did.
"""

from __future__ import annotations

import json
from pathlib import Path

from cwm.errors import UserError
from cwm.ingest.sources.base import VideoInput

VIDEO_DIR = "20bn-something-something-v2"
SPLITS = ("all", "train", "validation", "test")


def _annotation_file(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / "labels" / name):
        if candidate.is_file():
            return candidate
    return None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read SSv2 annotation {path}: {e}") from None


def _class_ids(root: Path) -> dict[str, int]:
    path = _annotation_file(root, "labels.json")
    return {k: int(v) for k, v in _load_json(path).items()} if path else {}


def _entries(root: Path, split: str, class_ids: dict[str, int]) -> dict[str, dict]:
    """id -> sample metadata, for every split json present (or just `split`)."""
    names = ["train", "validation", "test"] if split == "all" else [split]
    entries = {}
    for name in names:
        path = _annotation_file(root, f"{name}.json")
        if path is None:
            if split != "all":
                raise UserError(f"SSv2 split {split!r} needs {name}.json in {root} or "
                                f"{root / 'labels'}")
            continue
        for item in _load_json(path):
            meta = {"split": name}
            if "template" in item:
                # labels.json keys are the templates without the [placeholder] brackets.
                template = item["template"].replace("[", "").replace("]", "")
                meta.update(template=template, label=item.get("label", ""),
                            placeholders=item.get("placeholders", []))
                if template in class_ids:
                    meta["class_id"] = class_ids[template]
            entries.setdefault(str(item["id"]), meta)
    return entries


def list_videos(root: Path, split: str = "train") -> list[VideoInput]:
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}")
    video_dir = root / VIDEO_DIR if (root / VIDEO_DIR).is_dir() else root
    entries = _entries(root, split, _class_ids(root))
    if split == "all":
        ids = sorted(p.stem for p in video_dir.glob("*.webm"))
    else:
        ids = sorted(entries)
    prefix = video_dir.relative_to(root).as_posix()
    return [
        VideoInput(video_id=vid,
                   path=f"{prefix}/{vid}.webm" if prefix != "." else f"{vid}.webm",
                   meta=entries.get(vid, {}))
        for vid in ids
    ]

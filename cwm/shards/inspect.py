"""`inspect SPEC`: what a shard spec holds (counts, frames, bytes, dataset mix) and a contact sheet.

The contact sheet is a PNG with one row per sample (spread over the datasets of a mixture) and
`columns` frames per row, evenly spaced through the segment: enough to see at a glance whether
crops, colours and motion look right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cwm.atomic import atomic_path
from cwm.shards.format import FRAME_SIZE
from cwm.shards.frames import sample_frames
from cwm.shards.spec import resolve_sources
from cwm.shards.tarstream import ReadStats, iter_samples


@dataclass
class DatasetSummary:
    name: str
    weight: float
    shards: int
    samples: int = 0
    frames: int = 0
    bytes: int = 0
    min_frames: int = 0
    max_frames: int = 0
    storage: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0

    @property
    def mean_frames(self) -> float:
        return self.frames / self.samples if self.samples else 0.0


@dataclass
class InspectReport:
    datasets: list[DatasetSummary]
    stats: ReadStats
    # uint8 [rows, columns, 64, 64, 3] frames for the contact sheet
    sheet_frames: list[np.ndarray] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(d.samples for d in self.datasets)

    @property
    def frames(self) -> int:
        return sum(d.frames for d in self.datasets)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.datasets)


def inspect_spec(spec: str, rows: int = 8, columns: int = 8,
                 progress: Callable[[int], None] | None = None) -> InspectReport:
    """Read every sample once (frames of npy samples are not even copied)."""
    sources = resolve_sources(spec)
    stats = ReadStats()
    per_source_rows = math.ceil(rows / len(sources))
    summaries, sheet = [], []
    for src in sources:
        summary = DatasetSummary(name=src.name or "(all)", weight=src.weight, shards=len(src.shards))
        picked = 0
        for url in src.shards:
            before = stats.bytes
            for sample in iter_samples(url, stats):
                storage = "npy" if "frames.npy" in sample else "mp4" if "frames.mp4" in sample else "none"
                summary.storage[storage] = summary.storage.get(storage, 0) + 1
                try:
                    frames = sample_frames(sample)
                # Inspection reports bad samples rather than stopping at the first one.
                except Exception:  # noqa: BLE001
                    summary.unreadable += 1
                    continue
                n = frames.shape[0]
                summary.min_frames = n if summary.samples == 0 else min(summary.min_frames, n)
                summary.max_frames = max(summary.max_frames, n)
                summary.samples += 1
                summary.frames += n
                if picked < per_source_rows and len(sheet) < rows \
                        and frames.shape[1:] == (FRAME_SIZE, FRAME_SIZE, 3):
                    idx = np.linspace(0, n - 1, columns).round().astype(int)
                    sheet.append(np.array(frames[idx]))
                    picked += 1
            summary.bytes += stats.bytes - before
            if progress is not None:
                progress(1)
        summaries.append(summary)
    return InspectReport(datasets=summaries, stats=stats, sheet_frames=sheet)


def write_contact_sheet(rows: list[np.ndarray], path: str | Path, gap: int = 2) -> None:
    """PNG of `rows` (each uint8 [columns, 64, 64, 3]), frames separated by `gap` pixels."""
    if not rows:
        raise ValueError("no frames to draw")
    columns = max(r.shape[0] for r in rows)
    cell = FRAME_SIZE + gap
    canvas = np.full((len(rows) * cell + gap, columns * cell + gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            y, x = gap + i * cell, gap + j * cell
            canvas[y : y + FRAME_SIZE, x : x + FRAME_SIZE] = frame
    from PIL import Image     # here: importing this module (every `cwm-ingest`) stays lighter

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


MAX_SHARD_LINES = 20


def format_report(report: InspectReport) -> str:
    """Human-readable summary: one line per dataset, the mix, and what was skipped."""
    lines = []
    total = report.samples or 1
    weights = sum(d.weight for d in report.datasets) or 1.0
    for d in report.datasets:
        storage = ", ".join(f"{k} {v}" for k, v in sorted(d.storage.items()))
        lines.append(
            f"{d.name}: {d.shards} shards, {d.samples} samples ({storage}), {d.frames} frames "
            f"(per sample min {d.min_frames} / mean {d.mean_frames:.1f} / max {d.max_frames}), "
            f"{d.bytes / 1e6:.1f} MB, {100 * d.samples / total:.1f}% of samples, "
            f"mixture weight {d.weight / weights:.2f}"
            + (f", {d.unreadable} undecodable" if d.unreadable else ""))
    lines.append(f"total: {report.samples} samples, {report.frames} frames, "
                 f"{report.bytes / 1e6:.1f} MB in {sum(d.shards for d in report.datasets)} shards")
    s = report.stats
    skipped = {"damaged shards": s.damaged_shards, "unsafe members": s.unsafe_members,
               "pickle members": s.pickle_members}
    if any(skipped.values()):
        lines.append("skipped: " + ", ".join(f"{v} {k}" for k, v in skipped.items() if v))
    per_shard = s.problem_lines()
    for line in per_shard[:MAX_SHARD_LINES]:
        lines.append(f"  {line}")
    if len(per_shard) > MAX_SHARD_LINES:
        lines.append(f"  ... and {len(per_shard) - MAX_SHARD_LINES} more shards with problems")
    return "\n".join(lines)

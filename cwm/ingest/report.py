"""The dataset index (`_index.json`) and the end-of-run summary, both built from stats files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cwm.atomic import write_json
from cwm.ingest.assemble import done_stats
from cwm.ingest.layout import ShardSpec
from cwm.ingest.plan import Plan

INDEX_NAME = "_index.json"
_TOTALS = ("videos", "ok", "failed", "skipped", "samples", "frames", "decoded_frames", "bytes",
           "seek_fallbacks")


def read_stats(out_dir: Path, shards: list[ShardSpec]) -> dict[str, dict]:
    """Shard name -> stats, for every laid-out shard that is done."""
    found = {}
    for spec in shards:
        stats = done_stats(out_dir, spec.name)
        if stats is not None:
            found[spec.name] = stats
    return found


def write_index(out_dir: Path, plan: Plan, layout: list[ShardSpec], stats: dict[str, dict],
                info: dict) -> dict:
    """`_index.json`: shards with sample counts (exact epochs), totals, renamed ids.

    `layout` is empty while decode tasks are still missing (the shards are not known yet)."""
    shards = [{"name": stats[s.name]["shard"], "samples": stats[s.name]["samples"],
               "frames": stats[s.name]["frames"], "bytes": stats[s.name]["bytes"],
               "sources": stats[s.name].get("sources", 0)}
              for s in layout if s.name in stats]
    index = {
        **info,
        "complete": bool(layout) and len(shards) == len(layout),
        "num_shards": len(shards),
        "planned_shards": len(layout),
        "totals": {k: sum(st.get(k, 0) for st in stats.values()) for k in _TOTALS},
        "shards": shards,
        "renamed_ids": plan.renamed,
        "duplicate_sources": plan.duplicates,
    }
    write_json(out_dir / INDEX_NAME, index)
    return index


@dataclass
class Summary:
    """What one run did (this run's shards) and what the dataset now holds (all shards)."""

    shards_done: int
    shards_total: int
    shards_resumed: int
    shards_failed: list[tuple[str, str]]
    totals: dict
    run_frames: int
    run_decoded: int
    seconds: float
    workers: int
    seek_fallbacks: int = 0

    @property
    def ok(self) -> bool:
        return (not self.shards_failed and self.shards_total > 0
                and self.shards_done == self.shards_total)

    def text(self) -> str:
        t = self.totals
        rate = self.run_frames / self.seconds if self.seconds > 0 else 0.0
        decode_rate = self.run_decoded / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"shards: {self.shards_done}/{self.shards_total} done "
            f"({self.shards_resumed} already done, {len(self.shards_failed)} failed)",
            f"videos: {t['ok']} ok, {t['failed']} failed, {t['skipped']} skipped (too short)",
            f"segments: {t['samples']}, frames: {t['frames']}, bytes: {t['bytes']:,}",
            f"this run: {self.seconds:.1f} s on {self.workers} worker(s), "
            f"{rate:,.0f} frames/s written, {decode_rate:,.0f} source frames/s decoded",
        ]
        if self.seek_fallbacks:
            lines.append(f"split ranges decoded from the file start (seek unusable): "
                         f"{self.seek_fallbacks}")
        lines += [f"{name} failed: {reason}" for name, reason in self.shards_failed]
        return "\n".join(lines)

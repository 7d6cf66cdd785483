"""Training logs: `metrics.jsonl` (one JSON object per line with a `step` field) and TensorBoard.

On resume from step S the log is cut back to the lines with step <= S (a killed run may have
logged steps its last checkpoint does not hold), and TensorBoard purges its events after S, so
both curves continue from the checkpoint without duplicates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cwm.atomic import atomic_open


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep the complete lines of `path` with step <= last_step; returns how many were kept."""
    if not path.exists():
        return 0
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the torn last line of a killed writer
        if isinstance(row, dict) and row.get("step", math.inf) <= last_step:
            kept.append(line)
    with atomic_open(path, "w") as f:
        f.write("".join(line + "\n" for line in kept))
    return len(kept)


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLogger:
    """Scalars to metrics.jsonl and TensorBoard (under <run>/tb). Inert when `enabled` is False."""

    def __init__(self, run_dir: Path, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._writer = None
        self._file = None
        if not enabled:
            return
        truncate_metrics(self.path, start_step)
        self._file = open(self.path, "a")
        from torch.utils.tensorboard import SummaryWriter  # tensorboard import is slow; only here
        self._writer = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=start_step + 1)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for k, v in scalars.items():
            self._writer.add_scalar(k, float(v), step)

    def flush(self) -> None:
        if self.enabled:
            self._file.flush()
            self._writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            self._writer.close()
            self.enabled = False

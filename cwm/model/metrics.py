"""Training logs: `metrics.jsonl` (one JSON object per line with a `step` field) and TensorBoard.

On resume from step S the log is cut back to the lines with step <= S (a killed run may have
logged steps its last checkpoint does not hold), and TensorBoard purges its events after S, so
both curves continue from the checkpoint without duplicates. Lines that are not JSON objects
(the torn last line of a killed writer, bytes that are not UTF-8) are dropped, not fatal.

A full disk while logging is one `error:` line (`cwm.atomic.StorageError`), as everywhere.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Iterator

from cwm.atomic import atomic_open, storage_cause, storage_errors


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(line, row) for each line of `path` that is a UTF-8 JSON object."""
    for raw in path.read_bytes().splitlines():
        try:
            line = raw.decode("utf-8")
            row = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(row, dict):
            yield line, row


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep the complete lines of `path` with step <= last_step; returns how many were kept."""
    if not path.exists():
        return 0
    kept = [line for line, row in _rows(path) if _step(row) <= last_step]
    with atomic_open(path, "w") as f:
        f.write("".join(line + "\n" for line in kept))
    return len(kept)


def _step(row: dict) -> float:
    step = row.get("step", math.inf)
    return step if isinstance(step, (int, float)) else math.inf


def read_metrics(path: str | Path) -> list[dict]:
    return [row for _, row in _rows(Path(path))]


def _quiet_tensorboard_storage_errors() -> None:
    """TensorBoard's writer thread prints a traceback when its disk fills up, then hands the
    error to the next `add_scalar`/`flush`, where it becomes one `error:` line: skip the print."""
    previous = threading.excepthook
    if getattr(previous, "cwm_quiet_tb", False):
        return

    def hook(args):
        if type(args.thread).__name__ == "_AsyncWriterThread" and storage_cause(args.exc_value):
            return
        previous(args)

    hook.cwm_quiet_tb = True
    threading.excepthook = hook


class MetricsLogger:
    """Scalars to metrics.jsonl and TensorBoard (under <run>/tb). Inert when `enabled` is False."""

    def __init__(self, run_dir: Path, start_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._writer = None
        self._file = None
        if not enabled:
            return
        self._tb_dir = Path(run_dir) / "tb"
        with storage_errors(self.path):
            truncate_metrics(self.path, start_step)
            self._file = open(self.path, "a")
        from torch.utils.tensorboard import SummaryWriter  # tensorboard import is slow; only here
        _quiet_tensorboard_storage_errors()
        with storage_errors(self._tb_dir):
            self._writer = SummaryWriter(str(self._tb_dir), purge_step=start_step + 1)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        with storage_errors(self.path):
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        with storage_errors(self._tb_dir):
            for k, v in scalars.items():
                self._writer.add_scalar(k, float(v), step)

    def flush(self) -> None:
        if self.enabled:
            with storage_errors(self.path):
                self._file.flush()
            with storage_errors(self._tb_dir):
                self._writer.flush()

    def close(self) -> None:
        """Close both logs; the first storage failure is raised after both were closed."""
        if not self.enabled:
            return
        self.enabled = False
        try:
            with storage_errors(self.path):
                self._file.close()
        finally:
            with storage_errors(self._tb_dir):
                self._writer.close()

"""Experience replay on disk: a directory of HDF5 chunk files, sampled as fixed-length sequences.

Step convention (DreamerV2's, which the agent follows): a step is one observation plus what led
to it. `add(step, worker)` takes a dict
    image        uint8 [64, 64, 3]   the observation
    action       float32 [A]         the action that produced this observation (zeros if is_first)
    reward       float32 []          the reward received with it (0 if is_first)
    is_first, is_last, is_terminal, success   bool []
plus any extra per-step arrays (stored and sampled alike; every step must carry the same keys).

Files: each worker (one env) writes its own stream of steps. Every `chunk_len` steps, and at the
end of every episode, the worker's pending steps become one file `<seq:010d>.h5`, written under a
temporary name and renamed when complete (`cwm.atomic.atomic_path`). A file records its worker and
the seq of the chunk it continues, so sequences are sampled across chunk boundaries (and across
episode boundaries within a stream: `is_first` marks where the world model must reset). A kill -9
loses at most the pending steps of each worker; every file under a final name opens.

Start-up scans the directory (the index is the file listing, nothing else), removes temporaries
left by a killed writer and loads every chunk once; data then lives in memory for fast sampling
(capacity x 12 KB per 64x64 step). Capacity is in steps; the oldest chunks are evicted first, from
memory and disk. One process owns a directory at a time (an advisory lock, released by the kernel
even after kill -9).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from cwm.atomic import atomic_path, remove_stale_tmp
from cwm.errors import UserError
from cwm.locks import DirLock

FORMAT = "cwm-replay-1"
# dtypes of the standard keys; other keys keep the dtype they arrive with.
DTYPES = {
    "image": np.uint8,
    "action": np.float32,
    "reward": np.float32,
    "is_first": bool,
    "is_last": bool,
    "is_terminal": bool,
    "success": bool,
}


@dataclass
class Chunk:
    """One file's worth of consecutive steps of one worker; `data[key]` is [T, ...]."""

    seq: int
    worker: int
    prev: int  # seq of the chunk this one continues, -1 when it starts a stream
    path: Path
    data: dict[str, np.ndarray]

    @property
    def length(self) -> int:
        return len(self.data["is_first"])


@dataclass
class _Stream:
    """Linked chunks of one worker, laid end to end: step g lives in chunks[i] at g - offsets[i]."""

    chunks: list[Chunk]
    offsets: np.ndarray  # int [n + 1], offsets[-1] = total
    lasts: np.ndarray  # int [episodes], stream positions of is_last steps, ascending

    @property
    def total(self) -> int:
        return int(self.offsets[-1])


def chunk_name(seq: int) -> str:
    return f"{seq:010d}.h5"


def read_chunk(path: Path) -> Chunk:
    """Load one chunk file fully (raises OSError/KeyError when it is not one)."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise KeyError(f"not a {FORMAT} file")
        data = {key: f[key][()] for key in f.keys()}
        chunk = Chunk(int(f.attrs["seq"]), int(f.attrs["worker"]), int(f.attrs["prev"]), path, data)
    lengths = {len(a) if a.ndim else -1 for a in data.values()}
    if "is_first" not in data or len(lengths) != 1 or chunk.length < 1:
        raise KeyError("its arrays do not hold one common number of steps")
    return chunk


# What every step of a replay has in common: its keys, and per key the shape and dtype of one
# step. Sampling stacks steps of many chunks, so one chunk with other image sizes would crash it.
Layout = tuple[tuple[str, tuple[int, ...], str], ...]


def layout_of(arrays: dict[str, np.ndarray], per_step: bool = False) -> Layout:
    """The layout of a chunk's arrays ([T, ...] each), or of one step's when `per_step`."""
    return tuple(sorted((k, a.shape if per_step else a.shape[1:], a.dtype.str)
                        for k, a in arrays.items()))


class Replay:
    """Sequence replay over a directory of HDF5 chunks (see the module docstring).

    sample(batch, length) -> {key: array [batch, length, ...]}; len() counts stored steps.
    `prioritize_ends` (upstream's option for Meta-world) clamps a start that would run past the
    end of its episode back to end there, so final steps are sampled as often as early ones.
    `discard_after` deletes the chunks whose seq is larger on opening: a run resuming from a
    checkpoint taken before they were written collects those steps again.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        capacity: int = 1_000_000,
        chunk_len: int = 256,
        seed: int = 0,
        prioritize_ends: bool = False,
        compression: str | None = "lzf",
        discard_after: int | None = None,
    ):
        if chunk_len < 1 or capacity < 1:
            raise UserError(f"replay needs chunk_len >= 1 and capacity >= 1, got {chunk_len}, {capacity}")
        self.directory = Path(directory)
        self.capacity = capacity
        self.chunk_len = chunk_len
        self.prioritize_ends = prioritize_ends
        self.compression = compression
        self._rng = np.random.default_rng(seed)
        self._lock: DirLock | None = DirLock(self.directory, "replay writer")
        self._chunks: dict[int, Chunk] = {}  # by seq, oldest first
        self._succ: dict[int, int] = {}  # seq -> seq of the chunk that continues it
        self._pending: dict[int, dict[str, list]] = {}  # worker -> key -> steps not yet on disk
        self._tail: dict[int, int] = {}  # worker -> seq of its last written chunk
        self._streams: list[_Stream] | None = None  # rebuilt lazily after any change
        self._layout: Layout | None = None  # every step and chunk has the same keys and shapes
        self._size = 0
        self._counts = {"loaded_steps": 0, "added_steps": 0, "evicted_steps": 0, "skipped_files": 0,
                        "discarded_files": 0}
        self._load(discard_after)

    # Opening ---------------------------------------------------------------------------------
    def _load(self, discard_after: int | None) -> None:
        # The lock guarantees no live writer, so every temporary here is a killed writer's.
        remove_stale_tmp(self.directory, "*.h5.*")
        chunks = []
        for path in sorted(self.directory.glob("*.h5")):
            if discard_after is not None and path.stem.isdigit() and int(path.stem) > discard_after:
                # Written after the checkpoint being resumed: the run will collect it again.
                path.unlink()
                self._counts["discarded_files"] += 1
                continue
            try:
                chunks.append(read_chunk(path))
            except (OSError, KeyError) as e:
                warnings.warn(f"replay: skipping unreadable {path.name}: {e}")
                self._counts["skipped_files"] += 1
        # The layout most of the stored steps have is the replay's; a chunk with another one
        # (other keys, image size or dtype: not this run's) is skipped, never sampled.
        steps_by_layout: dict[Layout, int] = {}
        for chunk in chunks:
            key = layout_of(chunk.data)
            steps_by_layout[key] = steps_by_layout.get(key, 0) + chunk.length
        if steps_by_layout:
            self._layout = max(steps_by_layout, key=steps_by_layout.get)
        for chunk in chunks:
            if layout_of(chunk.data) != self._layout:
                warnings.warn(f"replay: skipping {chunk.path.name}: its keys, shapes or dtypes differ "
                              f"from the other chunks'")
                self._counts["skipped_files"] += 1
                continue
            self._insert(chunk)
            self._counts["loaded_steps"] += chunk.length
        self._next_seq = max(self._chunks, default=-1) + 1
        self._evict()

    # Writing ---------------------------------------------------------------------------------
    def add(self, step: dict[str, Any], worker: int = 0) -> None:
        """Append one step of `worker`'s stream; written to disk at chunk_len or episode end."""
        arrays = {key: np.array(value, DTYPES.get(key)) for key, value in step.items()}
        layout = layout_of(arrays, per_step=True)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise ValueError(f"step keys, shapes or dtypes {layout} differ from the stored ones "
                             f"{self._layout}")
        pending = self._pending.get(worker)
        if pending is None:
            pending = self._pending[worker] = {key: [] for key in step}
        for key, array in arrays.items():
            pending[key].append(array)
        self._counts["added_steps"] += 1
        if len(pending["is_first"]) >= self.chunk_len or bool(step["is_last"]):
            self._write(worker)

    def flush(self) -> None:
        """Write every worker's pending steps now (a clean shutdown loses nothing)."""
        for worker in list(self._pending):
            self._write(worker)

    def _write(self, worker: int) -> None:
        pending = self._pending.pop(worker, None)
        if not pending or not pending["is_first"]:
            return
        data = {key: np.stack(values) for key, values in pending.items()}
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        chunk = Chunk(seq, worker, self._tail.get(worker, -1), self.directory / chunk_name(seq), data)
        with atomic_path(chunk.path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs.update(format=FORMAT, seq=seq, worker=worker, prev=chunk.prev)
                for key, array in data.items():
                    compress = self.compression if array.ndim > 1 else None
                    f.create_dataset(key, data=array, compression=compress)
        self._tail[worker] = seq
        self._insert(chunk)
        self._evict()

    def _insert(self, chunk: Chunk) -> None:
        self._chunks[chunk.seq] = chunk
        if chunk.prev in self._chunks:
            self._succ[chunk.prev] = chunk.seq
        self._size += chunk.length
        self._streams = None

    def _evict(self) -> None:
        while self._size > self.capacity and self._chunks:
            seq = next(iter(self._chunks))
            chunk = self._chunks.pop(seq)
            self._succ.pop(seq, None)
            chunk.path.unlink(missing_ok=True)
            self._size -= chunk.length
            self._counts["evicted_steps"] += chunk.length
            self._streams = None

    # Sampling --------------------------------------------------------------------------------
    def _index(self) -> list[_Stream]:
        if self._streams is None:
            heads = [c for c in self._chunks.values() if self._succ.get(c.prev) != c.seq]
            streams = []
            for head in heads:
                chain = [head]
                while chain[-1].seq in self._succ:
                    chain.append(self._chunks[self._succ[chain[-1].seq]])
                offsets = np.cumsum([0] + [c.length for c in chain])
                lasts = np.concatenate(
                    [np.flatnonzero(c.data["is_last"]) + o for c, o in zip(chain, offsets)]
                )
                streams.append(_Stream(chain, offsets, lasts))
            self._streams = streams
        return self._streams

    def _start(self, stream: _Stream, length: int) -> int:
        total = stream.total
        if not self.prioritize_ends:
            return int(self._rng.integers(0, total - length + 1))
        start = int(self._rng.integers(0, total))
        k = np.searchsorted(stream.lasts, start)
        end = int(stream.lasts[k]) if k < len(stream.lasts) else total - 1
        if start + length - 1 > end:
            start = end - length + 1
        return min(max(start, 0), total - length)

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """`batch` sequences of `length` consecutive steps: {key: [batch, length, ...]}, each
        with is_first set at its first step."""
        streams = self._index()
        totals = np.array([s.total for s in streams], np.int64)
        if self.prioritize_ends:
            weights = np.where(totals >= length, totals, 0)
        else:
            weights = np.maximum(totals - length + 1, 0)
        if weights.sum() == 0:
            raise ValueError(f"replay holds no sequence of {length} steps yet ({len(self)} steps stored)")
        picks = self._rng.choice(len(streams), size=batch, p=weights / weights.sum())
        example = streams[0].chunks[0].data
        out = {k: np.empty((batch, length) + v.shape[1:], v.dtype) for k, v in example.items()}
        for b, s in enumerate(picks):
            self._gather(streams[s], self._start(streams[s], length), length, out, b)
        if "is_first" in out:
            # Every sequence starts from the initial latent state, as upstream's replay marks
            # (wmlib/core/replay.py sets is_first at index 0 of each sampled sequence): the
            # world model never carries a state into a batch, so step 0 starts afresh.
            out["is_first"][:, 0] = True
        return out

    @staticmethod
    def _gather(stream: _Stream, start: int, length: int, out: dict[str, np.ndarray], row: int) -> None:
        """Copy stream steps [start, start + length) into out[key][row]."""
        i = int(np.searchsorted(stream.offsets, start, side="right")) - 1
        filled = 0
        while filled < length:
            chunk = stream.chunks[i]
            lo = start + filled - int(stream.offsets[i])
            n = min(chunk.length - lo, length - filled)
            for key, array in out.items():
                array[row, filled : filled + n] = chunk.data[key][lo : lo + n]
            filled += n
            i += 1

    def episodes(self) -> Iterator[dict[str, np.ndarray]]:
        """Every complete stored episode (is_first ... is_last) as {key: [T, ...]}, oldest first.

        Episodes cut by eviction at the front or by a crash at the end are left out.
        """
        for stream in self._index():
            firsts = np.concatenate(
                [np.flatnonzero(c.data["is_first"]) + o for c, o in zip(stream.chunks, stream.offsets)]
            )
            for start, next_start in zip(firsts, list(firsts[1:]) + [stream.total]):
                k = np.searchsorted(stream.lasts, start)
                if k == len(stream.lasts) or stream.lasts[k] >= next_start:
                    continue
                length = int(stream.lasts[k] - start + 1)
                example = stream.chunks[0].data
                out = {key: np.empty((1, length) + v.shape[1:], v.dtype) for key, v in example.items()}
                self._gather(stream, int(start), length, out, 0)
                yield {key: v[0] for key, v in out.items()}

    # Bookkeeping -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def chunks(self) -> list[Chunk]:
        """Stored chunks, oldest first (read-only view for exporters)."""
        return list(self._chunks.values())

    def stats(self) -> dict[str, int]:
        return {
            "steps": self._size,
            "chunks": len(self._chunks),
            "streams": len(self._index()),
            "episodes_ended": int(sum(c.data["is_last"].sum() for c in self._chunks.values())),
            "pending_steps": sum(len(p["is_first"]) for p in self._pending.values()),
            **self._counts,
        }

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs for an exact resume (the data itself is the directory)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        """Write pending steps and release the directory."""
        if self._lock is None:
            return
        self.flush()
        self._lock.release()
        self._lock = None

    def __enter__(self) -> "Replay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Handing batches from DataLoader workers to the trainer through reused shared-memory slots.

A batch built in a worker must reach the main process without copying its pixels. torch's default
is to move every tensor into a *new* shared-memory segment per batch: the worker then writes into
freshly mapped pages (a page fault per 4 KiB, ~4 ms for a 16 x 25 x 64 x 64 x 3 batch, more than
reading the clips) and the main process maps the segment anew. The ring here is allocated once
per pass by the main process, before the workers start, and inherited by them (fork) or sent
once (spawn): its pages are faulted in once, on both sides, and a batch travels as a slot number.

    slot s of worker w      one shared storage holding frames [B, T, 64, 64, 3] and context
                            [B, 64, 64, 3]; written only by worker w
    busy[w * slots + s]     1 from the moment the worker claims the slot until the main process
                            sees that nothing references the batch any more

A batch the caller keeps is never overwritten: the main process frees a slot only when the slot
storage's reference count is back to the ring's own reference, i.e. no tensor, view or numpy
array made from the batch is alive. When all of a worker's slots are held (a caller keeping many
batches), the worker falls back to a fresh segment for that batch, so nothing ever waits.
"""

from __future__ import annotations

import math

import torch

from cwm.shards.format import FRAME_SIZE

FRAME_BYTES = FRAME_SIZE * FRAME_SIZE * 3


def _shared_storage(nbytes: int) -> torch.UntypedStorage:
    # Allocated in shared memory directly: `torch.empty(...).share_memory_()` would allocate twice
    # and copy (measured 14 ms vs 2 ms for a 16 x 25 x 64 x 64 x 3 batch).
    return torch.UntypedStorage._new_shared(nbytes)


def batch_views(storage: torch.UntypedStorage, capacity: int, seq_len: int,
                n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """frames [n, T, 64, 64, 3] and context [n, 64, 64, 3] uint8 tensors on a slot's storage."""
    frames_shape = (capacity, seq_len, FRAME_SIZE, FRAME_SIZE, 3)
    frames = torch.empty(0, dtype=torch.uint8).set_(storage, 0, frames_shape)
    context = torch.empty(0, dtype=torch.uint8).set_(
        storage, math.prod(frames_shape), (capacity, FRAME_SIZE, FRAME_SIZE, 3))
    return frames[:n], context[:n]


def slot_bytes(capacity: int, seq_len: int) -> int:
    return capacity * (seq_len + 1) * FRAME_BYTES


def fresh_batch(n: int, seq_len: int, shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-off batch: in shared memory for a worker without a free slot (or without a ring),
    in ordinary memory when the batch is built in the main process."""
    nbytes = slot_bytes(n, seq_len)
    storage = _shared_storage(nbytes) if shared else torch.UntypedStorage(nbytes)
    return batch_views(storage, n, seq_len, n)


class SlotRing:
    """Per-worker rings of reusable batch slots in shared memory (see the module docstring)."""

    def __init__(self, workers: int, slots_per_worker: int, capacity: int, seq_len: int):
        self.workers, self.slots_per_worker = workers, slots_per_worker
        self.capacity, self.seq_len = capacity, seq_len
        nbytes = slot_bytes(capacity, seq_len)
        self.storages = [_shared_storage(nbytes) for _ in range(workers * slots_per_worker)]
        for storage in self.storages:
            storage.fill_(0)       # fault every page in once, here, not per batch
        self.busy = torch.zeros(workers * slots_per_worker, dtype=torch.uint8).share_memory_()
        self._held: list[int] = []  # main process: slots handed to the caller, maybe still in use

    # -- worker side -------------------------------------------------------------------------
    def claim(self, worker: int) -> int | None:
        """A free slot of `worker`, now marked busy; None when the caller holds all of them."""
        busy = self.busy.numpy()
        first = worker * self.slots_per_worker
        for slot in range(first, first + self.slots_per_worker):
            if not busy[slot]:
                busy[slot] = 1
                return slot
        return None

    def views(self, slot: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return batch_views(self.storages[slot], self.capacity, self.seq_len, n)

    # -- main process --------------------------------------------------------------------------
    def receive(self, slot: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch in `slot` as new tensors; the slot stays busy while any of them lives."""
        self.release_unused()
        self._held.append(slot)
        return self.views(slot, n)

    def release_unused(self) -> None:
        """Mark free every held slot whose batch nothing references any more."""
        if not self._held:
            return
        busy = self.busy.numpy()
        still = []
        for slot in self._held:
            # 1 = the ring's own reference: no tensor or view of the batch is alive.
            if torch._C._storage_Use_Count(self.storages[slot]._cdata) > 1:
                still.append(slot)
            else:
                busy[slot] = 0
        self._held = still

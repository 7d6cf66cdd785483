"""`make_clip_loader`: what the trainer calls to get batches of clips from a shard spec.

    loader = make_clip_loader("shards/<0000..0999>.tar", batch_size=16)
    for batch in loader:
        batch["frames"]         # torch.uint8 [B, T, 64, 64, 3]
        batch["context"]        # torch.uint8 [B, 64, 64, 3], frames[b, context_index[b]]
        batch["context_index"]  # torch.long [B], index within the window
        batch["start"]          # torch.long [B], window start within the segment
        batch["key"]            # list[str]
        batch["meta"]           # list[dict]

train=True: endless, or `clips_per_epoch` clips per pass (rounded up to whole batches, counted per
rank: every rank yields exactly the same number of batches). Each clip is drawn independently:
a uniformly random video, then a uniformly random window of it, which may cross the video's
segment boundaries (`sample_by="video"`, upstream's; see `cwm.shards.draw`). Each pass over the loader is a new
epoch with fresh draws; the same `seed` gives the same stream, so a resumed trainer reseeds.
train=False: every sample exactly once (across ranks and workers), last batch partial, windows
fixed by (seed, key).
"""

from __future__ import annotations

import math
from itertools import islice
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from cwm.errors import UserError
from cwm.shards.collate import finish
from cwm.shards.dataset import ClipDataset, ClipDatasetConfig
from cwm.shards.handoff import SlotRing

# Per worker: the batches DataLoader prefetches (2) and the one being built, plus the two the
# caller may hold (the current batch and, while it asks for the next, the previous one).
SLOTS_PER_WORKER = 6


class ClipLoader:
    """An iterable of batch dicts over a `ClipDataset`, a torch DataLoader underneath."""

    def __init__(self, dataset: ClipDataset, num_workers: int, batches_per_epoch: int | None,
                 pin_memory: bool):
        self.dataset = dataset
        self.num_workers = num_workers
        self.batches_per_epoch = batches_per_epoch
        self.pin_memory = pin_memory
        self.epoch = 0

    @property
    def stats(self):
        """Skip counters of in-process reading (num_workers=0); workers warn instead."""
        return self.dataset.stats

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError("this loader has no length: it is endless (train=True without "
                            "clips_per_epoch) or an evaluation pass of unknown size")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict]:
        self.dataset.prepare()   # before the workers fork: they share the catalog
        self.dataset.epoch = self.epoch
        self.epoch += 1
        if self.num_workers == 0:
            loader = DataLoader(self.dataset, batch_size=None, num_workers=0,
                                pin_memory=self.pin_memory)
            yield from self._cut(iter(loader))
            return
        # A new ring per pass: batches still held from the last pass keep their own slots.
        c = self.dataset.config
        ring = SlotRing(self.num_workers, SLOTS_PER_WORKER, c.batch_size, c.seq_len)
        self.dataset.ring = ring
        try:
            batches = iter(DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers))
        finally:
            self.dataset.ring = None   # the workers have theirs now
        for batch in self._cut(batches):
            batch = finish(batch, ring)
            if self.pin_memory:
                # The copy into pinned memory frees the slot at once.
                batch["frames"] = batch["frames"].pin_memory()
                batch["context"] = batch["context"].pin_memory()
            yield batch

    def _cut(self, batches: Iterator[dict]) -> Iterator[dict]:
        if self.batches_per_epoch is not None:
            # Workers yield ceil(n / workers) batches each; cut to exactly n.
            return islice(batches, self.batches_per_epoch)
        return batches


def make_clip_loader(spec: str, *, batch_size: int, seq_len: int = 25, train: bool = True,
                     num_workers: int = 2, seed: int = 0, clips_per_epoch: int | None = None,
                     shuffle_buffer: int = 500, pin_memory: bool | None = None,
                     sample_by: str = "video", access: str = "auto") -> ClipLoader:
    """Batches of clips from the shards `spec` names (see `cwm.shards.spec` for the syntax).

    Raises `UserError` for a spec that matches nothing or is malformed, and for bad sizes.
    `pin_memory=None` pins when CUDA is available (for non-blocking copies to the GPU).
    Training draws: `sample_by` "video" (upstream: uniform video, then uniform window) or
    "segment" (uniform over all windows); `access` "auto" indexes local uncompressed tars and
    streams anything else, "index"/"stream" force one (`cwm.shards.dataset`). `shuffle_buffer`
    applies to streaming only.
    """
    if num_workers < 0:
        raise UserError(f"num_workers must be >= 0, got {num_workers}")
    if clips_per_epoch is not None and clips_per_epoch < 1:
        raise UserError(f"clips_per_epoch must be >= 1, got {clips_per_epoch}")
    batches_per_epoch = None
    batches_per_worker = None
    if train and clips_per_epoch is not None:
        batches_per_epoch = math.ceil(clips_per_epoch / batch_size)
        batches_per_worker = math.ceil(batches_per_epoch / max(1, num_workers))
    config = ClipDatasetConfig(spec=spec, batch_size=batch_size, seq_len=seq_len, train=train,
                               seed=seed, shuffle_buffer=shuffle_buffer,
                               batches_per_worker=batches_per_worker, sample_by=sample_by,
                               access=access)
    dataset = ClipDataset(config)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return ClipLoader(dataset, num_workers, batches_per_epoch, pin_memory)

"""Turning a list of clips into the batch the trainer receives.

    frames         torch.uint8 [B, T, 64, 64, 3]
    context        torch.uint8 [B, 64, 64, 3]   frames[b, context_index[b]]
    context_index  torch.long  [B]              index within the window
    start          torch.long  [B]              window start within segment `key` (the window
                                                may continue into the video's next segments)
    key            list[str]
    meta           list[dict]

Pixels stay uint8: conversion to float happens on the device, where it is free, instead of
quadrupling the bytes every worker hands over. Inside a DataLoader worker the clips are copied
straight into shared memory: a slot of the loader's `SlotRing` when it has one (the batch then
travels as a slot number, see `cwm.shards.handoff`), else a fresh shared segment.
"""

from __future__ import annotations

import torch
from torch.utils.data import get_worker_info

from cwm.shards.handoff import SlotRing, fresh_batch
from cwm.shards.sampling import Clip


def collate_clips(clips: list[Clip], seq_len: int, ring: SlotRing | None = None) -> dict:
    """The batch dict above; in a worker with a `ring`, a slot reference instead (see `receive`)."""
    b = len(clips)
    worker = get_worker_info()
    slot = ring.claim(worker.id) if ring is not None and worker is not None else None
    if slot is not None:
        frames, context = ring.views(slot, b)
    else:
        frames, context = fresh_batch(b, seq_len, shared=worker is not None)
    frames_np, context_np = frames.numpy(), context.numpy()
    for i, clip in enumerate(clips):
        pos = 0
        for piece in clip.pieces:
            frames_np[i, pos : pos + piece.shape[0]] = piece
            pos += piece.shape[0]
        context_np[i] = frames_np[i, clip.context_index]
    # A slot's pixels stay where they are; the main process maps them back in `finish`.
    pixels = {"slot": slot} if slot is not None else {"frames": frames, "context": context}
    batch = {
        **pixels,
        "context_index": [c.context_index for c in clips],
        "start": [c.start for c in clips],
        "key": [c.key for c in clips],
        "meta": [c.meta for c in clips],
    }
    if ring is None:
        return finish(batch, None)
    # Through a ring the small fields travel as lists (a tensor each would cost a shared segment
    # and a file descriptor); the main process finishes the batch with `finish`.
    return batch


def finish(batch: dict, ring: SlotRing | None) -> dict:
    """The trainer's batch from what a worker sent: slot pixels mapped, index lists as tensors."""
    slot = batch.pop("slot", None)
    if slot is not None:
        batch["frames"], batch["context"] = ring.receive(slot, len(batch["key"]))
    batch["context_index"] = torch.as_tensor(batch["context_index"], dtype=torch.long)
    batch["start"] = torch.as_tensor(batch["start"], dtype=torch.long)
    return batch

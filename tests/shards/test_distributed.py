"""2 CPU ranks under torchrun (gloo), 2 workers each, ONE shard: 4 readers for 1 shard.

The classic webdataset DDP hang is a rank that gets no shard and so never reaches the collective
its peers wait in. Training must keep every rank in step; evaluation must read each sample once.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.shards.conftest import write_shards

_WORKER = r'''
import json, sys
import torch, torch.distributed as dist
from cwm.shards.loader import make_clip_loader

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
spec, out = sys.argv[1], sys.argv[2]
train = make_clip_loader(spec, batch_size=2, num_workers=2, clips_per_epoch=6, shuffle_buffer=4)
steps, keys = 0, []
for _ in range(2):
    for batch in train:
        # a DDP step: every rank must arrive here the same number of times
        t = batch["frames"].float().mean().reshape(1)
        dist.all_reduce(t)
        steps += 1
        keys += [(k, int(s)) for k, s in zip(batch["key"], batch["start"])]
evaluation = make_clip_loader(spec, batch_size=2, train=False, num_workers=2)
eval_keys = [k for batch in evaluation for k in batch["key"]]
gathered = [None] * world
dist.all_gather_object(gathered, {"steps": steps, "train": keys, "eval": eval_keys})
if rank == 0:
    json.dump(gathered, open(out, "w"))
dist.barrier()
dist.destroy_process_group()
'''


def test_torchrun_two_ranks_more_readers_than_shards(tmp_path):
    write_shards(tmp_path / "data", shards=1, per_shard=3, lengths=(30, 40))
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    out = tmp_path / "out.json"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path / "data"), str(out)],
        env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())
    assert [r["steps"] for r in ranks] == [6, 6]  # 2 epochs x ceil(6 / 2) batches, both ranks
    assert ranks[0]["train"] != ranks[1]["train"]  # ranks draw different clips
    eval_keys = ranks[0]["eval"] + ranks[1]["eval"]
    assert sorted(eval_keys) == sorted(set(eval_keys)) and len(eval_keys) == 3

"""BatchNorm statistics under data parallelism: 2 CPU ranks on gloo = one process on all 16 clips."""

import dataclasses

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from cwm.model.batchnorm import AllReduceBatchNorm2d, sync_batchnorm
from cwm.model.config import make_config
from cwm.model.world_model import WorldModel, to_float_images

from tests.model.clips import moving_squares

CLIPS, FRAMES = 16, 4


def _model() -> WorldModel:
    # no randomness inside the forward pass: token drop and dropout off
    cfg = dataclasses.replace(make_config("tiny", "contextwm").model, ctx_token_drop=0.0,
                              attn_dropout=0.0)
    torch.manual_seed(0)
    return WorldModel(cfg).train().double()  # float64: the comparison is of maths, not rounding


def _inputs():
    images = to_float_images(torch.from_numpy(moving_squares(CLIPS, FRAMES, seed=3))).double()
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(CLIPS, FRAMES, _model().cfg.feat_dim, generator=g, dtype=torch.float64)
    weights = torch.randn(CLIPS, FRAMES, 3, 64, 64, generator=g, dtype=torch.float64)
    return images, feat, weights


def _step(model: WorldModel, images, feat, weights) -> torch.Tensor:
    """Encoder, context encoder and decoder (every BatchNorm of the model) on the given clips."""
    embed = model.encode(images)
    ctx = model.encode_context(images[:, 0])
    out = model.decode(feat, ctx)
    return (out * weights).sum() + embed.square().sum() * 1e-3


def _state(model: WorldModel) -> dict:
    buffers = {k: v.clone() for k, v in model.state_dict().items()
               if "running" in k or "num_batches" in k}
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return {"buffers": buffers, "grads": grads}


def _rank(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model = _model()
        n, message = sync_batchnorm(model, torch.device("cpu"))
        images, feat, weights = _inputs()
        share = slice(rank * CLIPS // world, (rank + 1) * CLIPS // world)
        _step(model, images[share], feat[share], weights[share]).backward()
        torch.save({**_state(model), "n": n, "message": message}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process_on_the_whole_batch(tmp_path):
    torch.set_num_threads(1)
    reference = _model()
    _step(reference, *_inputs()).backward()
    ref = _state(reference)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in reference.modules())

    mp.spawn(_rank, args=(2, str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2)
    ranks = [torch.load(tmp_path / f"out.{r}", weights_only=False) for r in range(2)]
    assert ranks[0]["n"] == n_bn > 0
    assert "synchronised across 2 ranks (all-reduce on gloo)" in ranks[0]["message"]
    for r in ranks:
        for k, v in ref["buffers"].items():
            assert torch.allclose(r["buffers"][k], v, rtol=1e-9, atol=1e-12), k
    # gradients: the ranks' sum (what DDP averages, up to the 1/W of its mean) is the whole batch's
    for k, g in ref["grads"].items():
        total = ranks[0]["grads"][k] + ranks[1]["grads"][k]
        assert torch.allclose(total, g, rtol=1e-7, atol=1e-9), k  # (key biases: ~0 exactly)

    # without the synchronisation the ranks' statistics differ from the whole batch's
    alone = _model()
    images, feat, weights = _inputs()
    _step(alone, images[:CLIPS // 2], feat[:CLIPS // 2], weights[:CLIPS // 2])
    key = "encoder.stages.0.0.body.1.running_var"
    assert not torch.allclose(alone.state_dict()[key], ref["buffers"][key], rtol=1e-6, atol=0)


def test_a_job_that_cannot_synchronise_says_why_in_one_line(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        model = _model()
        # one rank: nothing to synchronise, nothing converted
        n, message = sync_batchnorm(model, torch.device("cpu"))
        assert n == 0 and "single process" in message
    finally:
        dist.destroy_process_group()

    # gloo cannot all-reduce tensors of the meta device: the job goes on unsynchronised, and says so
    mp.spawn(_cannot_sync, args=(str(tmp_path / "store2"), str(tmp_path / "msg")), nprocs=2)
    message = (tmp_path / "msg").read_text()
    assert message.startswith("warning: BatchNorm statistics NOT synchronised across the 2 ranks")
    assert "gloo cannot all-reduce on meta" in message and "\n" not in message


def _cannot_sync(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model = _model()
        n, message = sync_batchnorm(model, torch.device("meta"))
        assert n == 0
        assert not any(isinstance(m, AllReduceBatchNorm2d) for m in model.modules())
        if rank == 0:
            with open(out, "w") as f:
                f.write(message)
    finally:
        dist.destroy_process_group()

"""The fast paths train the same model as the reference path (`cwm.model.fast`).

On a fixed batch and the same random draws, the `eager` and `compiled` paths must give the
reference path's loss and gradients, and the fused optimizer the for-loop one's update, up to
float32 rounding: channels-last convolutions, compiled kernels and the fused update sum in other
orders. Tolerance: loss within 1e-5 relative; every gradient tensor within 1e-4 x its own
largest |gradient| or 1e-4 x the model's largest, whichever is larger (measured: loss 1e-6,
gradients 2e-5 for eager and compiled; a conv bias before a BatchNorm, whose exact gradient is
zero, only meets the second). The attention's
key/value and output biases are the exception: their exact gradient is zero (softmax ignores a
shift of the keys, the BatchNorm after the attention a shift of its output), so both paths only
hold rounding noise there, which must stay below 1e-4 x the model's largest |gradient|
(measured 3e-6 with torch on 2 threads, 1.1e-5 on 1 thread, where the whole test suite runs
and the reference path's own noise alone reaches it). The fused AdamW must move every parameter as the for-loop one within 1e-6 over
two steps on the same gradients. A real change of the model (one BatchNorm's eps) fails.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from cwm.errors import UserError
from cwm.model.config import make_config
from cwm.model.fast import (compile_cache_dir, prepare, resolve_speed, uses_fused_optimizer,
                            wrap)
from cwm.model.train import make_optimizer
from cwm.model.world_model import WorldModel

from tests.model.clips import moving_squares

LOSS_RTOL = 1e-5
GRAD_RTOL, ZERO_GRAD_RTOL = 1e-4, 1e-4
ZERO_IN_EXACT_ARITHMETIC = ("attention.kv_proj.bias", "attention.out_proj.bias")
STEP_ATOL = 1e-6


def _batch(n: int = 3, length: int = 4):
    clips = torch.from_numpy(moving_squares(n, length, seed=3))
    return clips, clips[:, 1].clone()


def _loss_and_grads(net, model, frames, context, seed: int = 7):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same token drop, dropout and latent samples on every path
    loss, _ = net(frames, context)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _assert_same(ref, fast):
    (loss_r, grads_r), (loss_f, grads_f) = ref, fast
    assert torch.isclose(loss_f, loss_r, rtol=LOSS_RTOL, atol=0), (float(loss_f), float(loss_r))
    assert grads_r.keys() == grads_f.keys()
    scale = max(g.abs().max() for g in grads_r.values())
    for name, g in grads_r.items():
        if name.endswith(ZERO_IN_EXACT_ARITHMETIC):
            for grad in (g, grads_f[name]):
                assert grad.abs().max() <= ZERO_GRAD_RTOL * scale, f"{name} is not ~0"
            continue
        # A floor at the noise level of the zero gradients above: a conv bias followed by
        # BatchNorm also has an exact gradient of zero, so its own largest value is noise.
        tol = max(GRAD_RTOL * g.abs().max(), ZERO_GRAD_RTOL * scale)
        err = (grads_f[name] - g).abs().max()
        assert err <= tol, f"{name}: gradients differ by {float(err):.3g} > {float(tol):.3g}"


def _pair(kind: str, speed: str):
    torch.manual_seed(0)
    ref = WorldModel(make_config("tiny", kind).model)
    fast = copy.deepcopy(ref)
    prepare(fast, speed)
    return ref, fast


@pytest.mark.parametrize("kind", ["contextwm", "plain", "dreamerv2"])
def test_eager_path_matches_reference(kind):
    frames, context = _batch()
    ref, fast = _pair(kind, "eager")
    assert fast.encoder.stem.weight.is_contiguous(memory_format=torch.channels_last) \
        if kind != "dreamerv2" else True
    for seed in (7, 8):
        _assert_same(_loss_and_grads(ref, ref, frames, context, seed),
                     _loss_and_grads(fast, fast, frames, context, seed))


def test_fast_layout_keeps_checkpoints_interchangeable():
    ref, fast = _pair("contextwm", "eager")
    assert fast.state_dict().keys() == ref.state_dict().keys()
    again = WorldModel(make_config("tiny", "contextwm").model)
    again.load_state_dict(fast.state_dict())
    for (n, a), b in zip(again.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n


def test_fused_optimizer_step_matches_for_loop():
    """Given the same gradients, the fused AdamW moves every parameter as the for-loop one.
    (Fed by the two layouts' gradients instead, Adam would blow the rounding noise of the
    zero-in-exact-arithmetic gradients up to full lr-sized steps.)"""
    cfg = make_config("tiny", "contextwm")
    frames, context = _batch()
    torch.manual_seed(0)
    ref = WorldModel(cfg.model)
    fused = copy.deepcopy(ref)
    opt_r = make_optimizer(ref, cfg, fused=uses_fused_optimizer("reference"))
    opt_f = make_optimizer(fused, cfg, fused=uses_fused_optimizer("eager"))
    assert opt_f.defaults["fused"] and not opt_r.defaults["fused"]
    for seed in (1, 2):
        _, grads = _loss_and_grads(ref, ref, frames, context, seed)
        for name, p in fused.named_parameters():
            p.grad = grads[name].clone()
        opt_r.step()
        opt_f.step()
    for (name, a), b in zip(ref.named_parameters(), fused.parameters()):
        assert (a - b).abs().max() <= STEP_ATOL, name
    # The fused optimizer's state loads into the for-loop one (checkpoints resume across paths).
    make_optimizer(ref, cfg).load_state_dict(opt_f.state_dict())


def compile_and_step():
    """Compiles the tiny ContextWM and runs one step: (reference, compiled) loss and gradients.
    Inductor draws random numbers its own way unless `fallback_random`: with it, the compiled
    step sees the reference's token drop, dropout and latent samples."""
    import torch._inductor.config as inductor_config

    frames, context = _batch(2, 3)
    ref, fast = _pair("contextwm", "compiled")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(compile_cache_dir())
    net = wrap(fast, "compiled")
    with inductor_config.patch(fallback_random=True):
        compiled = _loss_and_grads(net, fast, frames, context)
    return _loss_and_grads(ref, ref, frames, context), compiled


def test_compiled_path_matches_reference(compile_warmed):
    """(Compiles the tiny model: ~20 s with a warm cache, minutes the first time on a machine;
    tests/conftest.py warms the cache in the background while earlier tests run.)"""
    _assert_same(*compile_and_step())


def test_a_different_model_is_caught():
    """The tolerances are tight enough to see a real change: one BatchNorm's eps."""
    frames, context = _batch()
    ref, other = _pair("contextwm", "eager")
    other.decoder.stages[0][0].body[1].eps = 1e-3
    with pytest.raises(AssertionError):
        _assert_same(_loss_and_grads(ref, ref, frames, context),
                     _loss_and_grads(other, other, frames, context))


def test_speed_names():
    assert resolve_speed("auto", "paper", "cuda") == "compiled"
    assert resolve_speed("auto", "paper", "cpu") == "eager"
    assert resolve_speed("auto", "paper") == "eager"
    assert resolve_speed("auto", "small", "cuda") == "eager"
    assert resolve_speed("auto", "small") == "eager"
    assert resolve_speed("auto", "tiny") == "eager"
    assert resolve_speed("reference", "paper") == "reference"
    with pytest.raises(UserError, match="unknown speed"):
        resolve_speed("turbo", "paper")

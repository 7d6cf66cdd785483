"""The sub-pixel form of a transposed convolution (`cwm.model.subpixel`) is the same function of
the same parameters as torch's layer: equal outputs up to float summation order (in float64,
1e-12), the gradients torch's own backward gives, the same state_dict, and the switch only where
the form pays (DreamerV2's narrow, even-kernel layers)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.config import make_config
from cwm.model.decoder import ConvDecoder, ResNetDecoder
from cwm.model.fast import prepare
from cwm.model.subpixel import ConvTranspose2d, conv_transpose2d_subpixel, use_subpixel_
from cwm.model.world_model import WorldModel

torch.set_num_threads(1)


def _configs():
    for k, s, p, op, n in itertools.product([2, 3, 5, 6], [1, 2, 3], [0, 1, 2], [0, 1, 2],
                                            [1, 4, 7]):
        if op < s and p < k and (n - 1) * s - 2 * p + k + op > 0:
            yield k, s, p, op, n


@pytest.mark.parametrize("k, s, p, op, n", list(_configs()))
def test_subpixel_form_equals_the_transposed_convolution(k, s, p, op, n):
    gen = torch.Generator().manual_seed(k * 100 + s * 10 + p + op * 1000 + n * 7)
    x = torch.randn(2, 3, n, n, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 4, k, k, generator=gen, dtype=torch.float64)
    b = torch.randn(4, generator=gen, dtype=torch.float64)
    want = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
    got = conv_transpose2d_subpixel(x, w, b, s, p, op)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-12


@pytest.mark.parametrize("cin, cout, k, p, op, side", [
    (8, 3, 6, 0, 0, 30), (16, 8, 6, 0, 0, 13), (24, 3, 3, 1, 1, 32)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_layer_outputs_match_and_gradients_are_torchs(cin, cout, k, p, op, side, channels_last):
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(cin, cout, k, stride=2, padding=p, output_padding=op)
    fast = ConvTranspose2d(cin, cout, k, 2, p, op)
    fast.load_state_dict(ref.state_dict())
    use_subpixel_(fast)
    x = torch.randn(5, cin, side, side)
    if channels_last:
        for m in (ref, fast):
            m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(ref(x))
    outs, grads = [], []
    for m in (ref, fast):
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        y.backward(grad)
        outs.append(y.detach())
        grads.append([xi.grad, m.weight.grad, m.bias.grad])
    assert (outs[1] - outs[0]).abs().max() <= 1e-6 * outs[0].abs().max()
    for g_fast, g_ref in zip(grads[1], grads[0]):
        assert torch.equal(g_fast, g_ref)   # the same backward on the same incoming gradient


def test_the_switch_is_off_by_default_and_output_size_takes_torchs_path():
    layer = ConvTranspose2d(4, 3, 6, 2)
    assert not layer.subpixel
    use_subpixel_(layer)
    x = torch.randn(1, 4, 5, 5)
    assert layer(x, output_size=[15, 15]).shape[-1] == 15
    use_subpixel_(layer, False)
    assert not layer.subpixel


@pytest.mark.parametrize("depth, switchable", [(8, [4, 6]), (48, [6])])
def test_conv_decoder_switches_only_its_narrow_layers_and_keeps_its_parameters(depth, switchable):
    dec = ConvDecoder(40, depth)
    assert [i for i, m in enumerate(dec.net) if isinstance(m, ConvTranspose2d)] == switchable
    # The state_dict of torch's layers, name for name and shape for shape.
    kernels, chans = (5, 5, 6, 6), [32 * depth, 4 * depth, 2 * depth, depth, 3]
    want = {"linear.weight": (32 * depth, 40), "linear.bias": (32 * depth,)}
    for i, k in enumerate(kernels):
        want[f"net.{2 * i}.weight"] = (chans[i], chans[i + 1], k, k)
        want[f"net.{2 * i}.bias"] = (chans[i + 1],)
    assert {n: tuple(t.shape) for n, t in dec.state_dict().items()} == want


def test_the_resnet_decoders_odd_kernel_output_layer_stays_torchs():
    assert type(ResNetDecoder(40, depth=8).out) is nn.ConvTranspose2d


def test_fast_paths_switch_it_on_and_reference_keeps_torchs_forward():
    model = make_config("tiny", "dreamerv2").model
    ref, fast = WorldModel(model), WorldModel(model)
    prepare(ref, "reference")
    prepare(fast, "eager")
    layers = lambda m: [x for x in m.decoder.modules() if isinstance(x, ConvTranspose2d)]
    assert layers(fast) and all(x.subpixel for x in layers(fast))
    assert not any(x.subpixel for x in layers(ref))
    # A checkpoint of either loads into the other.
    ref.load_state_dict(fast.state_dict())
    fast.load_state_dict(ref.state_dict())

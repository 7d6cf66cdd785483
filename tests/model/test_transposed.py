"""The fast forms of a transposed convolution (`cwm.model.transposed`) are the same function of
the same parameters as torch's layer: equal outputs up to float summation order (float64: 1e-12),
input and weight gradients those of torch's own backward (the 1 x 1 product's within float32
rounding), the bias gradient a sum in another order, the same state_dict, and the sub-pixel
form only where it pays."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.config import make_config
from cwm.model.decoder import ConvDecoder, ResNetDecoder
from cwm.model.fast import prepare
from cwm.model.transposed import (ConvTranspose2d, conv_transpose2d_patch,
                                  conv_transpose2d_subpixel, fast_transposed_convs_)
from cwm.model.world_model import WorldModel

torch.set_num_threads(1)


def _configs():
    for k, s, p, op, n in itertools.product([2, 3, 5, 6], [1, 2, 3], [0, 1, 2], [0, 1, 2],
                                            [1, 4, 7]):
        if op < s and p < k and (n - 1) * s - 2 * p + k + op > 0:
            yield k, s, p, op, n


def _tensors(seed: int, n: int, k: int):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 3, n, n, generator=gen, dtype=torch.float64),
            torch.randn(3, 4, k, k, generator=gen, dtype=torch.float64),
            torch.randn(4, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("k, s, p, op, n", list(_configs()))
def test_subpixel_form_equals_the_transposed_convolution(k, s, p, op, n):
    x, w, b = _tensors(k * 100 + s * 10 + p + op * 1000 + n * 7, n, k)
    want = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
    got = conv_transpose2d_subpixel(x, w, b, s, p, op)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-12


@pytest.mark.parametrize("k, s", [(1, 1), (3, 2), (5, 2), (6, 2), (4, 3)])
def test_a_1x1_input_is_a_matrix_product(k, s):
    x, w, b = _tensors(k * 10 + s, 1, k)
    want = F.conv_transpose2d(x, w, b, stride=s)
    assert (conv_transpose2d_patch(x, w, b) - want).abs().max() < 1e-12


def _run(layer: nn.Module, x: torch.Tensor, grad_seed: int = 1):
    xi = x.clone().requires_grad_(True)
    y = layer(xi)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed)))
    return y.detach(), [xi.grad, layer.weight.grad, layer.bias.grad]


def _pair(cin, cout, k, p=0, op=0, channels_last=False):
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(cin, cout, k, stride=2, padding=p, output_padding=op)
    fast = fast_transposed_convs_(ConvTranspose2d(cin, cout, k, 2, p, op))
    fast.load_state_dict(ref.state_dict())
    if channels_last:
        for m in (ref, fast):
            m.to(memory_format=torch.channels_last)
    return ref, fast


@pytest.mark.parametrize("cin, cout, k, p, op, side", [
    (8, 3, 6, 0, 0, 30), (16, 8, 6, 0, 0, 13), (8, 3, 3, 1, 1, 32)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_layer_matches_and_its_gradients_are_torchs(cin, cout, k, p, op, side,
                                                            channels_last):
    ref, fast = _pair(cin, cout, k, p, op, channels_last)
    fast.subpixel_pays = True     # also the odd kernel, where the layer would not choose it
    x = torch.randn(5, cin, side, side)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    (y_ref, g_ref), (y_fast, g_fast) = _run(ref, x), _run(fast, x)
    assert (y_fast - y_ref).abs().max() <= 1e-6 * y_ref.abs().max()
    # The same backward on the same incoming gradient; the bias's sum (of up to 20k float32
    # terms) in another order.
    assert torch.equal(g_fast[0], g_ref[0]) and torch.equal(g_fast[1], g_ref[1])
    assert (g_fast[2] - g_ref[2]).abs().max() <= 1e-5 * g_ref[2].abs().max()


@pytest.mark.parametrize("channels_last", [False, True])
def test_1x1_layer_matches_in_output_and_gradients(channels_last):
    ref, fast = _pair(64, 32, 5, channels_last=channels_last)
    x = torch.randn(7, 64, 1, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    (y_ref, g_ref), (y_fast, g_fast) = _run(ref, x), _run(fast, x)
    assert (y_fast - y_ref).abs().max() <= 1e-6 * y_ref.abs().max()
    for a, b in zip(g_fast, g_ref):       # sums of 800 float32 products, in another order
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_wide_layers_and_unsupported_calls_take_torchs_forward():
    wide = fast_transposed_convs_(ConvTranspose2d(4, 16, 6, 2))
    assert not wide.subpixel_pays and not ConvTranspose2d(4, 3, 5, 2).subpixel_pays
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    y = wide(x)
    assert torch.equal(y, F.conv_transpose2d(x, wide.weight, wide.bias, stride=2))
    y.square().sum().backward()
    assert torch.allclose(wide.bias.grad, 2 * y.detach().sum((0, 2, 3)), rtol=1e-6)
    narrow = fast_transposed_convs_(ConvTranspose2d(4, 3, 6, 2))
    assert narrow(x, output_size=[15, 15]).shape[-1] == 15
    padded = fast_transposed_convs_(ConvTranspose2d(4, 3, 5, 2, padding=1))
    one = torch.randn(2, 4, 1, 1)
    assert torch.equal(padded(one), F.conv_transpose2d(one, padded.weight, padded.bias,
                                                       stride=2, padding=1))


def test_other_devices_keep_torchs_layer():
    layer = fast_transposed_convs_(ConvTranspose2d(4, 3, 6, 2)).to("meta")
    for side in (1, 5):
        y = layer(torch.empty(2, 4, side, side, device="meta"))
        assert y.shape == (2, 3, 2 * side + 4, 2 * side + 4)
        assert y.grad_fn.name() == "ConvolutionBackward0"     # on the CPU: a view, a Function


def test_the_switch_is_off_by_default_and_turns_back_off():
    layer = ConvTranspose2d(4, 3, 6, 2)
    assert not layer.fast
    assert fast_transposed_convs_(layer).fast
    assert not fast_transposed_convs_(layer, False).fast


@pytest.mark.parametrize("depth", [8, 48])
def test_conv_decoder_keeps_the_parameters_of_torchs_layers(depth):
    dec = ConvDecoder(40, depth)
    assert all(isinstance(m, ConvTranspose2d) for m in dec.net[::2])
    assert [m.subpixel_pays for m in dec.net[::2]] == [False, False, depth <= 8, True]
    kernels, chans = (5, 5, 6, 6), [32 * depth, 4 * depth, 2 * depth, depth, 3]
    want = {"linear.weight": (32 * depth, 40), "linear.bias": (32 * depth,)}
    for i, k in enumerate(kernels):
        want[f"net.{2 * i}.weight"] = (chans[i], chans[i + 1], k, k)
        want[f"net.{2 * i}.bias"] = (chans[i + 1],)
    assert {n: tuple(t.shape) for n, t in dec.state_dict().items()} == want


def test_conv_decoder_outputs_and_gradients_match_on_the_fast_forms():
    torch.manual_seed(0)
    ref = ConvDecoder(40, 8)
    fast = fast_transposed_convs_(ConvDecoder(40, 8))
    fast.load_state_dict(ref.state_dict())
    feat = torch.randn(2, 3, 40)
    outs = []
    for dec in (ref, fast):
        dec.zero_grad()
        y = dec(feat, None)
        y.square().sum().backward()
        outs.append((y.detach(), {n: p.grad for n, p in dec.named_parameters()}))
    (y_ref, g_ref), (y_fast, g_fast) = outs
    assert y_fast.shape == (2, 3, 3, 64, 64)
    assert (y_fast - y_ref).abs().max() <= 1e-6 * y_ref.abs().max()
    for name, g in g_ref.items():
        assert (g_fast[name] - g).abs().max() <= 1e-5 * g.abs().max(), name


def test_the_resnet_decoders_odd_kernel_output_layer_stays_torchs():
    assert type(ResNetDecoder(40, depth=8).out) is nn.ConvTranspose2d


def test_fast_paths_switch_it_on_and_reference_keeps_torchs_forward():
    model = make_config("tiny", "dreamerv2").model
    ref, fast = WorldModel(model), WorldModel(model)
    prepare(ref, "reference")
    prepare(fast, "eager")
    layers = lambda m: [x for x in m.decoder.modules() if isinstance(x, ConvTranspose2d)]
    assert len(layers(fast)) == 4 and all(x.fast for x in layers(fast))
    assert not any(x.fast for x in layers(ref))
    # A checkpoint of either loads into the other.
    ref.load_state_dict(fast.state_dict())
    fast.load_state_dict(ref.state_dict())

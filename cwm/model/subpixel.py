"""Transposed convolutions computed in sub-pixel form: one ordinary convolution + pixel shuffle.

Why: on the CPU, torch's (oneDNN's) transposed convolution is slow where a layer has few output
channels on a large map, as DreamerV2's decoder ends: its 8 -> 3 channel, 30 -> 64 pixel layer
takes ~40 ms of an RL update's ~90 ms decoder forward at the `small` sizes, its sub-pixel form
~20 ms (bench/RESULTS.md "rl vs upstream" has all the per-layer figures).

The identity (per spatial axis; stride s, kernel k zero-padded at its end to K * s taps,
K = ceil(k / s), which adds only zero terms): a transposed convolution writes
    full[s * m + r] = sum_{t < K} x[m - t] * w[s * t + r],      phase r in [0, s),
so each of the s * s output phases is an ordinary convolution of x (padded by K - 1) with the
phase kernel w[r::s] reversed; stacked as s * s times the output channels, a pixel shuffle
interleaves the phases into the full output, and the layer's output is full[p : p + L] for
padding p (L = (n - 1) s - 2 p + k + output_padding). The same sums of the same products: the
output equals torch's up to float summation order. Only the forward takes this form; the
backward is torch's own (an ordinary strided convolution, the fast direction), so gradients are
computed as on the reference path.

Where it pays (forward, 1 thread, measured per layer): few output channels and an even kernel.
DreamerV2 `small`: 8 -> 3 at 30 px 41 -> 20 ms, 16 -> 8 at 13 px 20 -> 14 ms; but paper sizes'
96 -> 48 at 13 px 375 -> 590 ms and 32 -> 16 at 5 px 7.6 -> 9.5 ms. An odd kernel does
(k + 1)^2 / k^2 the arithmetic: the ResNet decoder's k3 output layer (24 -> 3 at 32 px) 84 -> 99
ms NCHW, 55 -> 60 ms channels-last, so it stays torch's layer. `conv_transpose2d` builds the
switchable layer where it pays, torch's elsewhere.

`ConvTranspose2d` is torch's layer (same parameters, names, shapes and initialisation: checkpoints
and `cwm.model.init` see no difference) with a switch, `subpixel`, off by default; the phase
kernels are derived from its weight inside forward. `cwm.model.fast.prepare` (pre-training's
fast paths) and the RL agent's fast update (`loop.fast_update`) turn it on; the reference path
keeps torch's own forward, the yardstick the fast-path tests compare with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_transpose2d_subpixel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                              stride: int, padding: int, output_padding: int) -> torch.Tensor:
    """F.conv_transpose2d(x, weight [Cin, Cout, k, k], bias, stride, padding, output_padding)
    (groups 1, dilation 1) in sub-pixel form. x [N, Cin, n, n] -> [N, Cout, L, L]."""
    s, k, n = stride, weight.shape[-1], x.shape[-1]
    taps = -(-k // s)                                           # K
    size = (n - 1) * s - 2 * padding + k + output_padding       # L
    # Phases computed per input-padded position m: n + K - 1, more if output_padding reaches
    # past the last tap (only the bias lands there).
    rows = max(n + taps - 1, -(-(padding + size) // s))
    cin, cout = weight.shape[:2]
    w = F.pad(weight, (0, taps * s - k, 0, taps * s - k))       # [Cin, Cout, K s, K s]
    w = w.reshape(cin, cout, taps, s, taps, s).permute(1, 3, 5, 0, 2, 4)
    w = w.flip(-2, -1).reshape(cout * s * s, cin, taps, taps)   # [Cout r_y r_x, Cin, K, K]
    b = None if bias is None else bias.repeat_interleave(s * s)
    extra = rows - n - (taps - 1)
    if extra:
        x = F.pad(x, (0, extra, 0, extra))
    phases = F.conv2d(x, w, b, padding=taps - 1)               # [N, Cout s s, rows, rows]
    # F.pixel_shuffle's values by one permuted copy, which ran ~2x faster than its kernel.
    full = phases.unflatten(1, (cout, s, s)).permute(0, 1, 4, 2, 5, 3).reshape(
        x.shape[0], cout, s * rows, s * rows)
    return full[..., padding:padding + size, padding:padding + size]


class _SubpixelForward(torch.autograd.Function):
    """Forward in sub-pixel form, backward as torch's transposed convolution computes it: its
    input gradient is an ordinary strided convolution, the fast direction, where the sub-pixel
    form's own backward (pixel unshuffle, a convolution's backward) measured ~2x slower."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, output_padding, None if bias is None else [bias.shape[0]])
        return conv_transpose2d_subpixel(x, weight, bias, stride, padding, output_padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, output_padding, bias_sizes = ctx.conf
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, bias_sizes, [stride] * 2, [padding] * 2, [1, 1], True,
            [output_padding] * 2, 1, list(ctx.needs_input_grad[:3]))
        return gx, gw, gb, None, None, None


class ConvTranspose2d(nn.ConvTranspose2d):
    """torch's ConvTranspose2d; with `subpixel` set, forward takes the sub-pixel form (square
    kernel and stride, symmetric padding, zero padding mode, groups and dilation 1)."""

    subpixel = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int = 0, output_padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not self.subpixel or output_size is not None:
            return super().forward(x, output_size)
        return _SubpixelForward.apply(x, self.weight, self.bias, self.stride[0], self.padding[0],
                                      self.output_padding[0])


# The widest output for which the sub-pixel form is faster (see the module docstring).
SUBPIXEL_MAX_OUT_CHANNELS = 8


def conv_transpose2d(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                     padding: int = 0, output_padding: int = 0) -> nn.ConvTranspose2d:
    """A transposed convolution: the switchable `ConvTranspose2d` where its sub-pixel form pays
    (even kernel, at most `SUBPIXEL_MAX_OUT_CHANNELS` outputs), torch's layer elsewhere."""
    pays = kernel_size % 2 == 0 and out_channels <= SUBPIXEL_MAX_OUT_CHANNELS
    layer = ConvTranspose2d if pays else nn.ConvTranspose2d
    return layer(in_channels, out_channels, kernel_size, stride, padding, output_padding)


def use_subpixel_(model: nn.Module, on: bool = True) -> nn.Module:
    """Switch every `ConvTranspose2d` of `model` to the sub-pixel form (or back); returns it."""
    for m in model.modules():
        if isinstance(m, ConvTranspose2d):
            m.subpixel = on
    return model

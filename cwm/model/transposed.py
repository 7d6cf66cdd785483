"""Transposed convolutions in the forms the CPU runs fast: a matrix product for a 1 x 1 input,
one ordinary convolution + pixel shuffle (the sub-pixel form) for a narrow layer.

Why: torch's (oneDNN's) transposed convolution is slow in both of DreamerV2's decoder's extreme
layers (CPU, 1 thread, per layer):
  - the first, a [32d, 1, 1] map -> [4d, 5, 5]: forward + backward 19 ms at the `small` sizes
    (d = 8, 192 frames), 6.5 s at the paper sizes (d = 48, 800 frames), about a quarter of a
    paper-size RL update; as the matrix product it is, 4.5 ms and 0.3 s;
  - the last, 8 -> 3 channels on a 30 -> 64 pixel map: forward 41 ms at `small`, 20 ms in
    sub-pixel form (paper sizes, 48 -> 3: 159 -> 56 ms at 200 frames).

1 x 1 input (padding 0, output padding 0): the output is the k x k patch
    y[n, o, i, j] = b[o] + sum_c x[n, c] * w[c, o, i, j],
one [N, Cin] x [Cin, Cout k k] product; forward and backward are autograd's of `F.linear`.

Sub-pixel form (per spatial axis; stride s, kernel k zero-padded at its end to K * s taps,
K = ceil(k / s), which adds only zero terms): a transposed convolution writes
    full[s * m + r] = sum_{t < K} x[m - t] * w[s * t + r],      phase r in [0, s),
so each of the s * s output phases is an ordinary convolution of x (padded by K - 1) with the
phase kernel w[r::s] reversed; stacked as s * s times the output channels, a pixel shuffle
interleaves the phases into the full output, and the layer's output is full[p : p + L] for
padding p (L = (n - 1) s - 2 p + k + output_padding). Only the forward takes this form; the
input and weight gradients are torch's own (the input gradient is an ordinary strided
convolution, the fast direction; the sub-pixel form's own backward measured ~1.5-2x slower).
Every layer other than a 1 x 1 input's computes its bias gradient as the plain sum over batch
and pixels, which torch's backward kernel computed 5-15x slower.

Where it pays (forward, per layer): few output channels and an even kernel. `small`: 8 -> 3 at
30 px 41 -> 20 ms, 16 -> 8 at 13 px 20 -> 14 ms; wider layers gain nothing or lose (paper
sizes' 96 -> 48 at 13 px: 375 -> 590 ms in one run, even in another; 192 -> 96 at 5 px 93 ->
111 ms). An odd kernel does (k + 1)^2 / k^2 the arithmetic: the ResNet decoder's k3 output
layer (24 -> 3 at 32 px) 84 -> 99 ms NCHW, 55 -> 60 ms channels-last, so that decoder keeps
torch's layer.

All compute the same sums of the same products as torch's layer: outputs and gradients equal
up to float summation order (tests/model/test_transposed.py). `ConvTranspose2d` is torch's layer
(same parameters, names, shapes and initialisation: checkpoints and `cwm.model.init` see no
difference) with a switch, `fast`, off by default; the product's and the phases' kernels are
views or small copies of its weight made inside forward, so gradients reach the same
parameters. `cwm.model.fast.prepare` (pre-training's fast paths) and the RL agent's fast update
(`loop.fast_update`) turn it on; the reference path keeps torch's own forward, the yardstick the
fast-path tests compare with. The forms are for the CPU, where they were measured: on other
devices the layer stays torch's (cuDNN's transposed convolutions were not measured, no GPU in
that session; and the custom backward would meet CUDA's bf16 autocast untested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The widest output for which the sub-pixel form is faster (see the module docstring).
SUBPIXEL_MAX_OUT_CHANNELS = 8


def conv_transpose2d_patch(x: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None) -> torch.Tensor:
    """F.conv_transpose2d of a 1 x 1 map (padding and output padding 0) as one matrix product:
    x [N, Cin, 1, 1], weight [Cin, Cout, k, k] -> [N, Cout, k, k]."""
    cout, k = weight.shape[1], weight.shape[-1]
    b = None if bias is None else bias.repeat_interleave(k * k)
    return F.linear(x.flatten(1), weight.flatten(1).t(), b).view(x.shape[0], cout, k, k)


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


class _TransposedConv(torch.autograd.Function):
    """Forward in sub-pixel form (or torch's), backward as torch's transposed convolution
    computes the input and weight gradients, and the bias gradient as the sum it is: torch's
    kernel took 5-6 ms for the 8 -> 3 layer's bias alone at `small` (the sum: 1 ms) and ~60 ms
    per 200 frames for the paper sizes' 96 -> 48 layer."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, subpixel):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, output_padding)
        if subpixel:
            return conv_transpose2d_subpixel(x, weight, bias, stride, padding, output_padding)
        return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, output_padding = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], True,
            [output_padding] * 2, 1, [need_x, need_w, False])
        gb = grad.sum((0, 2, 3)) if need_b else None
        return gx, gw, gb, None, None, None, None


class ConvTranspose2d(nn.ConvTranspose2d):
    """torch's ConvTranspose2d (square kernel and stride, symmetric padding, groups and dilation
    1); with `fast` set, on the CPU, forward takes the matrix product on a 1 x 1 input and, in
    a layer where it pays, the sub-pixel form on a larger one (otherwise torch's forward), and
    the bias gradient is a plain sum."""

    fast = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 padding: int = 0, output_padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         output_padding=output_padding)
        self.subpixel_pays = kernel_size % 2 == 0 and out_channels <= SUBPIXEL_MAX_OUT_CHANNELS

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if not self.fast or output_size is not None or x.device.type != "cpu":
            return super().forward(x, output_size)
        if x.shape[-2:] == (1, 1) and self.padding == (0, 0) and self.output_padding == (0, 0):
            return conv_transpose2d_patch(x, self.weight, self.bias)
        return _TransposedConv.apply(x, self.weight, self.bias, self.stride[0], self.padding[0],
                                     self.output_padding[0], self.subpixel_pays)


def fast_transposed_convs_(model: nn.Module, on: bool = True) -> nn.Module:
    """Switch every `ConvTranspose2d` of `model` to its fast forms (or back); returns it."""
    for m in model.modules():
        if isinstance(m, ConvTranspose2d):
            m.fast = on
    return model

"""How a training step runs: the fast path, and the reference path it must agree with.

    reference  the model as written: the decoder's maps NCHW, torch's transposed convolutions,
               eager PyTorch, the for-loop Adam.
               The yardstick: tests/model/test_fast_path.py checks that the other paths give
               the same loss and gradients on a fixed batch.
    eager      every convolution channels-last (NHWC, the layout oneDNN and cuDNN run fastest;
               NCHW decoder convolutions cost 1.2-1.5x on the CPU), DreamerV2's decoder's
               transposed convolutions in their fast forms (`cwm.model.transposed`: the
               first as a matrix product, the narrow ones in sub-pixel form) and the fused
               AdamW kernel.
    compiled   eager's layout and optimizer, and the loss (forward and backward) through
               `torch.compile`, whose compiled code is cached on disk (`compile_cache_dir`): the
               first run on a machine pays minutes of compilation, later runs load it in seconds.
    auto       (cwm-train's default) compiled for the `paper` preset on CUDA, where a first
               compilation of minutes is repaid within a few hundred of its 1.2M steps and later
               runs load it from the cache; eager everywhere else. On the CPU, under the
               tcmalloc allocator the commands choose (`cwm.allocator`), the compiled paper step
               was no faster than eager (bench/RESULTS.md, "Speed against upstream"), so it
               is not worth minutes of compilation; `small` and `tiny` runs (demo, tests) would
               spend more time compiling than training on any device.

All paths compute the same function of the same parameters, with the same parameter and state
names: a checkpoint written under one resumes under any other.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cwm.errors import UserError
from cwm.model.config import SPEEDS
from cwm.model.transposed import fast_transposed_convs_


def resolve_speed(speed: str, preset: str, device_type: str = "cpu") -> str:
    """`auto` -> the path a run of `preset` on `device_type` should take; other names pass
    through."""
    if speed not in SPEEDS:
        raise UserError(f"unknown speed {speed!r}; choose one of {', '.join(SPEEDS)}")
    if speed == "auto":
        return "compiled" if preset == "paper" and device_type == "cuda" else "eager"
    return speed


def compile_cache_dir() -> Path:
    """Where compiled code persists: $CWM_CACHE_DIR/torch-compile (default ~/.cache/cwm/...)."""
    root = os.environ.get("CWM_CACHE_DIR") or Path.home() / ".cache" / "cwm"
    return Path(root) / "torch-compile"


def use_compile_cache() -> Path:
    """Point inductor's FX-graph and AOT-autograd caches at `compile_cache_dir`, where they
    outlive /tmp, unless the user chose TORCHINDUCTOR_CACHE_DIR; returns the directory in use."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # Importing inductor fills the variable with its default (/tmp/torchinductor_<user>).
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache_dir())
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def channels_last_(model: nn.Module) -> nn.Module:
    """Lay out every 4-d weight, and every decoder's first map, channels-last (in place)."""
    model.to(memory_format=torch.channels_last)
    for m in model.modules():
        if hasattr(m, "memory_format"):
            m.memory_format = torch.channels_last
    return model


def uses_fused_optimizer(speed: str) -> bool:
    return speed != "reference"


def prepare(model: nn.Module, speed: str) -> str:
    """Lay `model` out (in place) for the resolved `speed`; returns one line saying how. Call
    before wrapping it (DDP) and before building its optimizer: the layout change keeps the
    parameter objects but not their strides."""
    if speed == "reference":
        return "speed = reference (eager, NCHW decoder, for-loop Adam)"
    if speed not in ("eager", "compiled"):
        raise UserError(f"unknown speed {speed!r}; choose one of {', '.join(SPEEDS)}")
    channels_last_(model)
    fast_transposed_convs_(model)
    if speed == "eager":
        return "speed = eager (channels-last, fast transposed convolutions, fused AdamW)"
    return (f"speed = compiled (channels-last, fast transposed convolutions, fused AdamW, "
            f"torch.compile; compile cache {use_compile_cache()})")


def wrap(net: nn.Module, speed: str) -> nn.Module:
    """The module the training step calls: `net` itself, or under `compiled` its compiled form."""
    return torch.compile(net) if speed == "compiled" else net

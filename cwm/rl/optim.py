"""The optimiser every part of the RL agent uses: Adam with L2 weight decay added to the gradient
(torch's coupled form, upstream's `core.Optimizer`), fused or not.

Why fused: the agent steps four Adams per update over ~50 parameter tensors; torch's per-tensor
loop spends ~15 ms of Python and small ops on that at the `small` sizes (measured on a 2-core CPU,
bench/RESULTS.md "rl vs upstream"), the fused kernel ~3 ms, and it reads each parameter once at
the paper sizes. The two differ by float rounding only (tests/rl/test_fast_path.py).
"""

from __future__ import annotations

from typing import Iterable

import torch


def adam(params: Iterable[torch.Tensor], lr: float, eps: float, weight_decay: float,
         fused: bool) -> torch.optim.Adam:
    opt = torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay)
    set_fused(opt, fused)
    return opt


def set_fused(opt: torch.optim.Optimizer, fused: bool) -> None:
    """Switch `opt` to the fused kernel (or back to the per-tensor loop).

    Also after `load_state_dict`, which restores the flags the saved optimiser had: a run resumes
    on the path its config names, whichever one wrote the checkpoint. The fused kernel keeps its
    step counts on the parameters' device, the per-tensor loop on the CPU; they are moved along.
    """
    fused = fused and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                          for g in opt.param_groups for p in g["params"])
    for group in opt.param_groups:
        group["fused"] = True if fused else None
        group["foreach"] = False if fused else None
        for p in group["params"]:
            state = opt.state.get(p)
            if state and "step" in state:
                device = p.device if fused else torch.device("cpu")
                state["step"] = state["step"].to(device=device, dtype=torch.float32)

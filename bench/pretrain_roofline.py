"""How close a pre-training step runs to this CPU's own limit: FLOPs per step against peak.

    python bench/pretrain_roofline.py --times bench/pretrain_vs_upstream.json [--threads 2]

Issue 16 asks for a paper-preset step 1.5x faster than upstream's. Both sides compute the same
network (parameter counts checked by bench/pretrain_vs_upstream.py), so they do the same
arithmetic; what can differ is how close each gets to what the machine can do. This bench:

1. counts the matmul and convolution FLOPs of one training step (forward and backward) of our
   paper-preset world model with `torch.utils.flop_counter.FlopCounterMode`, per operator;
2. measures, in the same process and thread count, the machine's attainable rate on the same
   kind of work: a large fp32 GEMM, and the model's own 3x3 convolution shapes (batch 400 frames,
   channels-last, forward and both backward passes), best of several repetitions;
3. takes the step times of `--times` (the JSON of bench/pretrain_vs_upstream.py, run just before
   in the same session) and prints each side's attained GFLOP/s, its fraction of the attainable
   rate, and the largest speed-up over upstream that the attainable rate leaves:
   attainable / upstream's attained.

Elementwise work (BatchNorm, activations, the optimizer) is not counted, so attained rates are
lower bounds and the speed-up bound is generous.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

BATCH, LENGTH = 16, 25


def step_flops(kind: str) -> tuple[int, dict[str, int]]:
    """(total, per operator) FLOPs of one paper-preset training step, forward and backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cwm.model.config import make_config
    from cwm.model.world_model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(make_config("paper", kind).model)
    frames = torch.randint(0, 256, (BATCH, LENGTH, 64, 64, 3), dtype=torch.uint8)
    context = frames[:, 0].clone()
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = model(frames, context)
        loss.backward()
    per_op = defaultdict(int)
    for op, n in counter.get_flop_counts()["Global"].items():
        per_op[str(op).split(".")[-1] if "." in str(op) else str(op)] += n
    return counter.get_total_flops(), dict(per_op)


def _best_rate(fn, flops: float, reps: int) -> float:
    fn()  # warm-up (oneDNN picks and caches its kernels)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def gemm_peak(reps: int = 5, n: int = 2048) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return _best_rate(lambda: a @ b, 2.0 * n ** 3, reps)


def conv_peak(reps: int = 3) -> dict[str, float]:
    """GFLOP/s of forward + both backward passes of the model's own 3x3 convolutions
    (channels x resolution of the ResNet stages at depth 48) on 400 frames, channels-last."""
    import torch
    import torch.nn.functional as F

    rates = {}
    for ch, res in ((48, 32), (96, 16), (192, 8)):
        x = torch.randn(BATCH * LENGTH, ch, res, res).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(ch, ch, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
        flops = 3 * 2.0 * BATCH * LENGTH * ch * ch * 9 * res * res

        def run():
            y = F.conv2d(x, w, padding=1)
            y.backward(torch.ones_like(y))

        rates[f"conv3x3 {ch}ch@{res}"] = _best_rate(run, flops, reps)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", required=True,
                    help="JSON written by bench/pretrain_vs_upstream.py in this session")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench/pretrain_roofline.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    runs = json.load(open(args.times))
    gemm = gemm_peak()
    convs = conv_peak()
    attainable = max([gemm, *convs.values()])
    out = {"threads": args.threads, "gemm_gflops": gemm, "conv_gflops": convs,
           "attainable_gflops": attainable, "kinds": {}}
    print(f"attainable on {args.threads} threads: GEMM {gemm:.0f} GFLOP/s; "
          + ", ".join(f"{k} {v:.0f}" for k, v in convs.items()))
    print()
    print("| kind | side | GFLOP per step | s/step (median) | attained GFLOP/s | of attainable |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in sorted({r["kind"] for r in runs}):
        total, per_op = step_flops(kind)
        out["kinds"][kind] = {"gflop": total / 1e9, "per_op_gflop": {
            k: v / 1e9 for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}, "sides": {}}
        for side in sorted({r["side"] for r in runs if r["kind"] == kind}):
            s = statistics.median(x for r in runs if r["kind"] == kind and r["side"] == side
                                  for x in r["step_s"])
            rate = total / s / 1e9
            out["kinds"][kind]["sides"][side] = {"step_s": s, "gflops": rate,
                                                 "of_attainable": rate / attainable}
            print(f"| {kind} | {side} | {total / 1e9:.0f} | {s:.2f} | {rate:.0f} | "
                  f"{rate / attainable:.0%} |")
        up = out["kinds"][kind]["sides"].get("upstream")
        if up:
            out["kinds"][kind]["max_speedup_over_upstream"] = attainable / up["gflops"]
    print()
    for kind, d in out["kinds"].items():
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(d["per_op_gflop"].items())[:5])
        bound = d.get("max_speedup_over_upstream")
        print(f"{kind}: {d['gflop']:.0f} GFLOP per step ({top})"
              + (f"; the attainable rate allows at most {bound:.2f}x upstream's step" if bound else ""))
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

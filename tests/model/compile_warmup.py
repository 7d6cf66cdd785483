"""Fills the compile cache for `test_compiled_path_matches_reference` in a background process.

On a fresh machine (CI) the compiled-path test pays a cold `torch.compile` of the tiny model,
minutes of one core, while the rest of the suite mostly keeps one core busy. `tests/conftest.py`
starts this module as soon as that test is collected, so the compilation runs beside the earlier
tests; the test waits for it and then compiles the same graph from the warm cache.

Run as `python -m tests.model.compile_warmup THREADS` from the repository root; THREADS is the
pytest process's torch thread count (inductor generates its CPU kernels for a thread count, and a
cache entry made for another count does not hit).
"""

from __future__ import annotations

import sys

import torch


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]))
    from tests.model.test_fast_path import compile_and_step
    compile_and_step()


if __name__ == "__main__":
    main()

"""Suite-wide hooks: the compile cache is warmed in the background when the compiled-path test
is selected (see tests/model/compile_warmup.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPILED_TEST = "test_compiled_path_matches_reference"
_warmup: subprocess.Popen | None = None


def pytest_collection_modifyitems(session, config, items):
    global _warmup
    if _warmup is None and any(item.name == COMPILED_TEST for item in items):
        import torch

        # Inductor's CPU kernels are generated for a thread count, which is part of the cache
        # key: the warm-up compiles at the count the suite runs at (set by the test modules,
        # all imported by now).
        threads = str(torch.get_num_threads())
        _warmup = subprocess.Popen([sys.executable, "-m", "tests.model.compile_warmup", threads],
                                   cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_unconfigure(config):
    if _warmup is not None and _warmup.poll() is None:
        _warmup.kill()
        _warmup.wait()


@pytest.fixture
def compile_warmed():
    """Waits for the background compilation (if any) to end; its result does not matter: a
    failed warm-up only means the test compiles from a cold cache itself."""
    if _warmup is not None:
        _warmup.wait()

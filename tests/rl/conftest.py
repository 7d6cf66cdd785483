"""Shared set-up for the RL tests: headless rendering without a per-process backend probe, and
the experiment scripts (not part of the package) loaded as modules."""

import importlib.util
import os
from pathlib import Path

import pytest

# Probing a backend costs a subprocess; the tests of the probe itself run with it unset.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _load_experiment_script(relative: str):
    """experiments/RELATIVE as a module."""
    path = EXPERIMENTS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tradeoff():
    return _load_experiment_script("cpu_preset/tradeoff.py")


@pytest.fixture(scope="module")
def trend():
    return _load_experiment_script("cpu_preset/trend.py")

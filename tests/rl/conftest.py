"""Shared set-up for the RL tests: headless rendering without a per-process backend probe."""

import os

# Probing a backend costs a subprocess; the tests of the probe itself run with it unset.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

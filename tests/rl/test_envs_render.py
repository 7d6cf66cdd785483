"""Headless rendering: automatic backend choice, a clear error when none works, fast mode."""

import os
import subprocess
import sys

import numpy as np
import pytest

from cwm.errors import UserError
from cwm.rl.envs.registry import make_env
from cwm.rl.envs.render import probe_backend, select_backend


def test_backend_is_chosen_automatically_when_unset():
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = "from cwm.rl.envs.render import select_backend; import os; print(select_backend(), os.environ['MUJOCO_GL'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    chosen, exported = out.stdout.split()
    assert chosen in ("egl", "osmesa") and exported == chosen


def test_osmesa_fallback_renders():
    assert probe_backend("osmesa") is None


def test_no_working_backend_is_one_clear_user_error(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(UserError) as e:
        select_backend(candidates=("glx",))
    assert "no headless OpenGL backend" in str(e.value) and "\n" not in str(e.value)
    assert "MUJOCO_GL" not in os.environ


def test_fast_mode_changes_only_shading():
    fast = make_env("dmc", "walker-walk", seed=0, render="fast")
    default = make_env("dmc", "walker-walk", seed=0)
    a, b = fast.reset()[0]["image"], default.reset()[0]["image"]
    # Same scene: close on average; not identical because shadows and MSAA are gone.
    diff = np.abs(a.astype(int) - b.astype(int))
    assert 0 < diff.mean() < 20
    fast.close()
    default.close()

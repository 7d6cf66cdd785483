"""Headless offscreen rendering of a MuJoCo model: backend choice and the `fast` mode.

Backend: MuJoCo's Python bindings read `MUJOCO_GL` once, when `mujoco` is first imported, and
PyOpenGL fixes its platform on first import too, so a failed EGL attempt cannot be retried as
OSMesa in the same process. `select_backend` therefore probes each candidate in a short
subprocess and exports the winner (`MUJOCO_GL`, `PYOPENGL_PLATFORM`) before anything imports
`mujoco`; child processes inherit the choice and skip the probe. A user-set `MUJOCO_GL` is taken
as given. `Renderer` builds its GL context from the chosen backend module explicitly, so it works
even when `mujoco` was imported earlier without `MUJOCO_GL`.

Modes: `default` renders as the task authors intended (shadows, reflections, 4x MSAA); `fast`
turns those three off, which on CPU (Mesa llvmpipe) is about 10x faster at 64x64. The mode
changes the pixels, so a run records it in its config and must keep it for its whole life.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import weakref
from typing import Literal

import numpy as np

from cwm.errors import UserError

RenderMode = Literal["default", "fast"]
RENDER_MODES: tuple[str, ...] = ("default", "fast")
BACKENDS: tuple[str, ...] = ("egl", "osmesa")

# Renders one frame of a one-geom model: the smallest proof that a backend really works.
_PROBE = """
import mujoco
from cwm.rl.envs.render import Renderer
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 3"/><camera name="c" pos="0 -2 1" xyaxes="1 0 0 0 0.5 1"/><geom type="sphere" size=".3"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = Renderer(m, 8, camera="c")
assert r.render(d).shape == (8, 8, 3)
r.close()
"""


def _backend_env(backend: str) -> dict[str, str]:
    return {"MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}


def probe_backend(backend: str, timeout: float = 60.0) -> str | None:
    """Try `backend` in a subprocess; None when it renders, else the last line of its error."""
    env = {**os.environ, **_backend_env(backend)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s"
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


_SELECTING = threading.Lock()


def select_backend(candidates: tuple[str, ...] = BACKENDS) -> str:
    """The OpenGL backend to render with; probes and exports one when `MUJOCO_GL` is unset.

    Raises UserError when no candidate works, naming what to install or set.
    """
    with _SELECTING:       # envs made on two threads at once probe once
        chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
        if chosen:
            return chosen
        errors = []
        for backend in candidates:
            err = probe_backend(backend)
            if err is None:
                os.environ.update(_backend_env(backend))
                return backend
            errors.append(f"{backend}: {err}")
    raise UserError(
        "no headless OpenGL backend works ("
        + "; ".join(errors)
        + "): install libegl1 + libgl1-mesa-dri (EGL) or libosmesa6 (OSMesa), or set MUJOCO_GL"
    )


def _gl_context_class(backend: str):
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    elif backend in ("glfw", "glx"):
        from mujoco.glfw import GLContext
    else:
        raise UserError(f"MUJOCO_GL={backend!r} is not supported: use egl or osmesa (or unset it)")
    return GLContext


class Renderer:
    """Offscreen RGB renderer of one MuJoCo model from one camera.

    `render(data)` -> uint8 [size, size, 3], top row first. The GL context is made current on
    every call, so several renderers may live in one process.
    """

    def __init__(self, model, size: int, camera: int | str = 0, mode: RenderMode = "default"):
        import mujoco

        if mode not in RENDER_MODES:
            raise UserError(f"unknown render mode {mode!r}; valid: {', '.join(RENDER_MODES)}")
        self.mode = mode
        self.size = size
        self._model = model
        backend = select_backend()
        if mode == "fast":
            # MSAA is fixed when the framebuffer is created, so it is a model setting.
            model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        try:
            self._gl = _gl_context_class(backend)(size, size)
            self._gl.make_current()
        except UserError:
            raise
        except Exception as e:  # any failure here means the backend is unusable in this process
            raise UserError(
                f"cannot create an OpenGL context with MUJOCO_GL={backend} ({type(e).__name__}: {e}); "
                "unset MUJOCO_GL to choose a working backend automatically"
            ) from None
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        if mode == "fast":
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam_id = camera if isinstance(camera, int) else model.camera(camera).id
        self._camera.fixedcamid = cam_id
        self._rect = mujoco.MjrRect(0, 0, size, size)
        self._pixels = np.empty((size, size, 3), np.uint8)
        # Free GL objects before the backend's own exit hook tears the display down (hooks run
        # last-registered first), else interpreter exit prints EGL errors.
        self._finalizer = weakref.finalize(self, _free_gl, self._ctx, self._gl)

    def render(self, data) -> np.ndarray:
        """uint8 [size, size, 3] image of `data`'s current state (a fresh array)."""
        import mujoco

        self._gl.make_current()
        mujoco.mjv_updateScene(
            self._model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._ctx)
        # OpenGL's first row is the bottom of the picture.
        return np.flipud(self._pixels).copy()

    def upload_texture(self, texid: int) -> None:
        """Send texture `texid` to the GPU again after its pixels changed in the model."""
        import mujoco

        self._gl.make_current()
        mujoco.mjr_uploadTexture(self._model, self._ctx, texid)

    def close(self) -> None:
        self._finalizer()


def _free_gl(ctx, gl) -> None:
    gl.make_current()
    ctx.free()
    gl.free()

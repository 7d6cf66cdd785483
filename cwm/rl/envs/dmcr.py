"""DMC with "Remastered"-style visual variation: a new look on every reset, same physics.

No package provides the paper's DMC Remastered, so the look is redrawn here through MuJoCo model
fields that only affect rendering:
- floor: a new 2D texture (checker, stripes, smooth noise or plain, two random colours) and a
  random reflectance;
- sky: a new skybox (vertical gradient between two random colours, with faint noise);
- bodies: one random colour per material family (`self*`, `effector*`, `decoration`, ...),
  targets included, so the agent, its effectors and targets change colour independently;
- light: random diffuse, ambient and specular light and headlight;
- camera (only with `vary_camera`): a small random shift (up to 10% of the camera's distance to
  the origin of its frame) and turn (up to 6 degrees).

Looks come from `numpy.random.default_rng([visual_seed, seed])`, reseeded whenever `reset` gets
a seed (including the constructor's): the same `visual_seed` and `seed` replay the same sequence
of looks, and a different `visual_seed` gives different looks over the same physics.
"""

from __future__ import annotations

import numpy as np

from cwm.rl.envs.dmc import ACTION_REPEAT, DMCEnv
from cwm.rl.envs.render import RenderMode

MAX_TURN_DEG = 6.0
MAX_SHIFT = 0.1


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, 3)


def floor_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random floor picture, uint8 [height, width, 3]."""
    a, b = _colour(rng), _colour(rng)
    y, x = np.mgrid[0:height, 0:width]
    kind = rng.integers(0, 4)
    if kind == 0:  # checker
        cells = rng.integers(2, 17)
        mix = ((y * cells // height + x * cells // width) % 2).astype(np.float64)
    elif kind == 1:  # stripes at a random angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3) * width
        mix = (np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0).astype(float)
    elif kind == 2:  # smooth noise: a coarse random grid, upsampled
        coarse = rng.uniform(0, 1, (rng.integers(3, 12),) * 2)
        mix = coarse[y * len(coarse) // height, x * len(coarse) // width]
    else:
        mix = np.zeros((height, width))
    pixels = a + mix[..., None] * (b - a)
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def sky_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random skybox, uint8 [height, width, 3]: six square faces stacked vertically."""
    top, bottom = _colour(rng), _colour(rng)
    face = height // 6
    t = (np.arange(height) % face / max(face - 1, 1))[:, None, None]
    # Noise on an 8x coarser grid: per-pixel noise on 4800x800 would dominate reset time.
    noise = rng.normal(0, 0.02, (-(-height // 8), -(-width // 8), 1))
    noise = noise.repeat(8, 0).repeat(8, 1)[:height, :width]
    pixels = top + t * (bottom - top) + noise
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A random rotation matrix [3, 3] of at most `max_deg` degrees about a random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


class DMCREnv(DMCEnv):
    """A DMC task whose look is redrawn on every reset (see the module docstring)."""

    def __init__(
        self,
        task: str,
        seed: int = 0,
        render: RenderMode = "default",
        size: int = 64,
        action_repeat: int = ACTION_REPEAT,
        camera: int | None = None,
        visual_seed: int = 0,
        vary_camera: bool = False,
    ):
        super().__init__(task, seed=seed, render=render, size=size, action_repeat=action_repeat, camera=camera)
        import mujoco

        self.visual_seed = visual_seed
        self.vary_camera = vary_camera
        self._look_rng = np.random.default_rng([visual_seed, seed])
        m = self.physics.model.ptr
        self._model = m
        self._textures = [
            (i, int(m.tex_type[i]))
            for i in range(m.ntex)
            if m.tex_type[i] in (mujoco.mjtTexture.mjTEXTURE_2D, mujoco.mjtTexture.mjTEXTURE_SKYBOX)
            and m.tex_nchannel[i] == 3
        ]
        floor_tex = {i for i, kind in self._textures if kind == mujoco.mjtTexture.mjTEXTURE_2D}
        rgb_role = mujoco.mjtTextureRole.mjTEXROLE_RGB
        self._floor_mats = [j for j in range(m.nmat) if m.mat_texid[j, rgb_role] in floor_tex]
        # Materials of one family (`self`, `self_default`, `self_highlight`) share a colour.
        families: dict[str, list[int]] = {}
        for j in range(m.nmat):
            if j not in self._floor_mats:
                families.setdefault(m.material(j).name.split("_")[0], []).append(j)
        self._families = list(families.values())
        self._cam0 = {
            name: getattr(m, name).copy() for name in ("cam_pos", "cam_pos0", "cam_quat", "cam_mat0")
        }

    def _reset_sim(self, seed: int | None) -> None:
        if seed is not None:
            self._look_rng = np.random.default_rng([self.visual_seed, seed])
        super()._reset_sim(seed)
        self._draw_look(self._look_rng)

    def _draw_look(self, rng: np.random.Generator) -> None:
        import mujoco

        m = self._model
        for texid, kind in self._textures:
            h, w = int(m.tex_height[texid]), int(m.tex_width[texid])
            draw = floor_texture if kind == mujoco.mjtTexture.mjTEXTURE_2D else sky_texture
            adr = int(m.tex_adr[texid])
            m.tex_data[adr : adr + h * w * 3] = draw(rng, h, w).reshape(-1)
            self._renderer.upload_texture(texid)
        for j in self._floor_mats:
            m.mat_reflectance[j] = rng.uniform(0.0, 0.5)
        for family in self._families:
            colour = _colour(rng)
            for j in family:
                m.mat_rgba[j, :3] = colour
        m.light_diffuse[:] = rng.uniform(0.3, 1.0, m.light_diffuse.shape)
        m.light_ambient[:] = rng.uniform(0.0, 0.3, m.light_ambient.shape)
        m.light_specular[:] = rng.uniform(0.0, 0.5, m.light_specular.shape)
        m.vis.headlight.diffuse[:] = rng.uniform(0.2, 0.6, 3)
        m.vis.headlight.ambient[:] = rng.uniform(0.0, 0.3, 3)
        if self.vary_camera:
            self._move_camera(rng)

    def _move_camera(self, rng: np.random.Generator) -> None:
        import mujoco

        m, c0 = self._model, self._cam0
        for i in range(m.ncam):
            # Shift relative to how far the camera sits from its frame, so small scenes stay in view.
            shift = rng.uniform(-1, 1, 3) * MAX_SHIFT * np.linalg.norm(c0["cam_pos"][i])
            m.cam_pos[i] = c0["cam_pos"][i] + shift
            m.cam_pos0[i] = c0["cam_pos0"][i] + shift
            turn = _rotation(rng, MAX_TURN_DEG)
            m.cam_mat0[i] = (turn @ c0["cam_mat0"][i].reshape(3, 3)).reshape(-1)
            q_turn = np.empty(4)
            mujoco.mju_mat2Quat(q_turn, turn.reshape(-1))
            mujoco.mju_mulQuat(m.cam_quat[i], q_turn, c0["cam_quat"][i])

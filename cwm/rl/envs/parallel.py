"""Several environments, one process each, stepped together: rendering uses every core.

CPU rendering (Mesa llvmpipe) dominates an env step, and Meta-world must not share a process
with another Meta-world env, so each env lives in its own *spawned* process (forking a process
that already holds a GL context is unsafe). Each child renders single-threaded
(`LP_NUM_THREADS=1` unless set): N processes then use N cores without oversubscribing them.

The result is a `gymnasium.vector.AsyncVectorEnv` over `PixelEnv`s:
    obs = {"image": uint8 [N, 64, 64, 3], "is_first"/"is_last"/"is_terminal": bool [N]}
    actions: float32 [N, A]; rewards float64 [N]; infos["success"]: bool [N]
Autoreset is NEXT_STEP: after env i returns `is_last`, the next `step` ignores action i and
returns env i's reset observation (`is_first` True, reward 0), exactly the step layout of the
replay (`cwm.rl.replay`). `envs.get_attr("timings")` gives each child's physics/render seconds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading

import gymnasium as gym
from gymnasium.vector.async_vector_env import _async_worker

from cwm.rl.envs.registry import EnvConfig


def _worker_leaving_ctrl_c_to_the_parent(*args, **kwargs) -> None:
    """gymnasium's env worker, with Ctrl-C ignored: it reaches the whole process group, and an
    env process that died of it would break the training process's orderly save-and-exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _async_worker(*args, **kwargs)


def _make_in_child(config: EnvConfig, render_threads: int) -> gym.Env:
    os.environ.setdefault("LP_NUM_THREADS", str(render_threads))
    return config.make()


_ABSENT = object()          # a main module without __file__
_hiding = threading.Lock()
_hidden: list = []          # [count, saved __spec__, saved __file__] while hidden


@contextlib.contextmanager
def _main_module_hidden():
    """Spawn children without re-importing the parent's `__main__`.

    A spawned child runs the parent's main module again (by name or path) before it unpickles
    its target. For `cwm-rl` that is the CLI, which imports torch: ~1 CPU-s and ~300 MB of
    memory in every env process, which needs only MuJoCo. The env functions live in this module,
    so the children need nothing from `__main__`: while this is active, multiprocessing sees a
    main module with neither a spec nor a file and tells the child to import none. Nested and
    concurrent uses (the loop makes its evaluation env on a thread) restore it once, at the end.
    """
    main = sys.modules["__main__"]
    with _hiding:
        if not _hidden:
            _hidden[:] = [0, main.__dict__.get("__spec__"), main.__dict__.get("__file__", _ABSENT)]
            main.__spec__ = None
            main.__dict__.pop("__file__", None)
        _hidden[0] += 1
    try:
        yield
    finally:
        with _hiding:
            _hidden[0] -= 1
            if _hidden[0] == 0:
                _, spec, file = _hidden
                main.__spec__ = spec
                if file is not _ABSENT:
                    main.__file__ = file
                _hidden.clear()



def make_parallel_envs(configs: list[EnvConfig], render_threads: int = 1) -> gym.vector.AsyncVectorEnv:
    """One spawned process per config; give each a different `seed` for independent episodes."""
    # The backend probe (if any) happens once here, and the children inherit its choice.
    from cwm.rl.envs.render import select_backend

    select_backend()
    fns = [functools.partial(_make_in_child, c, render_threads) for c in configs]
    with _main_module_hidden():
        return gym.vector.AsyncVectorEnv(
            fns,
            shared_memory=True,
            context="spawn",
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
            worker=_worker_leaving_ctrl_c_to_the_parent,
        )

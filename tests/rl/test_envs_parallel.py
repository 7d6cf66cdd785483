"""Parallel envs: one process each, same results as in-process envs, NEXT_STEP autoreset."""

import numpy as np

from cwm.rl.envs.parallel import make_parallel_envs
from cwm.rl.envs.registry import EnvConfig


def test_two_processes_match_single_envs_and_autoreset():
    # A 10-step episode (1000 sub-steps at repeat 100) shows the autoreset quickly.
    configs = [EnvConfig("dmc", "cartpole-balance", seed=s, render="fast", size=16, action_repeat=100) for s in (1, 2)]
    envs = make_parallel_envs(configs)
    try:
        obs, _ = envs.reset()
        assert obs["image"].shape == (2, 16, 16, 3) and obs["is_first"].all()
        singles = [c.make() for c in configs]
        first = [e.reset()[0]["image"] for e in singles]
        assert np.array_equal(obs["image"], np.stack(first))
        assert not np.array_equal(singles[0].physics.get_state(), singles[1].physics.get_state())
        action = np.zeros((2, 1), np.float32)
        for t in range(10):
            obs, reward, terminated, truncated, info = envs.step(action)
            expected = [e.step(action[0])[0]["image"] for e in singles]
            assert np.array_equal(obs["image"], np.stack(expected))
        assert truncated.all() and obs["is_last"].all() and "success" in info
        obs, reward, *_ = envs.step(action)
        assert obs["is_first"].all() and not obs["is_last"].any() and np.all(reward == 0)
        timings = envs.get_attr("timings")
        assert all(t["render"] > 0 and t["physics"] > 0 for t in timings)
        for e in singles:
            e.close()
    finally:
        envs.close()


def test_metaworld_envs_in_separate_processes_render_like_one_alone():
    configs = [EnvConfig("metaworld", "reach", seed=s, render="fast", size=32) for s in (0, 1)]
    envs = make_parallel_envs(configs)
    try:
        obs, _ = envs.reset()
        alone = configs[1].make()
        assert np.array_equal(obs["image"][1], alone.reset()[0]["image"])
        alone.close()
    finally:
        envs.close()


LEAN_SCRIPT = """
import sys, threading
import torch                      # the main module is heavy, as the cwm-rl CLI is
from cwm.rl.envs.parallel import make_parallel_envs
from cwm.rl.envs.registry import EnvConfig

def children_with_torch(envs):
    return sum(any("libtorch" in line for line in open(f"/proc/{p.pid}/maps"))
               for p in envs.processes)

if __name__ == "__main__":
    spec, file = __spec__, __file__
    config = EnvConfig("dmc", "cartpole-balance", seed=0, render="fast", size=16)
    made = []
    threads = [threading.Thread(target=lambda: made.append(make_parallel_envs([config])))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    envs = make_parallel_envs([config, config])
    for e in made + [envs]:
        e.reset()
    print(sum(children_with_torch(e) for e in made + [envs]), len(made),
          __spec__ is spec, __file__ == file)
    for e in made + [envs]:
        e.close()
"""


def test_env_processes_do_not_import_the_parents_main_module(tmp_path):
    """Spawned env processes skip the parent's `__main__` (for cwm-rl: the CLI and torch), also
    when two threads make envs at once; the parent's main module is left as it was."""
    import subprocess
    import sys

    script = tmp_path / "heavy_main.py"
    script.write_text(LEAN_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0", "2", "True", "True"]

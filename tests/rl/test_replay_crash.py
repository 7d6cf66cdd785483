"""Kill -9 while a chunk is being written: every finished file opens, nothing loads twice."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from cwm.rl.replay import Replay

# Writes ever-increasing counters; large noisy images make each chunk write take long enough
# that the parent can kill the writer while a temporary file exists.
WRITER = """
import sys
import numpy as np
from cwm.rl.replay import Replay
directory, start = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(start)
r = Replay(directory, capacity=10**6, chunk_len=8)
c = start
while True:
    r.add({
        "image": rng.integers(0, 256, (256, 256, 3), np.uint8),
        "action": np.zeros(2, np.float32),
        "reward": float(c),
        "is_first": c % 20 == 0, "is_last": c % 20 == 19, "is_terminal": False, "success": False,
    })
    c += 1
"""


def run_and_kill(directory, start: int) -> bool:
    """Start a writer, SIGKILL it as soon as it is mid-write; True if a temporary was caught."""
    before = len(list(directory.glob("*.h5")))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(start)])
    caught = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            done = len(list(directory.glob("*.h5")))
            if done >= before + 2 and list(directory.glob("*.tmp")):
                caught = True
                break
            time.sleep(0.001)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return caught


def stored_counters(directory) -> np.ndarray:
    with Replay(directory, capacity=10**6, chunk_len=8) as r:
        return np.concatenate([c.data["reward"] for c in r.chunks()])


def test_kill_9_mid_write_keeps_every_file_and_loads_nothing_twice(tmp_path):
    assert run_and_kill(tmp_path, 0), "writer was never caught mid-write"
    assert list(tmp_path.glob("*.tmp"))
    for f in tmp_path.glob("*.h5"):
        with h5py.File(f, "r") as h:
            assert len(h["reward"]) > 0
    first = stored_counters(tmp_path)
    assert not list(tmp_path.glob("*.tmp")), "the killed writer's temporary is cleaned on start"
    assert len(first) >= 16 and len(np.unique(first)) == len(first)
    # Resume in a new process (counters continue far away so any re-load would show), kill again.
    run_and_kill(tmp_path, 10**6)
    second = stored_counters(tmp_path)
    assert len(np.unique(second)) == len(second)
    assert set(first) <= set(second) and len(second) > len(first)

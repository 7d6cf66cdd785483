"""Every command against a small filesystem that fills up: one `error:` line (or a failed shard,
exit 1), no traceback, nothing half-written under a final name, and a rerun after space is
freed finishes the job. Needs a tmpfs the test can mount (root with CAP_SYS_ADMIN, as on the
project's machines and CI); skipped, saying why, where it cannot make one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from cwm.atomic import StorageError
from cwm.rl.replay import Replay
from tests.model.shards import write_clip_shards

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _mount(path: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `path`; the reason when that is not possible here."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return None if proc.returncode == 0 else f"cannot mount a tmpfs: {proc.stderr.strip()}"


class SmallFS:
    def __init__(self, path: Path):
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def fill(self) -> None:
        """Leave no free block (a file takes all of them)."""
        with open(self.path / f"filler-{uuid.uuid4().hex[:6]}", "wb", buffering=0) as f:
            for block in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * block)
                except OSError:
                    pass


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "small"
    reason = _mount(mount_point, "1m")
    if reason:
        pytest.skip(reason)
    yield SmallFS(mount_point)
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _run(args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _no_temporaries(directory: Path) -> None:
    assert not [p for p in directory.rglob("*.tmp")], list(directory.rglob("*.tmp"))


def test_ingest_on_a_full_disk_fails_its_shards_with_exit_1_then_resumes(small_fs, tmp_path):
    args = ["cwm.cli.ingest", "synthetic", "--videos", "4", "--shard-samples", "8",
            "--src", str(tmp_path / "videos"), "--out", str(small_fs.path / "out"),
            "--workers", "1", "--retries", "0", "--no-progress"]
    proc = _run(args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the decode tasks' parts do not fit: no shard is laid out, each failed task is named
    assert re.search(r"shards: 0/\d+ done", proc.stdout), proc.stdout
    assert proc.stdout.count("no space left on device") >= 1, proc.stdout
    assert not list((small_fs.path / "out").glob("*.tar"))      # nothing half-written
    _no_temporaries(small_fs.path)

    small_fs.resize("64m")
    proc = _run(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for tar in (small_fs.path / "out").glob("*.tar"):
        with tarfile.open(tar) as t:
            assert t.getmembers()


def test_ingest_with_no_room_for_its_config_is_one_line(small_fs, tmp_path):
    small_fs.fill()
    proc = _run(["cwm.cli.ingest", "synthetic", "--videos", "2", "--src",
                 str(tmp_path / "videos"), "--out", str(small_fs.path / "out"),
                 "--scheduler", "inline", "--no-progress"])
    line = _one_error_line(proc)
    assert line.endswith("config.json: no space left on device"), line


def test_train_checkpoint_on_a_full_disk_is_one_line_then_resumes(small_fs, tmp_path):
    spec = write_clip_shards(tmp_path / "shards")
    run = small_fs.path / "run"
    args = ["cwm.cli.train", "--shards", spec, "--out", str(run), "--preset", "tiny",
            "--steps", "2", "--ckpt-every", "2", "--picture-every", "1000", "--no-progress"]
    line = _one_error_line(_run(args))           # a tiny checkpoint is ~1.6 MB: it cannot fit
    assert "cannot write checkpoint" in line and line.endswith("no space left on device"), line
    assert not list((run / "checkpoints").glob("*.pt"))
    _no_temporaries(run)
    small_fs.resize("64m")
    proc = _run(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (run / "checkpoints" / "step-00000002.pt").is_file()


def test_rl_with_no_room_for_its_config_is_one_line(small_fs):
    small_fs.fill()
    proc = _run(["cwm.cli.rl", "--env", "dmc", "--preset", "tiny", "--render", "fast",
                 "--out", str(small_fs.path / "rl"), "--no-progress"])
    line = _one_error_line(proc)
    assert line.endswith("config.json: no space left on device"), line


def test_replay_writer_on_a_full_disk(small_fs):
    replay = Replay(small_fs.path / "replay", capacity=10_000, chunk_len=64, compression=None)
    small_fs.fill()
    rng = np.random.default_rng(0)
    with pytest.raises(StorageError, match=r"cannot write .*\.h5: no space left on device"):
        for t in range(64):
            replay.add({"image": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
                        "action": np.zeros(2, np.float32), "reward": 0.0, "is_first": t == 0,
                        "is_last": False, "is_terminal": False, "success": False})
    assert not list((small_fs.path / "replay").glob("*.h5"))
    _no_temporaries(small_fs.path)


def test_metrics_and_tensorboard_on_a_full_disk_without_thread_tracebacks(small_fs):
    script = f"""
from cwm.atomic import StorageError
from pathlib import Path
from cwm.model.metrics import MetricsLogger
from tests.test_full_disk import SmallFS
Path({str(small_fs.path / 'run')!r}).mkdir()
logger = MetricsLogger({str(small_fs.path / 'run')!r}, 0)
SmallFS(Path({str(small_fs.path)!r})).fill()
try:
    for step in range(1, 5000):
        logger.log(step, {{"loss": 1.0, "kl": 2.0}})
    logger.flush()
    logger.close()
    print("no error")
except StorageError as e:
    print("error:", e)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("error: cannot write ") and \
        proc.stdout.strip().endswith("no space left on device"), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr

"""Real dask runs: the embedded LocalCluster (threads of the command), kill -9 and Ctrl-C of
the whole ingest, an existing scheduler's process workers."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from cwm.cli.common import run_cli
from cwm.cli.ingest import cli
from cwm.ingest import cancel
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.decode import decode_file
from cwm.ingest.distribute import Executor, _on_worker
from cwm.ingest.run import ingest

SMALL = ["synthetic", "--videos", "8", "--shard-samples", "3", "--segment-frames", "20",
         "--min-frames", "20", "--no-progress"]
CLI = [sys.executable, "-c", "from cwm.cli.ingest import main; main()"]


def keys(out: Path) -> set[str]:
    """All sample keys in the finished shards; reading every member proves each tar complete."""
    found = set()
    for path in out.glob("*.tar"):
        with tarfile.open(path) as tar:
            for member in tar:
                tar.extractfile(member).read()
                found.add(member.name.split(".", 1)[0])
    return found


def test_embedded_cluster_run(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(CLI + SMALL + ["--out", str(out), "--workers", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "on 2 worker(s)" in result.stdout and "videos: 8 ok, 0 failed" in result.stdout
    index = json.loads((out / "_index.json").read_text())
    n = sum(s["samples"] for s in index["shards"])
    assert index["complete"] and index["num_shards"] == -(-n // 3)
    assert n == len(keys(out)) > 8
    # Rerun: everything resumes, nothing is rewritten.
    again = subprocess.run(CLI + SMALL + ["--out", str(out), "--workers", "2"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"all {index['num_shards']} shards already done" in again.stdout


def test_kill_9_at_random_moments_then_rerun(tmp_path):
    reference = tmp_path / "reference"
    try:
        run_cli(cli, SMALL + ["--out", str(reference), "--scheduler", "inline"])
    except SystemExit as e:
        assert e.code == 0
    expected = keys(reference)
    assert len(expected) > 8

    out = tmp_path / "killed"
    rng = random.Random()
    for _ in range(2):
        delay = rng.uniform(0.5, 8.0)
        proc = subprocess.Popen(CLI + SMALL + ["--out", str(out), "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir():
                keys(out)          # any tar under its final name must be complete
            time.sleep(0.05)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass                   # the run finished (group and all) before the delay ran out
        proc.wait()
        keys(out)
        for _ in range(100):       # the whole process group (dask workers too) is gone
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"processes of the killed ingest survive (delay {delay:.2f})")

    result = subprocess.run(CLI + SMALL + ["--out", str(out), "--scheduler", "inline"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert keys(out) == expected
    assert not list(out.glob("*.tmp")) and not list((out / "_synthetic").glob("*.tmp"))


def test_joins_an_existing_scheduler_and_leaves_it_running(tmp_path, monkeypatch):
    monkeypatch.setattr("cwm.ingest.run.PROBE_BATCH", 3)     # 4 inputs: probed on the worker
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        cfg = IngestConfig(dataset="synthetic", src="", out=str(tmp_path / "out"),
                           frames=FrameOptions(segment_frames=20, min_frames=20),
                           shard_samples=3, source_options={"videos": 4, "seed": 1},
                           scheduler=cluster.scheduler_address, progress=False)
        summary = ingest(cfg, log=lambda _: None)
        assert summary.ok and summary.workers == 1 and summary.totals["ok"] == 4
        with Client(cluster.scheduler_address) as client:    # still up for its other users
            assert len(client.scheduler_info()["workers"]) == 1


def test_unreachable_scheduler_is_a_one_line_error(tmp_path):
    with socket.socket() as s:                 # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    result = subprocess.run(CLI + SMALL + ["--out", str(tmp_path / "out"),
                                           "--scheduler", f"tcp://127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the dask scheduler at "
                                                   f"tcp://127.0.0.1:{port}"), result.stderr
    assert "Traceback" not in result.stderr


_RUNNING = threading.Event()


def _until_cancelled(item, emit):
    """A task that would run forever if nobody stopped it (checks like a decode loop does)."""
    _RUNNING.set()
    while True:
        cancel.check()
        time.sleep(0.01)


def test_closing_the_embedded_cluster_stops_a_running_task_at_once():
    """Its workers are threads of this process: an interrupted run must not wait for them."""
    ex = Executor(None, 1).start()
    try:
        ex.client.submit(partial(_on_worker, _until_cancelled, topic="t", run=ex.run, kwargs={}),
                         0, pure=False)
        assert _RUNNING.wait(60)
    finally:
        started = time.monotonic()
        ex.close()
    assert time.monotonic() - started < 10


def test_a_cancelled_run_stops_decoding_at_the_next_frame(media):
    opts = FrameOptions(segment_frames=5, min_frames=5)
    with cancel.running("other"):
        cancel.cancel("this")
        try:
            assert len(decode_file(media["good"], opts).frames) > 0   # another run's: unaffected
            with cancel.running("this"), pytest.raises(cancel.Cancelled):
                decode_file(media["good"], opts)
        finally:
            cancel.forget("this")


def test_ctrl_c_stops_the_embedded_cluster_run_and_the_rerun_resumes(tmp_path):
    """Ctrl-C reaches the whole process group; the worker threads stop at their next frame."""
    out = tmp_path / "out"
    args = ["synthetic", "--videos", "12", "--shard-samples", "4", "--segment-frames", "20",
            "--min-frames", "20", "--no-progress", "--src", str(tmp_path / "videos"),
            "--out", str(out), "--workers", "2"]
    # A test run launched as a background job ignores SIGINT, and so would the child.
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not list(out.glob("_parts-*/*.json")) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, stdout + stderr
    assert time.monotonic() - sent < 20
    assert "interrupted: " in stdout and "rerun the same command to resume" in stdout
    assert "Traceback" not in stderr, stderr
    rerun = subprocess.run(CLI + args, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0 and "shards: " in rerun.stdout, rerun.stdout + rerun.stderr


def test_the_embedded_cluster_never_has_more_workers_than_decode_tasks(tmp_path):
    cfg = IngestConfig(dataset="synthetic", src="", out=str(tmp_path / "out"),
                       frames=FrameOptions(segment_frames=20, min_frames=20), shard_samples=3,
                       source_options={"videos": 1, "seed": 1}, workers=3, progress=False)
    lines = []
    summary = ingest(cfg, log=lines.append)
    assert summary.ok and summary.workers == 1 and "-> 1 decode tasks" in lines[0], lines[0]


def test_workers_are_threads_of_the_command_except_for_simulator_episodes():
    with Executor(None, 2).start() as ex:
        assert set(ex.client.run(os.getpid).values()) == {os.getpid()} and ex.workers == 2
    with Executor(None, 1, processes=True).start() as ex:
        assert os.getpid() not in ex.client.run(os.getpid).values()

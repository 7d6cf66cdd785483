"""cwm-ingest as a careless or hostile user meets it: bad option values, a second ingest into
the same --out, damaged state files, shard tasks that fail, unreadable folders, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cwm.errors import UserError
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.run import ingest
from cwm.locks import locked_dir

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cwm.cli.ingest"]
SMALL = ["synthetic", "--videos", "4", "--shard-samples", "8", "--segment-frames", "20",
         "--min-frames", "20", "--no-progress"]


def _config(tmp_path, **kw) -> IngestConfig:
    return IngestConfig(dataset="synthetic", src=str(tmp_path / "videos"),
                        out=str(tmp_path / "out"), frames=FrameOptions(segment_frames=20,
                                                                       min_frames=20),
                        shard_samples=7, source_options={"videos": 4, "seed": 1},
                        scheduler="inline", progress=False, **kw)


def _cli(*args, timeout=240):
    return subprocess.run(CLI + list(args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (("--prefix", "../x"), "--prefix '../x' must be a plain name"),
    (("--prefix", "a/b"), "--prefix 'a/b' must be a plain name"),
    (("--scheduler", "junk"), "--scheduler 'junk' is not a dask scheduler address"),
    (("--fps", "inf"), "--fps must be a finite number, got inf"),
    (("--fps", "nan"), "--fps must be a finite number, got nan"),
    (("--timeout", "-1"), "--timeout must be > 0"),
    (("--workers", "0"), "--workers must be >= 1"),
    (("--seed", str(2 ** 64)), "--seed must be in [0, 9223372036854775807]"),
])
def test_bad_values_are_one_line_and_write_nothing(tmp_path, args, message):
    proc = _cli(*SMALL, "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x").exists()


def test_a_second_ingest_into_the_same_out_is_refused(tmp_path):
    out = tmp_path / "out"
    with locked_dir(out, "cwm-ingest"):           # as a running ingest holds it
        with pytest.raises(UserError, match="in use by another cwm-ingest"):
            ingest(_config(tmp_path), log=lambda _: None)
    assert ingest(_config(tmp_path), log=lambda _: None).ok


def test_damaged_stats_file_redoes_its_shard(tmp_path):
    first = ingest(_config(tmp_path), log=lambda _: None)
    out = tmp_path / "out"
    stats = sorted(out.glob("*.stats.json"))[0]
    stats.write_bytes(b'{"shard": "synthetic-0000')           # torn by something else
    lines: list[str] = []
    summary = ingest(_config(tmp_path), log=lines.append)
    assert summary.ok and summary.shards_resumed == first.shards_total - 1
    assert json.loads(stats.read_text())["samples"] > 0
    assert summary.totals == first.totals


def test_damaged_config_is_recovered_from_the_index_or_named(tmp_path):
    first = ingest(_config(tmp_path), log=lambda _: None)
    out = tmp_path / "out"
    (out / "config.json").write_bytes(b"\x00\x01 not json")
    summary = ingest(_config(tmp_path), log=lambda _: None)         # the index vouches for it
    assert summary.ok and summary.shards_resumed == first.shards_total
    assert json.loads((out / "config.json").read_text())["stage"] == "ingest"
    # without the index nothing confirms which settings the finished shards were made with
    (out / "config.json").write_text("{")
    (out / "_index.json").unlink()
    with pytest.raises(UserError, match=r"config.json is damaged and no _index.json confirms the "
                                        r"settings of the 2 finished shard\(s\)"):
        ingest(_config(tmp_path), log=lambda _: None)
    assert len(list(out.glob("*.tar"))) == 2                        # nothing was thrown away


def test_failed_shard_tasks_exit_1(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "synthetic-000001.tar").mkdir()        # the rename of shard 1 cannot succeed
    proc = _cli(*SMALL, "--out", str(out), "--src", str(tmp_path / "videos"), "--workers", "1",
                "--retries", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "shards: 1/2 done (0 already done, 1 failed)" in proc.stdout
    assert "shard synthetic-000001 failed:" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    # The decoded parts wait for the next run; one of their records damaged after the fact
    # means that decode task runs again, not a traceback on every rerun.
    records = sorted((out / "_parts-synthetic").glob("*.json"))
    assert records
    records[0].write_bytes(b'{"units": [{"video_id"')
    (out / "synthetic-000001.tar").rmdir()
    rerun = _cli(*SMALL, "--out", str(out), "--src", str(tmp_path / "videos"), "--workers", "1")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming: " in rerun.stdout and "shards: 2/2 done" in rerun.stdout, rerun.stdout


def test_an_unreadable_subdirectory_is_recorded(tmp_path, media):
    """Root lists any folder (CAP_DAC_READ_SEARCH): the ingest runs without that capability."""
    src = tmp_path / "src"
    (src / "open").mkdir(parents=True)
    (src / "locked").mkdir()
    (src / "open" / "a.mp4").write_bytes(media["good"].read_bytes())
    (src / "locked" / "b.mp4").write_bytes(media["good"].read_bytes())
    (src / "locked").chmod(0)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-all"] if os.geteuid() == 0 else []
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    try:
        proc = subprocess.run([*drop, *CLI, "folder", "--src", str(src), "--out", str(out),
                               "--scheduler", "inline", "--no-progress"],
                              cwd=REPO, capture_output=True, text=True, timeout=240)
    finally:
        (src / "locked").chmod(0o755)
    assert "videos: 1 ok, 1 failed" in proc.stdout, proc.stdout + proc.stderr
    errors = [json.loads(line) for p in out.glob("*.errors.jsonl")
              for line in p.read_text().splitlines()]
    assert [(e["source"], e["status"]) for e in errors] == [("locked", "failed")]
    assert "cannot be read (permission denied)" in errors[0]["error"]


def test_sigterm_stops_with_a_message_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "out"
    args = ["synthetic", "--videos", "12", "--shard-samples", "4", "--segment-frames", "20",
            "--min-frames", "20", "--no-progress", "--src", str(tmp_path / "videos"),
            "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(CLI + args, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    # the first decode task done (its part record), or a shard: the run is under way
    while not (list(out.glob("_parts-*/*.json")) or list(out.glob("*.stats.json"))) \
            and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted: " in stdout and "rerun the same command to resume" in stdout
    assert "Traceback" not in stderr, stderr
    rerun = _cli(*args)
    assert rerun.returncode == 0 and re.search(r"shards: (\d+)/\1 done", rerun.stdout), rerun.stdout

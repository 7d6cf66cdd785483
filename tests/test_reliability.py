"""The shared mechanisms every command relies on: run-directory locks, storage errors as one
line, the number validator, and exit codes (issue: reliability hardening)."""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import numpy as np
import pytest

from cwm.atomic import StorageError, atomic_open, storage_errors, write_json
from cwm.cli.common import POSITIVE_FLOAT, SEED, run_cli
from cwm.errors import UserError
from cwm.locks import DirLock, locked_dir
from cwm.model.metrics import read_metrics, truncate_metrics
from cwm.values import MAX_SEED, check

REPO = Path(__file__).resolve().parents[1]


# -- locks ----------------------------------------------------------------------------------------

def test_a_directory_has_one_owner_and_the_lock_dies_with_its_process(tmp_path):
    run = tmp_path / "run"
    with locked_dir(run, "cwm-train"):
        with pytest.raises(UserError, match=r"in use by another cwm-train \(pid \d+\)"):
            DirLock(run, "cwm-ingest")
    DirLock(run, "cwm-ingest").release()          # released on exit of the block
    # a holder killed with -9 leaves no stale lock behind
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cwm.locks import DirLock
            lock = DirLock({str(run)!r}, "holder")
            print("held", flush=True)
            time.sleep(60)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match="in use by another holder"):
        DirLock(run, "cwm-train")
    holder.kill()
    holder.wait()
    DirLock(run, "cwm-train").release()


# -- storage errors ---------------------------------------------------------------------------------

def test_storage_failures_become_one_line_and_leave_no_file(tmp_path):
    target = tmp_path / "config.json"
    with pytest.raises(StorageError, match=r"^cannot write .*config.json: no space left on device$"):
        with atomic_open(target, "w") as f:
            f.write("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not target.exists() and not list(tmp_path.iterdir())
    # an error that wraps the errno (torch's "unexpected pos", h5py) is recognised by its cause
    with pytest.raises(StorageError, match="input/output error"):
        with storage_errors("x.pt"):
            try:
                raise OSError(errno.EIO, "I/O error")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")
    # anything else keeps its type and traceback
    with pytest.raises(ValueError):
        with storage_errors("x"):
            raise ValueError("a bug")


# -- damaged logs ---------------------------------------------------------------------------------

def test_metrics_with_bytes_that_are_not_utf8_are_read_past(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "loss": 2.0}\n\xff\xfe garbage \x80\n{"step": 2, "loss": 1.0}\n'
                     b'[1, 2]\n{"step": "x"}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, "x"]
    assert truncate_metrics(path, 2) == 2
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n'


# -- numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, bounds, message", [
    (math.nan, {"low": 0, "low_open": True}, "must be a finite number, got nan"),
    (math.inf, {}, "must be a finite number, got inf"),
    (-1e-4, {"low": 0, "low_open": True}, "must be > 0, got -0.0001"),
    (0, {"low": 0, "low_open": True}, "must be > 0"),
    (2 ** 64, {"low": 0, "high": MAX_SEED, "integer": True}, "must be in [0, 9223372036854775807]"),
    (1.5, {"integer": True}, "must be an integer"),
    (True, {}, "must be a number"),
    ("3", {}, "must be a number"),
])
def test_check_refuses_what_is_not_a_usable_number(value, bounds, message):
    with pytest.raises(UserError, match=r"^lr " + message.replace("[", r"\[").replace("(", r"\(")):
        check("lr", value, **bounds)


def test_check_passes_good_numbers_and_none():
    assert check("lr", 3e-4, low=0, low_open=True) == 3e-4
    assert check("seed", MAX_SEED, low=0, high=MAX_SEED, integer=True) == MAX_SEED
    assert check("seed", np.int64(3), integer=True) == 3
    assert check("fps", None, low=0) is None


def test_click_number_types_are_one_error_line_and_exit_2(capsys):
    @click.command()
    @click.option("--lr", type=POSITIVE_FLOAT)
    @click.option("--seed", type=SEED, default=0)
    def command(lr, seed):
        print("ran", lr, seed)

    for argv, message in ((["--lr", "nan"], "error: --lr must be a finite number, got nan"),
                          (["--lr", "-1"], "error: --lr must be > 0, got -1.0"),
                          (["--lr", "x"], "error: --lr must be a number, got 'x'"),
                          (["--seed", str(2 ** 64)], "error: --seed must be in [0,")):
        with pytest.raises(SystemExit) as e:
            run_cli(command, argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    run_cli(command, ["--lr", "0.1", "--seed", "7"])
    assert "ran 0.1 7" in capsys.readouterr().out


def test_a_command_that_exits_1_exits_1(capsys):
    @click.command()
    def failing():
        raise click.exceptions.Exit(1)

    with pytest.raises(SystemExit) as e:          # click returns the code without standalone mode
        run_cli(failing, [])
    assert e.value.code == 1


def test_write_json_and_its_reader_round_trip(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}

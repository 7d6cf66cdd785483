"""The training commands' allocator: tcmalloc by re-execution when installed, never looping,
never re-executing an in-process call, and a one-line error for a bad CWM_ALLOCATOR."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cwm import allocator
from cwm.errors import UserError

# A command-line entry point (argv None) that reports what it runs with.
PROBE = """
import click, os
from cwm.cli.common import run_cli
from cwm import allocator

@click.command()
def show():
    maps = open("/proc/self/maps").read()
    print("pid", os.getpid(), "in_use", allocator.in_use(), "mapped", "tcmalloc" in maps)

run_cli(show, None, allocator=True)
"""


def run_probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("LD_PRELOAD", "CWM_ALLOCATOR", "CWM_ALLOCATOR_APPLIED")}
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)


def test_command_line_entry_runs_under_tcmalloc_when_installed():
    out = run_probe()
    assert out.returncode == 0, out.stderr
    found = allocator.find_tcmalloc() is not None
    assert f"in_use {'tcmalloc' if found else 'system'} mapped {found}" in out.stdout
    assert out.stdout.count("pid") == 1          # one run, whether re-executed or not


def test_system_choice_and_an_existing_preload_are_left_alone():
    out = run_probe(CWM_ALLOCATOR="system")
    assert "in_use system mapped False" in out.stdout
    env = allocator.preload_env({"LD_PRELOAD": "/x/libtcmalloc.so.4", "CWM_ALLOCATOR": "auto"})
    assert env["LD_PRELOAD"] == "/x/libtcmalloc.so.4"


def test_bad_choice_is_one_line_and_exit_2():
    out = run_probe(CWM_ALLOCATOR="jemalloc")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("error: CWM_ALLOCATOR='jemalloc' is not one of auto, "
                                  "tcmalloc, system")


def test_asking_for_a_missing_tcmalloc_is_a_user_error(monkeypatch):
    monkeypatch.setattr(allocator, "find_tcmalloc", lambda: None)
    with pytest.raises(UserError, match="libtcmalloc-minimal4"):
        allocator.preload_env({"LD_PRELOAD": "", "CWM_ALLOCATOR": "tcmalloc"})
    env = allocator.preload_env({"LD_PRELOAD": "libfoo.so", "CWM_ALLOCATOR": "auto"})
    assert env["LD_PRELOAD"] == "libfoo.so"


@pytest.mark.skipif(allocator.find_tcmalloc() is None, reason="needs tcmalloc installed")
def test_preload_keeps_other_preloads():
    env = allocator.preload_env({"LD_PRELOAD": "libfoo.so", "CWM_ALLOCATOR": "auto"})
    assert env["LD_PRELOAD"].split() == [allocator.find_tcmalloc(), "libfoo.so"]

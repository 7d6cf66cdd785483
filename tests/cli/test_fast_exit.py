"""`exit_without_teardown` (what `cwm-ingest` exits through): the exit code, the output, atexit
callbacks and non-daemon threads are all as with a normal exit; only the teardown is skipped."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import atexit, sys, threading, time
import click
from cwm.cli.common import exit_without_teardown
from cwm.errors import UserError

@click.command()
@click.argument("mode")
@click.argument("marks")
def cli(mode, marks):
    atexit.register(lambda: open(marks + ".atexit", "w").write("ran"))
    def late():
        time.sleep(0.3)
        open(marks + ".thread", "w").write("done")
    threading.Thread(target=late).start()
    sys.stdout.write("x" * 100_000)          # buffered, no newline: lost unless flushed
    if mode == "user-error":
        raise UserError("bad input")
    if mode == "exit-3":
        sys.exit(3)

exit_without_teardown(cli)
"""


def run(mode: str, marks) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _PROGRAM, mode, str(marks)],
                          capture_output=True, text=True, timeout=60)


def test_exit_codes_output_atexit_and_threads_as_a_normal_exit(tmp_path):
    for mode, code, err in (("ok", 0, ""), ("user-error", 2, "error: bad input\n"),
                            ("exit-3", 3, "")):
        marks = tmp_path / mode
        done = run(mode, marks)
        assert done.returncode == code, done.stderr
        assert done.stdout == "x" * 100_000 and done.stderr == err
        assert (tmp_path / f"{mode}.atexit").read_text() == "ran"
        assert (tmp_path / f"{mode}.thread").read_text() == "done"

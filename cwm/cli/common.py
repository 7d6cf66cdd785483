"""What every `cwm-*` command shares: turning user mistakes into one clear line and an exit code."""

from __future__ import annotations

import atexit
import os
import sys
import threading

import click

from cwm.errors import UserError
from cwm.values import MAX_SEED, check


def run_cli(command: click.BaseCommand, argv: list[str] | None = None,
            allocator: bool = False) -> None:
    """Run a click command; a `UserError` prints `error: ...` on stderr and exits with status 2.

    click's own usage errors already print one line (plus a usage hint) and exit 2.
    Ctrl-C exits 130 without a traceback; stages that need to save state on Ctrl-C do so in
    their own `finally` blocks before the interrupt reaches here. With `allocator`, a command
    started from the command line (`argv` None) first re-executes itself under the preferred
    memory allocator (`cwm.allocator`), unless it only asks for `--help`.
    """
    try:
        if allocator and argv is None and "--help" not in sys.argv[1:]:
            from cwm.allocator import reexec_with_preferred_allocator

            reexec_with_preferred_allocator()
        # Without standalone mode click *returns* the code of a `click.exceptions.Exit`
        # instead of exiting with it: pass it on, or a failed run would exit 0.
        code = command.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)


def exit_without_teardown(command: click.BaseCommand, argv: list[str] | None = None) -> None:
    """`run_cli`, then leave the process without the interpreter's teardown.

    What a normal exit still does is done here: non-daemon threads are joined, `atexit`
    callbacks run (logging, multiprocessing, weakref finalizers: temporary directories), stdout
    and stderr are flushed (a failed flush exits 120, as Python does). What is skipped is
    freeing every module and object one by one: after an ingest with dask, distributed, numpy
    and PyAV loaded (~800 modules, ~70,000 objects) that took 0.15-0.2 s of wall and CPU time
    per command (`bench/RESULTS.md`, issue 14 fourth pass). For commands whose files are all
    written through context managers (`cwm.atomic`): a file object left open would lose its
    buffer, which is why this is not the default of `run_cli`.
    """
    try:
        run_cli(command, argv)
        code = 0
    except SystemExit as e:
        code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    # In the interpreter's own order: threads (executors told to stop, non-daemon threads
    # joined), then atexit.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)


class Number(click.ParamType):
    """A number option checked by `cwm.values.check`: finite, of the right kind, in range.

    `Number(float, low=0, low_open=True)` rejects nan, inf, 0 and negatives; like every user
    mistake that is one line, `error: --lr must be a finite number, got nan`, and exit 2.
    """

    def __init__(self, kind: type = float, **bounds):
        self.kind = kind
        self.bounds = bounds
        self.name = "integer" if kind is int else "float"

    def convert(self, value, param, ctx):
        name = param.opts[0] if param is not None and param.opts else "value"
        if not isinstance(value, self.kind) or isinstance(value, bool):
            try:
                value = self.kind(value)
            except (TypeError, ValueError):
                kind = "an integer" if self.kind is int else "a number"
                raise UserError(f"{name} must be {kind}, got {value!r}") from None
        return check(name, value, integer=self.kind is int, **self.bounds)


POSITIVE_INT = Number(int, low=1)
COUNT = Number(int, low=0)
POSITIVE_FLOAT = Number(float, low=0, low_open=True)
SEED = Number(int, low=0, high=MAX_SEED)


def device_option():
    """`--device auto|cpu|cuda|cuda:N`: auto picks CUDA when present."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Torch device; 'auto' uses CUDA when available, else the CPU.",
    )

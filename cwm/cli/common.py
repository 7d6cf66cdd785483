"""What every `cwm-*` command shares: turning user mistakes into one clear line and an exit code."""

from __future__ import annotations

import sys

import click

from cwm.errors import UserError


def run_cli(command: click.BaseCommand, argv: list[str] | None = None) -> None:
    """Run a click command; a `UserError` prints `error: ...` on stderr and exits with status 2.

    click's own usage errors already print one line (plus a usage hint) and exit 2.
    Ctrl-C exits 130 without a traceback; stages that need to save state on Ctrl-C do so in
    their own `finally` blocks before the interrupt reaches here.
    """
    try:
        command.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
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


def device_option():
    """`--device auto|cpu|cuda|cuda:N`: auto picks CUDA when present."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Torch device; 'auto' uses CUDA when available, else the CPU.",
    )

"""`inspect` and `verify` for shard specs (registered under `cwm-ingest`; `cli` runs them alone)."""

from __future__ import annotations

import sys

import click

from cwm.cli.common import run_cli
from cwm.shards.inspect import format_report, inspect_spec, write_contact_sheet
from cwm.shards.spec import resolve_sources
from cwm.shards.verify import verify

_SPEC_HELP = ("Shards: 'dir/', 'a-{000000..000099}.tar', 'a-<0000..0099>.tar', globs, a list "
              "file, 'A::B', or a mixture 'ssv2=SPEC:1.0,h36m=SPEC:0.5'.")


def _progress_bar(spec: str, desc: str):
    from tqdm import tqdm     # here: `cwm-ingest`, which offers these commands, rarely needs it

    total = sum(len(s.shards) for s in resolve_sources(spec))
    return tqdm(total=total, desc=desc, unit="shard", file=sys.stderr, leave=False,
                disable=total < 2)


@click.command("inspect", help="Counts, frames, bytes and dataset mix of SPEC; optional PNG contact sheet. " + _SPEC_HELP)
@click.argument("spec")
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG contact sheet (one row per sample, frames spaced through it).")
@click.option("--rows", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Samples in the contact sheet.")
@click.option("--columns", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Frames per sample in the contact sheet.")
def inspect_cmd(spec: str, sheet: str | None, rows: int, columns: int) -> None:
    with _progress_bar(spec, "inspect") as bar:
        report = inspect_spec(spec, rows=rows, columns=columns, progress=bar.update)
    click.echo(format_report(report))
    if sheet:
        if not report.sheet_frames:
            click.echo("no decodable sample: no contact sheet written", err=True)
            sys.exit(1)
        write_contact_sheet(report.sheet_frames, sheet)
        click.echo(f"contact sheet: {sheet}")


@click.command("verify", help="Decode every sample of SPEC and check keys, shapes and dtypes; "
               "exit 1 on any bad sample. " + _SPEC_HELP)
@click.argument("spec")
@click.option("--show", default=20, show_default=True, type=click.IntRange(0),
              help="How many problems to print.")
def verify_cmd(spec: str, show: int) -> None:
    with _progress_bar(spec, "verify") as bar:
        report = verify(spec, progress=bar.update)
    for line in report.problems[:show]:
        click.echo(f"bad: {line}")
    if len(report.problems) > show:
        click.echo(f"... and {len(report.problems) - show} more problems")
    status = "ok" if report.ok else f"FAILED ({len(report.problems)} problems)"
    click.echo(f"verify: {report.samples} samples, {report.frames} frames: {status}")
    if not report.ok:
        sys.exit(1)


@click.group(help="Inspect and verify WebDataset shards of clips.")
def cli() -> None:
    pass


cli.add_command(inspect_cmd)
cli.add_command(verify_cmd)


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv)


if __name__ == "__main__":
    main()

"""`cwm-ingest DATASET --src DIR --out DIR ...`: argument parsing only; the work is cwm.ingest."""

from __future__ import annotations

import click

from cwm.cli.common import COUNT, POSITIVE_FLOAT, POSITIVE_INT, SEED, run_cli
from cwm.cli.shards import inspect_cmd, verify_cmd
from cwm.ingest.config import (ASPECTS, DEFAULT_SHARD_BYTES, INLINE, INTERPOLATIONS, PROBES,
                               FrameOptions, IngestConfig)
from cwm.ingest.sources.human36m import PERSON_CROP
from cwm.ingest.sources.ssv2 import SPLITS
from cwm.signals import sigterm_as_interrupt
from cwm.shards.format import STORAGES

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


class ByteSize(click.ParamType):
    """`64M`, `1G`, `500000` (binary K/M/G)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        number, unit = (text[:-1], text[-1]) if text[-1:] in "KMG" else (text, "")
        try:
            size = int(float(number) * _UNITS[unit])
        except (ValueError, OverflowError):
            self.fail(f"{value!r} is not a size like 64M or 1G", param, ctx)
        if size < 1:
            self.fail("must be > 0", param, ctx)
        return size


def _common_options(every: int = 1, skip_start: int = 0, shard_samples: int | None = None,
                    src_help: str = "Dataset root. Default: $CWM_DATA/<dataset>.",
                    aspect: str = "center-crop"):
    """The options every dataset subcommand shares; defaults differ per dataset."""
    options = [
        click.option("--src", type=click.Path(file_okay=False), default=None, help=src_help),
        click.option("--out", type=click.Path(file_okay=False), required=True,
                     help="Output directory for the shards (created; rerun to resume)."),
        click.option("--workers", type=POSITIVE_INT, default=None,
                     help="Workers of the embedded dask cluster: single-threaded, threads of "
                          "this command (PyAV decodes without the GIL), never more than decode "
                          "tasks. [default: all cores, fewer for < 1 core-second of work each]"),
        click.option("--scheduler", default=None, metavar="ADDR",
                     help="Use an existing dask scheduler (tcp://host:8786) instead of an "
                          f"embedded cluster (connect timeout: dask's distributed.comm.timeouts.connect); "
                          f"'{INLINE}' runs in this process without dask."),
        click.option("--overwrite", is_flag=True,
                     help="Delete this dataset's shards in --out and redo them all."),
        click.option("--segment-frames", type=POSITIVE_INT, default=50, show_default=True,
                     help="Frames per sample (segment)."),
        click.option("--min-frames", type=POSITIVE_INT, default=25, show_default=True,
                     help="Videos with fewer kept frames are skipped; a shorter tail is dropped."),
        click.option("--every", type=POSITIVE_INT, default=every, show_default=True,
                     help="Keep every k-th source frame."),
        click.option("--fps", type=POSITIVE_FLOAT, default=None,
                     help="Resample to this frame rate by timestamps (overrides --every)."),
        click.option("--skip-start", type=COUNT, default=skip_start, show_default=True,
                     help="Source frames dropped at the start of each video."),
        click.option("--aspect", type=click.Choice(ASPECTS), default=aspect,
                     show_default=True, help="How non-square frames become 64x64."),
        click.option("--interpolation", type=click.Choice(INTERPOLATIONS), default="area",
                     show_default=True, help="swscale resize algorithm."),
        click.option("--storage", type=click.Choice(STORAGES), default="npy", show_default=True,
                     help="Frames as frames.npy (fast) or frames.mp4 (H.264, ~27x smaller)."),
        click.option("--shard-samples", type=POSITIVE_INT, default=shard_samples,
                     show_default=shard_samples is not None,
                     help="Samples (segments) per shard; overrides --shard-bytes."),
        click.option("--shard-bytes", type=ByteSize(), default=DEFAULT_SHARD_BYTES,
                     help="Target shard size; segments of all inputs are dealt to shards in a "
                          "seeded random order. [default: 64M]"),
        click.option("--shard-seed", type=SEED, default=0, show_default=True,
                     help="Seed of the order that deals segments to shards."),
        click.option("--probe", type=click.Choice(PROBES), default="pyav", show_default=True,
                     help="How inputs are probed for the work plan (ffprobe: ffmpeg-python)."),
        click.option("--prefix", default="", help="Shard name prefix. [default: dataset name]"),
        click.option("--timeout", type=POSITIVE_FLOAT, default=300.0, show_default=True,
                     help="Seconds allowed to decode one input before it counts as failed."),
        click.option("--retries", type=COUNT, default=2, show_default=True,
                     help="Times dask retries a shard task that crashed."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Progress bars on stderr."),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def _run(dataset: str, source_options: dict, kw: dict) -> None:
    frames = FrameOptions(
        aspect=kw["aspect"], every=kw["every"], fps=kw["fps"], skip_start=kw["skip_start"],
        segment_frames=kw["segment_frames"], min_frames=kw["min_frames"],
        storage=kw["storage"], interpolation=kw["interpolation"], timeout=kw["timeout"])
    cfg = IngestConfig(
        dataset=dataset, src=kw["src"] or "", out=kw["out"], frames=frames, prefix=kw["prefix"],
        shard_samples=kw["shard_samples"], shard_bytes=kw["shard_bytes"],
        shard_seed=kw["shard_seed"], probe=kw["probe"], source_options=source_options,
        workers=kw["workers"],
        scheduler=kw["scheduler"], retries=kw["retries"], overwrite=kw["overwrite"],
        progress=kw["progress"])
    from cwm.ingest.run import ingest   # here: `--help` does not import dask and PyAV

    with sigterm_as_interrupt():
        summary = ingest(cfg, log=click.echo)
    if not summary.ok:
        raise click.exceptions.Exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Raw video -> 64x64 segments -> WebDataset tar shards, in parallel on dask.

    Output in --out: <prefix>-NNNNNN.tar shards, each holding segments of many inputs in a
    seeded random order, with a .stats.json (written last: the shard is done) and an
    .errors.jsonl (inputs that failed or were skipped, with the reason), plus _index.json
    (shards and sample counts) and config.json. Rerun to resume.
    """


@cli.command("ssv2", short_help="Something-Something v2 (.webm + label json).")
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True,
              help="Annotation split to ingest (upstream trained on train: 168,913 videos); "
                   "'all' takes every .webm present.")
@_common_options(aspect="squash")
def ssv2_command(split, **kw):
    """Something-Something v2: <src>/20bn-something-something-v2/<id>.webm + label json.

    Defaults are upstream's: the train split, squashed to 64x64 (a 427x240 clip keeps its whole
    width; --aspect center-crop would drop ~44% of it).
    """
    _run("ssv2", {"split": split}, kw)


@cli.command("human36m", short_help="Human3.6M (per subject/action/camera .mp4).")
@click.option("--person-crop", type=click.Choice(PERSON_CROP), default="auto", show_default=True,
              help="Crop each frame to the square around the person's 2D joints (box + 200 px, "
                   "at most 1000 px; upstream's): 'auto' when <split>.h5 + <split>_images.txt "
                   "pose files are in --src (or its annot/), 'on' requires them.")
@_common_options(every=5)
def human36m_command(person_crop, **kw):
    """Human3.6M: <src>/S*/Videos/<Action>[ <n>].<camera>.mp4 (50 Hz; every 5th frame kept)."""
    _run("human36m", {"person_crop": person_crop}, kw)


@cli.command("ytb-driving", short_help="YouTube driving (JPEG frame folders).")
@click.option("--frame-rate", type=POSITIVE_FLOAT, default=30.0, show_default=True,
              help="Frames per second the JPEG numbering stands for (for --fps).")
@click.option("--max-gap", type=POSITIVE_INT, default=1, show_default=True,
              help="A jump in frame numbers larger than this starts a new run.")
@_common_options(every=5, skip_start=100)
def ytb_driving_command(frame_rate, max_gap, **kw):
    """YouTube driving (ACO): <src>/dir-<k>/<i>.jpg frame folders, split into runs at gaps."""
    _run("ytb-driving", {"frame_rate": frame_rate, "max_gap": max_gap}, kw)


@cli.command("folder", short_help="Any directory tree of videos.")
@_common_options(src_help="Any directory tree of mp4/webm/mkv/avi/mov. "
                          "Default: $CWM_DATA/folder.")
def folder_command(**kw):
    """Any directory tree of videos (mp4, webm, mkv, avi, mov)."""
    _run("folder", {}, kw)


@cli.command("synthetic", short_help="Generated demo videos, ingested like real ones.")
@click.option("--videos", type=POSITIVE_INT, default=24, show_default=True,
              help="How many videos to generate.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Generation seed.")
@_common_options(shard_samples=8, src_help="Where the generated videos are cached. "
                                        "Default: <out>/_synthetic.")
def synthetic_command(videos, seed, **kw):
    """Generate real encoded videos of moving textured objects, then ingest them (demo)."""
    _run("synthetic", {"videos": videos, "seed": seed}, kw)


# Reading-side checks live with the shards stage; they are offered here so that one command
# covers producing a dataset and looking at it: `cwm-ingest inspect SPEC`, `cwm-ingest verify SPEC`.
cli.add_command(inspect_cmd)
cli.add_command(verify_cmd)


def main():
    run_cli(cli)


if __name__ == "__main__":
    main()

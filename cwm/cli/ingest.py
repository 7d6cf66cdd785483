"""`cwm-ingest DATASET --src DIR --out DIR ...`: argument parsing only; the work is cwm.ingest."""

from __future__ import annotations

import click

from cwm.cli.common import (COUNT, POSITIVE_FLOAT, POSITIVE_INT, SEED, Number,
                             exit_without_teardown)
from cwm.cli.shards import inspect_cmd, verify_cmd
from cwm.ingest.config import (ASPECTS, DEFAULT_SHARD_BYTES, INLINE, INTERPOLATIONS, PROBES,
                               FrameOptions, IngestConfig)
from cwm.ingest.sources import sim
from cwm.ingest.sources.human36m import PERSON_CROP
from cwm.ingest.sources.ssv2 import SPLITS
from cwm.rl.envs.render import RENDER_MODES
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


def _decode_options(every: int, skip_start: int, src_help: str, aspect: str) -> list:
    """Options of the sources that decode files: where they are and how frames are picked."""
    return [
        click.option("--src", type=click.Path(file_okay=False), default=None, help=src_help),
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
        click.option("--probe", type=click.Choice(PROBES), default="pyav", show_default=True,
                     help="How inputs are probed for the work plan (ffprobe: ffmpeg-python)."),
    ]


def _output_options(shard_samples: int | None, out_required: bool = True) -> list:
    """Options of every source: segments, shards, the dask cluster, resume."""
    return [
        click.option("--out", type=click.Path(file_okay=False), required=out_required,
                     help="Output directory for the shards (created; rerun to resume)."),
        click.option("--workers", type=POSITIVE_INT, default=None,
                     help="Workers of the embedded dask cluster: single-threaded, threads of "
                          "this command (PyAV decodes without the GIL; sim renders in "
                          "processes), never more than decode tasks. [default: all cores, "
                          "fewer for < 1 core-second of work each]"),
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
        click.option("--prefix", default="", help="Shard name prefix. [default: dataset name]"),
        click.option("--timeout", type=POSITIVE_FLOAT, default=300.0, show_default=True,
                     help="Seconds allowed to decode (or render) one input before it counts "
                          "as failed."),
        click.option("--retries", type=COUNT, default=2, show_default=True,
                     help="Times dask retries a shard task that crashed."),
        click.option("--progress/--no-progress", default=True, show_default=True,
                     help="Progress bars on stderr."),
    ]


def _options(options: list):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def _common_options(every: int = 1, skip_start: int = 0, shard_samples: int | None = None,
                    src_help: str = "Dataset root. Default: $CWM_DATA/<dataset>.",
                    aspect: str = "center-crop"):
    """The options every file-decoding dataset subcommand shares; defaults differ per dataset."""
    return _options(_decode_options(every, skip_start, src_help, aspect)
                    + _output_options(shard_samples))


# FrameOptions fields a subcommand may set (the others keep their defaults: `sim` decodes nothing)
_FRAME_FIELDS = ("aspect", "every", "fps", "skip_start", "segment_frames", "min_frames",
                 "storage", "interpolation", "timeout")


def _run(dataset: str, source_options: dict, kw: dict) -> None:
    frames = FrameOptions(**{name: kw[name] for name in _FRAME_FIELDS if name in kw})
    cfg = IngestConfig(
        dataset=dataset, src=kw.get("src") or "", out=kw["out"], frames=frames,
        prefix=kw["prefix"], shard_samples=kw["shard_samples"], shard_bytes=kw["shard_bytes"],
        shard_seed=kw["shard_seed"], probe=kw.get("probe", "pyav"),
        source_options=source_options, workers=kw["workers"],
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


@cli.command("sim", short_help="Rendered simulator episodes (Meta-world experts, DMC).")
@click.option("--env", type=click.Choice(sim.ENVS), default="metaworld", show_default=True,
              help="Simulator family, rendered as cwm-rl renders it.")
@click.option("--tasks", default="all", show_default=True,
              help="Comma-separated task names ('drawer-open', '-v3' optional; DMC "
                   "'walker-walk', or a domain 'walker' for its tasks), or 'all': every "
                   "Meta-world task with a scripted policy, every DMC suite task.")
@click.option("--exclude", default="", metavar="TASKS",
              help="Comma-separated tasks left out of --tasks (e.g. the RL target tasks).")
@click.option("--episodes", type=POSITIVE_INT, default=10, show_default=True,
              help="Episodes per task.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Run seed; each episode's seed derives from it, the task and the index.")
@click.option("--noise", type=Number(float, low=0), default=sim.DEFAULT_NOISE,
              show_default=True,
              help="Std of the Gaussian noise added to each scripted action (actions in [-1, 1]).")
@click.option("--random-share", type=Number(float, low=0, high=1), default=None,
              help="Share of each task's episodes played by a uniformly random policy. "
                   "[default: 0.1 on metaworld; 1 on dmc, which has no scripted policies]")
@click.option("--max-steps", type=POSITIVE_INT, default=None,
              help="Agent steps per episode at most. [default: the whole episode, 500]")
@click.option("--render", type=click.Choice(RENDER_MODES), default="default", show_default=True,
              help="Render mode; use the --render of the cwm-rl runs that will see the model "
                   "(the modes differ in pixels).")
@click.option("--list-tasks", is_flag=True,
              help="Print the tasks --tasks all stands for (Meta-world: those with a scripted "
                   "policy), one per line, and exit.")
@_options(_output_options(shard_samples=None, out_required=False))
def sim_command(env, tasks, exclude, episodes, seed, noise, random_share, max_steps, render,
                list_tasks, **kw):
    """Render episodes of simulated tasks and shard them as videos (action-free pre-training).

    Meta-world episodes play its scripted expert policies (metaworld.policies, one per task)
    with Gaussian action noise, plus a share of random-policy episodes; DMC episodes are random.
    Frames are cwm-rl's observations: same camera, orientation, render mode, 64x64 and action
    repeat. meta.json records env, task, episode, seed, policy, noise, render and camera, and
    the episode's return and success. Example, pre-training videos that leave out the targets:

    \b
      cwm-ingest sim --tasks all --exclude reach,door-lock,drawer-open,button-press-topdown \\
        --episodes 20 --out shards/mw
    """
    if list_tasks:
        click.echo("\n".join(sim.resolve_tasks(env, "all", exclude)))
        return
    if not kw["out"]:
        raise click.UsageError("Missing option '--out'.")
    names = sim.resolve_tasks(env, tasks, exclude)
    options = {"env": env, "tasks": names, "episodes": episodes, "seed": seed, "noise": noise,
               "random_share": random_share, "max_steps": max_steps, "render": render}
    plan = sim.plan_episodes(**options)     # every mistake is reported before --out is made
    random = sum(e.policy == "random" for e in plan)
    click.echo(f"sim: {len(names)} {env} task(s) x {episodes} episode(s), {random} of the "
               f"{len(plan)} with a random policy: {', '.join(names)}")
    _run("sim", options, kw)


# Reading-side checks live with the shards stage; they are offered here so that one command
# covers producing a dataset and looking at it: `cwm-ingest inspect SPEC`, `cwm-ingest verify SPEC`.
cli.add_command(inspect_cmd)
cli.add_command(verify_cmd)


def main():
    # A one-shot command: the interpreter's teardown of dask & co. is skipped (0.15-0.2 s).
    exit_without_teardown(cli)


if __name__ == "__main__":
    main()

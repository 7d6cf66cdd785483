"""`cwm-train`: pre-train a world model on video shards; `cwm-train predict`: pictures on demand.

    cwm-train --shards 'shards/<0000..0999>.tar' [--out runs/contextwm-paper] [--preset paper]
              [--model contextwm] [--steps N] [--seed S] [--device auto] [--speed auto]
              [--set model.KEY=VALUE ...] ...
    cwm-train predict RUN --shards SPEC

Argument parsing only: the work is `cwm.model.train.train` / `predict`.
"""

from __future__ import annotations

import click

from cwm.cli.common import POSITIVE_FLOAT, POSITIVE_INT, SEED, Number, device_option, run_cli
from cwm.errors import UserError
from cwm.model.config import (MODEL_KINDS, PRESETS, SAMPLE_BY, SPEEDS, apply_model_settings,
                              make_config, max_loader_workers)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--shards", help="Shard spec: brace/angle ranges, globs, a directory, a list file, "
              "'::'-joined specs or NAME=SPEC:WEIGHT mixtures.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/<model>-<preset>); rerunning resumes it.")
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True)
@click.option("--model", "kind", type=click.Choice(MODEL_KINDS), default="contextwm",
              show_default=True)
@click.option("--steps", type=POSITIVE_INT, default=None, help="Total gradient steps (preset default).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@device_option()
@click.option("--speed", type=click.Choice(SPEEDS), default="auto", show_default=True,
              help="compiled: channels-last + torch.compile (compiled code cached in "
                   "~/.cache/cwm, so minutes once per machine); eager: channels-last, no "
                   "compilation; reference: the plain eager model the others are checked "
                   "against; auto: compiled for the paper preset on CUDA, else eager (on the CPU, "
                   "under tcmalloc, compiling gained nothing).")
@click.option("--batch-size", type=POSITIVE_INT, default=None, help="Clips per step over all processes.")
@click.option("--seq-len", type=Number(int, low=2), default=None, help="Frames per clip.")
@click.option("--lr", type=POSITIVE_FLOAT, default=None, help="Adam learning rate.")
@click.option("--ckpt-every", type=POSITIVE_INT, default=None, help="Steps between checkpoints.")
@click.option("--picture-every", type=POSITIVE_INT, default=None, help="Steps between pictures.")
@click.option("--log-every", type=POSITIVE_INT, default=None, help="Steps between metric lines.")
@click.option("--workers", type=Number(int, low=0, high=max_loader_workers()), default=None,
              help="Data-loader worker processes (at most 4 per core).")
@click.option("--sample-by", type=click.Choice(SAMPLE_BY), default="video", show_default=True,
              help="video: each clip from a uniformly random video, then a uniform window (as "
                   "upstream); segment: every window of the data equally likely.")
@click.option("--set", "settings", multiple=True, metavar="model.KEY=VALUE",
              help="Override one of the preset's model settings, named as the config printed at "
                   "the start names them (e.g. --set model.cnn_depth=8 --set model.deter=200); "
                   "repeatable. The checkpoints record them: cwm-rl --pretrained builds the same "
                   "shape, and resuming a run needs the same settings.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def cli(ctx, shards, out, preset, kind, steps, seed, device, speed, batch_size, seq_len, lr,
        ckpt_every, picture_every, log_every, workers, sample_by, settings, no_progress):
    """Pre-train a ContextWM (or a baseline) world model on video shards."""
    if ctx.invoked_subcommand is not None:
        return
    if not shards:
        raise UserError("--shards is required (a shard spec such as 'shards/<0000..0099>.tar')")
    from cwm.model.train import train

    cfg = make_config(preset, kind, seed, steps=steps, batch_size=batch_size, seq_len=seq_len,
                      lr=lr, ckpt_every=ckpt_every, picture_every=picture_every,
                      log_every=log_every, num_workers=workers, sample_by=sample_by)
    cfg = apply_model_settings(cfg, settings)
    train(cfg, shards, out or f"runs/{kind}-{preset}", device=device, speed=speed,
          progress=not no_progress, echo=click.echo)


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--shards", required=True, help="Shard spec of held-out clips to score and picture.")
@click.option("--clips", "n_clips", type=POSITIVE_INT, default=4, show_default=True,
              help="Clips in the pictures.")
@click.option("--eval-clips", type=POSITIVE_INT, default=64, show_default=True,
              help="Clips scored (per-frame MSE, PSNR, SSIM).")
@click.option("--mode", "use_mode", is_flag=True,
              help="Decode the latents' mode instead of sampling them (upstream samples).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where the scores and pictures go (default RUN/pictures).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Selects the clip windows, context frames and latent samples.")
@device_option()
def predict(run, shards, n_clips, eval_clips, use_mode, out, seed, device):
    """Open-loop scores and pictures from RUN's newest checkpoint (context from observed frames)."""
    from cwm.model.predict import predict as run_predict

    for path in run_predict(run, shards, device=device, n_clips=n_clips, eval_clips=eval_clips,
                            out_dir=out, seed=seed, sample=not use_mode):
        click.echo(str(path))


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv, allocator=True)


if __name__ == "__main__":
    main()

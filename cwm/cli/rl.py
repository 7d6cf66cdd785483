"""`cwm-rl`: fine-tune a (pre-trained) world model with Dreamer-style RL on a pixel control task.

    cwm-rl --env metaworld|dmc|dmcr [--task NAME] --out RUN_DIR [--preset metaworld|dmc|small|cpu|tiny]
           [--steps N] [--pretrained CKPT] [--seed S] [--agent contextwm|plain|dreamerv2]
           [--render fast|default] [--envs N] [--device auto] [--replay-from MINARI_ID]
           [--set SECTION.KEY=VALUE ...]
    cwm-rl report RUN... [--out DIR] [--baselines N] [--train-metric NAME ...] [--window A:B]
    cwm-rl export-minari RUN [--id NAMESPACE/NAME-v0] [--datasets-path DIR]

Argument parsing only: the work is `cwm.rl.loop.train`, `cwm.rl.report.write_report` and
`cwm.rl.minari_io.export_minari`.
"""

from __future__ import annotations

from pathlib import Path

import click

from cwm.atomic import read_json
from cwm.cli.common import COUNT, POSITIVE_INT, SEED, Number, device_option, run_cli
from cwm.errors import UserError
from cwm.rl.config import AGENTS, DEFAULT_TASKS, PRESETS


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--env", default=None,
              help="Env family: metaworld, dmc, or dmcr (DMC with Remastered-style looks).")
@click.option("--task", default=None, help="Task name, e.g. drawer-open or walker-walk "
              "(default: metaworld reach, dmc/dmcr cartpole-balance).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/rl-<env>-<task>-<agent>-s<seed>); rerunning resumes.")
@click.option("--preset", type=click.Choice(PRESETS), default=None,
              help="Settings preset (default: the paper protocol of the env family). small: "
                   "CPU-sized model and budget; cpu: small plus the actor bound that helped on "
                   "two cores (experiments/cpu_preset); tiny: for tests.")
@click.option("--steps", type=POSITIVE_INT, default=None,
              help="Agent steps to run (preset default); frames = steps x action repeat (2 on DMC).")
@click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
              help="A cwm-train checkpoint: encoder, context encoder, decoder and z-RSSM start from it.")
@click.option("--model-like", type=click.Path(dir_okay=False), default=None,
              help="A cwm-train checkpoint whose world-model sizes this run takes, with fresh "
              "weights: the from-scratch arm beside a --pretrained one (not with --pretrained).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--agent", type=click.Choice(AGENTS), default="contextwm", show_default=True)
@click.option("--render", type=click.Choice(["default", "fast"]), default="default",
              show_default=True, help="fast: no shadows, reflections or MSAA (~10x faster on CPU).")
@click.option("--envs", type=Number(int, low=1, high=256), default=1, show_default=True,
              help="Parallel training envs, one process each.")
@click.option("--action-repeat", type=Number(int, low=1, high=1000), default=None,
              help="Env frames per agent step (default: the family's protocol, DMC 2, "
                   "Meta-world 1). Step counts stay in agent steps.")
@device_option()
@click.option("--replay-from", default=None,
              help="Seed the replay with a local Minari dataset (id as namespace/name-v0).")
@click.option("--prefill", type=COUNT, default=None, help="Agent steps of random actions first.")
@click.option("--eval-every", type=POSITIVE_INT, default=None, help="Agent steps between evaluations.")
@click.option("--eval-episodes", type=POSITIVE_INT, default=None, help="Episodes per evaluation.")
@click.option("--ckpt-every", type=POSITIVE_INT, default=None, help="Agent steps between checkpoints.")
@click.option("--log-every", type=POSITIVE_INT, default=None, help="Agent steps between metric rows.")
@click.option("--set", "settings", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Replace one setting of the run's config, named as the run prints it "
              "(sections learn, behavior, loop), e.g. --set behavior.actor_raw_bound=2; repeatable.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def cli(ctx, env, task, out, preset, steps, pretrained, model_like, seed, agent, render, envs,
        action_repeat, device, replay_from, prefill, eval_every, eval_episodes, ckpt_every, log_every, settings,
        no_progress):
    """Fine-tune a world model with Dreamer-style RL on a pixel control task."""
    if ctx.invoked_subcommand is not None:
        return
    if env is None:
        raise UserError("--env is required (metaworld, dmc or dmcr)")
    from cwm.rl.agent import pretrained_model_config
    from cwm.rl.config import apply_settings, make_rl_config
    from cwm.rl.envs.registry import FAMILIES, canonical_task
    from cwm.rl.loop import train

    if env not in FAMILIES:
        raise UserError(f"unknown env family {env!r}; valid: {', '.join(FAMILIES)}")
    task = canonical_task(env, task or DEFAULT_TASKS[env])
    if pretrained and model_like:
        raise UserError("--model-like gives a fresh model the sizes of a checkpoint; with "
                        "--pretrained the sizes are that checkpoint's already: pass one of them")
    model, shape_from = None, pretrained or model_like
    if shape_from:
        model = pretrained_model_config(shape_from)
        if model.kind != agent:
            raise UserError(f"{shape_from} holds a {model.kind} world model, not {agent}: pass "
                            f"--agent {model.kind} or another checkpoint")
    cfg = make_rl_config(env, task, preset, agent, seed, render, envs, model=model,
                         pretrained=pretrained, action_repeat=action_repeat,
                         steps=steps, prefill=prefill,
                         eval_every=eval_every, eval_episodes=eval_episodes,
                         ckpt_every=ckpt_every, log_every=log_every)
    cfg = apply_settings(cfg, settings)
    train(cfg, out or f"runs/rl-{env}-{task}-{agent}-s{seed}", device=device,
          progress=not no_progress, replay_from=replay_from, echo=click.echo)


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Where report.csv, report.md and curves.png go.")
@click.option("--baselines", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run the random and zero-action policies this many episodes on each "
                   "task and show their scores (the floor a curve is read against).")
@click.option("--train-metric", "train_metrics", multiple=True, metavar="NAME",
              help="Also aggregate this key of metrics.jsonl (repeatable): a training metric "
                   "such as model_loss, to see a pre-trained world model's head start, or "
                   "eval_return beside Meta-world's success rate. Writes train-NAME.csv/.png "
                   "and a table in report.md.")
@click.option("--window", metavar="START:END",
              help="Also compare the arms over these frames: each seed's mean over the "
                   "evaluations inside the window (the same steps for every run of a task), "
                   "IQM and 95% interval per arm, and every pair of arms' difference of means "
                   "with its interval and exact permutation p-value; for the evaluation metric "
                   "and each --train-metric.")
def report(runs, out, baselines, train_metrics, window):
    """Aggregate the evaluation curves of RUNS over seeds (mean, IQM, bootstrap intervals)."""
    from cwm.rl.report import write_report
    from cwm.rl.window import parse_window

    span = parse_window(window) if window is not None else None
    for path in write_report(list(runs), out, baseline_episodes=baselines,
                             train_metrics=tuple(train_metrics), window=span).values():
        click.echo(str(path))


@cli.command("export-minari")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--id", "dataset_id", default=None,
              help="Dataset id (default cwm/<env>-<task>-v0).")
@click.option("--datasets-path", type=click.Path(file_okay=False), default=None,
              help="Where Minari datasets live (default MINARI_DATASETS_PATH or ~/.minari/datasets).")
def export_minari(run, dataset_id, datasets_path):
    """Write RUN's replay (complete episodes) as a Minari dataset."""
    from cwm.rl.envs.registry import EnvConfig
    from cwm.rl.minari_io import export_minari as export

    cfg_file = Path(run) / "config.json"
    if not cfg_file.is_file():
        raise UserError(f"{run} is not a cwm-rl run directory (no config.json)")
    cfg = read_json(cfg_file)
    if cfg is None:
        raise UserError(f"{cfg_file} is damaged (not a JSON object)")
    dataset_id = dataset_id or f"cwm/{cfg['env']}-{cfg['task']}-v0"
    env = EnvConfig(cfg["env"], cfg["task"], seed=int(cfg.get("seed", 0)),
                    render=cfg.get("render", "default"), action_repeat=cfg.get("action_repeat"))
    got = export(Path(run) / "replay", dataset_id, env=env, datasets_path=datasets_path)
    click.echo(f"exported {got['episodes']} episode(s), {got['steps']} steps as {dataset_id}")


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv, allocator=True)


if __name__ == "__main__":
    main()

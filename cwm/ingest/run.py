"""The ingest stage end to end: resolve inputs, plan shards, run them, index and summarise.

    cfg = IngestConfig(dataset="folder", src="videos/", out="shards/")
    summary = ingest(cfg)          # shards/folder-000000.tar, ..., shards/_index.json

Rerunning with the same `out` resumes: shards whose stats file exists are skipped. A rerun whose
settings or input set differ would mix two datasets in one directory, so it is refused unless
`overwrite` is set (which deletes this prefix's shards first).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Callable

import cwm
from cwm.atomic import remove_stale_tmp, write_json
from cwm.errors import UserError
from cwm.ingest.config import IngestConfig
from cwm.ingest.distribute import run_shards
from cwm.ingest.plan import Plan, make_plan
from cwm.ingest.progress import Progress
from cwm.ingest.report import INDEX_NAME, Summary, read_stats, write_index
from cwm.ingest.sources import ADAPTERS, synthetic
from cwm.ingest.sources.base import resolve_src
from cwm.ingest.writer import ERRORS_SUFFIX, STATS_SUFFIX, TAR_SUFFIX, is_done
from cwm.locks import locked_dir

CONFIG_NAME = "config.json"


def prepare_out(out: str | Path) -> Path:
    """Create `out` and prove it is writable (a UserError otherwise, also when running as root)."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".cwm-write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out} is not a writable directory: {e.strerror or e}") from None
    return out.resolve()


def source_root(cfg: IngestConfig, out: Path) -> Path:
    """The dataset root; for `synthetic`, generates (or reuses) the videos first."""
    if cfg.dataset == "synthetic":
        root = Path(cfg.src).expanduser() if cfg.src else out / synthetic.CACHE_DIR
        synthetic.generate(root, **cfg.source_options)
        return root.resolve()
    return resolve_src(cfg.dataset, cfg.src)


def list_inputs(cfg: IngestConfig, root: Path):
    items = ADAPTERS[cfg.dataset](root, **cfg.source_options)
    if not items:
        raise UserError(f"no {cfg.dataset} inputs found under {root} "
                        f"({_what_we_look_for(cfg.dataset)})")
    return items


def _what_we_look_for(dataset: str) -> str:
    return {
        "ssv2": "looked for 20bn-something-something-v2/*.webm or *.webm",
        "human36m": "looked for S*/Videos/<Action>.<camera>.mp4",
        "ytb-driving": "looked for <dir>/<number>.jpg frame folders",
    }.get(dataset, "looked for *.mp4, *.webm, *.mkv, *.avi, *.mov in the whole tree")


def _read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it does not parse (damaged) or is not an object."""
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def _check_resume(out: Path, cfg: IngestConfig, fingerprint: str, plan: Plan) -> None:
    path = out / CONFIG_NAME
    if not path.is_file() or cfg.overwrite:
        return
    saved = _read_json(path)
    if saved is None:
        # Damaged after the fact (it is written atomically). The index, written at the end of a
        # run, records the same fingerprint: when it matches, the finished shards are this run's.
        index = _read_json(out / INDEX_NAME) or {}
        done = sum(is_done(out, s.name) for s in plan.shards)
        if index.get("fingerprint") == fingerprint or done == 0:
            return                      # config.json is rewritten from this run's settings
        raise UserError(f"{path} is damaged and no {INDEX_NAME} confirms the settings of the "
                        f"{done} finished shard(s): restore it from a backup to resume, or pass "
                        f"--overwrite to redo them")
    if saved.get("stage") != "ingest":
        raise UserError(f"{path} exists and is not from cwm-ingest; choose another --out")
    if saved.get("fingerprint") != fingerprint:
        raise UserError(f"--out {out} holds an ingest with other settings or inputs; "
                        f"pass --overwrite to redo it, or choose another --out")


def _remove_shards(out: Path, prefix: str) -> None:
    # Stats first: a kill midway then leaves shards that count as not done, never stale "done".
    for suffix in (STATS_SUFFIX, TAR_SUFFIX, ERRORS_SUFFIX):
        for path in out.glob(f"{prefix}-*{suffix}"):
            path.unlink()
    (out / INDEX_NAME).unlink(missing_ok=True)


def ingest(cfg: IngestConfig, log: Callable[[str], None] = print) -> Summary:
    """Run the ingest described by `cfg`; returns the summary (also printed through `log`).

    The run owns `out` while it runs (`cwm.locks`): a second ingest into it fails at once.
    """
    out = prepare_out(cfg.out)
    with locked_dir(out, "cwm-ingest"):
        return _ingest(cfg, out, log)


def _ingest(cfg: IngestConfig, out: Path, log: Callable[[str], None]) -> Summary:
    root = source_root(cfg, out)
    cfg = dataclasses.replace(cfg, src=str(root), out=str(out))
    plan: Plan = make_plan(list_inputs(cfg, root), str(root), cfg.shard_prefix, cfg.shard_size)
    fingerprint = cfg.fingerprint(plan.digest())
    _check_resume(out, cfg, fingerprint, plan)
    if cfg.overwrite:
        _remove_shards(out, cfg.shard_prefix)
    remove_stale_tmp(out)
    write_json(out / CONFIG_NAME, {"stage": "ingest", "cwm_version": cwm.__version__,
                                   "fingerprint": fingerprint, "config": cfg.to_dict()})
    log(f"cwm-ingest {cfg.dataset}: {plan.n_videos} videos from {root} -> "
        f"{len(plan.shards)} shards in {out}")
    log("config: " + json.dumps(cfg.to_dict(), sort_keys=True))
    for r in plan.renamed:
        log(f"duplicate id {r['raw_id']!r}: {r['source']} stored as {r['id']}")

    todo = [s for s in plan.shards if not is_done(out, s.name)]
    resumed = len(plan.shards) - len(todo)
    if resumed:
        log(f"resuming: {resumed} shards already done, {len(todo)} to write")
    progress = Progress(len(todo), sum(len(s.videos) for s in todo), enabled=cfg.progress)
    started = time.perf_counter()
    try:
        outcome = run_shards(todo, cfg.frames, out, cfg.dataset, scheduler=cfg.scheduler,
                             workers=cfg.workers, retries=cfg.retries, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        done = sum(is_done(out, s.name) for s in plan.shards)
        log(f"interrupted: {done}/{len(plan.shards)} shards done; rerun the same command to "
            f"resume")
        raise
    finally:
        progress.close()
    seconds = time.perf_counter() - started

    stats = read_stats(out, plan)
    index = write_index(out, plan, stats, {
        "dataset": cfg.dataset, "prefix": cfg.shard_prefix, "size": cfg.frames.size,
        "storage": cfg.frames.storage, "fingerprint": fingerprint})
    summary = Summary(
        shards_done=len(stats), shards_total=len(plan.shards), shards_resumed=resumed,
        shards_failed=outcome.failed, totals=index["totals"],
        run_frames=sum(s["frames"] for s in outcome.stats),
        run_decoded=sum(s["decoded_frames"] for s in outcome.stats),
        seconds=seconds, workers=outcome.workers)
    log(summary.text())
    return summary

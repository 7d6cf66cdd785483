"""The ingest stage end to end: resolve inputs, probe and plan, decode parts, deal segments
into shards, index and summarise.

    cfg = IngestConfig(dataset="folder", src="videos/", out="shards/")
    summary = ingest(cfg)          # shards/folder-000000.tar, ..., shards/_index.json

Two phases over one dask cluster: decode tasks (planned by estimated work, long inputs split into
ranges) write parts into `<out>/_parts-<prefix>/`; once every part is done, the segments are dealt
to shards in a seeded random order (`cwm.ingest.layout`) and shard tasks copy them into place;
the parts are deleted when the dataset is complete. Rerunning with the same `out` resumes: parts
and shards already written are skipped. A rerun whose settings or input set differ would mix two
datasets in one directory, so it is refused unless `overwrite` is set (which deletes this
prefix's shards and parts first).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

import cwm
from cwm.atomic import read_json, remove_stale_tmp, write_json
from cwm.errors import UserError
from cwm.ingest.assemble import ERRORS_SUFFIX, STATS_SUFFIX, TAR_SUFFIX, is_done, write_shard
from cwm.ingest.config import IngestConfig
from cwm.ingest.distribute import Executor
from cwm.ingest.layout import collect, layout
from cwm.ingest.plan import assign_ids, core_seconds, inputs_digest, make_plan
from cwm.ingest.probe import Probe, probe_batch
from cwm.ingest.progress import Progress
from cwm.ingest.report import INDEX_NAME, Summary, read_stats, write_index
from cwm.ingest.sources import ADAPTERS, synthetic
from cwm.ingest.sources.base import resolve_src
from cwm.ingest.writer import part_done, write_part
from cwm.locks import locked_dir

PROBE_BATCH = 256            # inputs per probe task; lists longer than one batch probe on dask
# Estimated single-core seconds of work per embedded worker, at least: below that a second
# worker saves less than what it costs, its start as a process (`sim`, ~1 CPU-s) or the
# keyframe pre-roll of the ranges it would need when inputs must be split to keep it busy.
MIN_WORKER_SECONDS = 1.0

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
    """The dataset root; for `synthetic`, generates (or reuses) the videos first; `sim` reads
    nothing (its episodes are rendered), its root is `out`."""
    if cfg.dataset == "sim":
        return out
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


def _check_resume(out: Path, cfg: IngestConfig, fingerprint: str) -> None:
    path = out / CONFIG_NAME
    if not path.is_file() or cfg.overwrite:
        return
    saved = read_json(path)
    if saved is None:
        # Damaged after the fact (it is written atomically). The index, written at the end of a
        # run, records the same fingerprint: when it matches, the finished shards are this run's.
        index = read_json(out / INDEX_NAME) or {}
        done = sum(is_done(out, p.name.removesuffix(STATS_SUFFIX))
                   for p in out.glob(f"{cfg.shard_prefix}-*{STATS_SUFFIX}"))
        parts = parts_dir_for(out, cfg.shard_prefix)
        done += len(list(parts.glob("*.json"))) if parts.is_dir() else 0
        if index.get("fingerprint") == fingerprint or done == 0:
            return                      # config.json is rewritten from this run's settings
        raise UserError(f"{path} is damaged and no {INDEX_NAME} confirms the settings of the "
                        f"{done} finished shard(s) or part(s): restore it from a backup to "
                        f"resume, or pass --overwrite to redo them")
    if saved.get("stage") != "ingest":
        raise UserError(f"{path} exists and is not from cwm-ingest; choose another --out")
    if saved.get("fingerprint") != fingerprint:
        raise UserError(f"--out {out} holds an ingest with other settings or inputs; "
                        f"pass --overwrite to redo it, or choose another --out")


def parts_dir_for(out: Path, prefix: str) -> Path:
    return out / f"_parts-{prefix}"


def _remove_shards(out: Path, prefix: str) -> None:
    # Stats first: a kill midway then leaves shards that count as not done, never stale "done".
    for suffix in (STATS_SUFFIX, TAR_SUFFIX, ERRORS_SUFFIX):
        for path in out.glob(f"{prefix}-*{suffix}"):
            path.unlink()
    (out / INDEX_NAME).unlink(missing_ok=True)
    shutil.rmtree(parts_dir_for(out, prefix), ignore_errors=True)


def _probe_task(numbered: tuple[int, list], root: str, timeout: float, backend: str,
                emit) -> tuple[int, list[dict]]:
    return numbered[0], probe_batch(root, numbered[1], timeout, backend)


def _decode_task(task, opts, parts_dir: str, dataset: str, emit) -> dict:
    return write_part(task, opts, parts_dir, dataset, on_unit=emit)


def _shard_task(spec, parts_dir: str, out_dir: str, emit) -> dict:
    return write_shard(spec, parts_dir, out_dir)


def _probe(cfg: IngestConfig, root: Path, items: list, ex: Executor) -> dict[str, Probe]:
    """key_id -> Probe. In this process for one batch; on the workers for more."""
    planned = assign_ids(items)[0]
    batches = [planned[i:i + PROBE_BATCH] for i in range(0, len(planned), PROBE_BATCH)]
    timeout = cfg.frames.timeout
    if len(batches) == 1:
        rows = [probe_batch(str(root), [v.item for v in batches[0]], timeout, cfg.probe)]
    else:
        ex.start()
        outcome = ex.map(_probe_task, [(i, [v.item for v in b]) for i, b in enumerate(batches)],
                         [f"probe-{i:06d}" for i in range(len(batches))], cfg.retries,
                         root=str(root), timeout=timeout, backend=cfg.probe)
        if outcome.failed:
            raise RuntimeError(f"probe task failed: {outcome.failed[0][1]}")
        rows = [r for _, r in sorted(outcome.results, key=lambda r: r[0])]
    probes = {}
    for batch, rows_of_batch in zip(batches, rows):
        for video, row in zip(batch, rows_of_batch):
            probes[video.key_id] = Probe(**row)
    return probes


def ingest(cfg: IngestConfig, log: Callable[[str], None] = print) -> Summary:
    """Run the ingest described by `cfg`; returns the summary (also printed through `log`).

    The run owns `out` while it runs (`cwm.locks`): a second ingest into it fails at once.
    """
    out = prepare_out(cfg.out)
    with locked_dir(out, "cwm-ingest"):
        root = source_root(cfg, out)
        cfg = dataclasses.replace(cfg, src=str(root), out=str(out))
        items = list_inputs(cfg, root)
        # Simulator episodes render in worker processes (`cwm.ingest.distribute`).
        with Executor(cfg.scheduler, cfg.workers,
                      processes=any(it.episode is not None for it in items)) as ex:
            return _ingest(cfg, out, root, items, ex, log)


def _ingest(cfg, out, root, items, ex: Executor, log) -> Summary:
    started = time.perf_counter()
    # The fingerprint needs only the inputs: a refused or finished rerun starts no cluster.
    fingerprint = cfg.fingerprint(inputs_digest(assign_ids(items)[0]))
    _check_resume(out, cfg, fingerprint)
    if cfg.overwrite:
        _remove_shards(out, cfg.shard_prefix)
    parts_dir = parts_dir_for(out, cfg.shard_prefix)
    parts_dir.mkdir(exist_ok=True)
    remove_stale_tmp(out)
    remove_stale_tmp(parts_dir)
    write_json(out / CONFIG_NAME, {"stage": "ingest", "cwm_version": cwm.__version__,
                                   "fingerprint": fingerprint, "config": cfg.to_dict()})
    previous = read_json(out / INDEX_NAME) or {}
    if previous.get("complete") and previous.get("fingerprint") == fingerprint \
            and all(is_done(out, s["name"].removesuffix(TAR_SUFFIX)) for s in previous["shards"]):
        shutil.rmtree(parts_dir, ignore_errors=True)
        n = len(previous["shards"])
        log(f"cwm-ingest {cfg.dataset}: resuming: all {n} shards already done in {out}")
        return _summary(previous, [], [], n, n, n, time.perf_counter() - started, ex, log)

    probes = _probe(cfg, root, items, ex)
    if ex.started:
        plan = make_plan(items, probes, str(root), cfg.frames, ex.slots)
    else:
        # The embedded cluster is sized to the plan: no more workers than decode tasks, and by
        # default (all cores) none for less than MIN_WORKER_SECONDS of estimated work.
        slots = ex.slots
        if not cfg.workers:
            slots = min(slots, max(1, int(core_seconds(items, probes, cfg.frames)
                                          / MIN_WORKER_SECONDS)))
        plan = make_plan(items, probes, str(root), cfg.frames, slots)
        ex.start(cap=max(1, min(slots, len(plan.tasks))))
    inputs = (f"{plan.n_videos} episodes to render" if cfg.dataset == "sim"
              else f"{plan.n_videos} videos from {root}")
    log(f"cwm-ingest {cfg.dataset}: {inputs} -> {len(plan.tasks)} "
        f"decode tasks ({plan.n_units} units) on {ex.workers} worker(s), shards in {out}")
    log("config: " + json.dumps(cfg.to_dict(), sort_keys=True))
    for r in plan.renamed:
        log(f"duplicate id {r['raw_id']!r}: {r['source']} stored as {r['id']}")

    todo = [t for t in plan.tasks if not part_done(parts_dir, t.name)]
    if len(todo) < len(plan.tasks):
        log(f"resuming: {len(plan.tasks) - len(todo)} decode tasks already done, {len(todo)} to run")
    progress = Progress(len(todo), sum(len(t.units) for t in todo), enabled=cfg.progress)
    try:
        decoded = ex.map(_decode_task, todo, [t.name for t in todo], cfg.retries,
                         on_event=progress.video, on_done=progress.shard, opts=cfg.frames,
                         parts_dir=str(parts_dir), dataset=cfg.dataset)
    except KeyboardInterrupt:
        progress.close()
        done = sum(part_done(parts_dir, t.name) for t in plan.tasks)
        log(f"interrupted: {done}/{len(plan.tasks)} decode tasks done; rerun the same command "
            f"to resume")
        raise
    finally:
        progress.close()
    info = {"dataset": cfg.dataset, "prefix": cfg.shard_prefix, "size": cfg.frames.size,
            "storage": cfg.frames.storage, "fingerprint": fingerprint}
    if decoded.failed:
        # The layout needs every part: no shard is written until the next run redoes these.
        index = write_index(out, plan, [], {}, info)
        failed = [(f"decode task {name}", reason) for name, reason in decoded.failed]
        return _summary(index, decoded.results, failed, 0, 0, 0,
                        time.perf_counter() - started, ex, log)

    shards = layout(collect(plan, parts_dir, cfg.frames.min_frames), cfg.shard_prefix,
                    cfg.shard_samples, cfg.shard_bytes, cfg.shard_seed)
    pending = [s for s in shards if not is_done(out, s.name)]
    try:
        written = ex.map(_shard_task, pending, [s.name for s in pending], cfg.retries,
                         parts_dir=str(parts_dir), out_dir=str(out))
    except KeyboardInterrupt:
        done = sum(is_done(out, s.name) for s in shards)
        log(f"interrupted: {done}/{len(shards)} shards done; rerun the same command to resume")
        raise
    stats = read_stats(out, shards)
    index = write_index(out, plan, shards, stats, info)
    if index["complete"]:
        shutil.rmtree(parts_dir, ignore_errors=True)
    failed = [(f"shard {name}", reason) for name, reason in written.failed]
    return _summary(index, decoded.results, failed, len(shards),
                    len(shards) - len(pending), len(stats), time.perf_counter() - started, ex,
                    log)


def _summary(index, parts, failed, total, resumed, done, seconds, ex, log) -> Summary:
    summary = Summary(
        shards_done=done, shards_total=total, shards_resumed=resumed, shards_failed=failed,
        totals=index["totals"], run_frames=sum(p["frames"] for p in parts),
        run_decoded=sum(p["decoded"] for p in parts), seconds=seconds, workers=ex.workers,
        seek_fallbacks=index["totals"].get("seek_fallbacks", 0))
    log(summary.text())
    return summary


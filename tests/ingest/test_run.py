"""The whole stage in-process: bad inputs recorded, shards readable, resume, overwrite, errors."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest

from cwm.cli.ingest import cli
from cwm.cli.common import run_cli
from cwm.errors import UserError
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.run import ingest
from cwm.shards.format import decode_frames, decode_meta

BROKEN = ("zero", "truncated", "text", "audio", "tiny", "fifo", "directory", "dangling")
GOOD = ("good", "portrait", "tenbit", "vfr", "rotated", "landscape")


@pytest.fixture()
def mixed_src(tmp_path, media):
    """A folder with every good, broken and too-short input, plus two colliding ids."""
    src = tmp_path / "src"
    src.mkdir()
    for name in GOOD + BROKEN + ("short",):
        path = media[name]
        target = src / f"{name}{path.suffix}"
        if name == "fifo":
            import os
            os.mkfifo(target)
        elif name == "directory":
            target.mkdir()
        elif name == "dangling":
            target.symlink_to(src / "gone.mp4")
        else:
            shutil.copy(path, target)
    shutil.copy(media["good"], src / "good.webm")     # same id "good" as good.mp4
    shutil.copy(media["good"], src / "go od.mp4")      # sanitizes to "go_od"
    return src


def config(src, out, **kw) -> IngestConfig:
    frames = FrameOptions(segment_frames=kw.pop("segment_frames", 12),
                          min_frames=kw.pop("min_frames", 12), storage=kw.pop("storage", "npy"))
    return IngestConfig(dataset="folder", src=str(src), out=str(out), frames=frames,
                        shard_samples=kw.pop("shard_samples", 4), scheduler="inline",
                        progress=False, **kw)


def read_all(out):
    """key -> {field: bytes} over every shard (tarfile, so empty shards are fine)."""
    samples = {}
    for path in sorted(out.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                key, field = member.name.split(".", 1)
                samples.setdefault(key, {"__key__": key})[field] = tar.extractfile(member).read()
    return samples


def test_bad_inputs_recorded_rest_ingested(tmp_path, mixed_src):
    out = tmp_path / "out"
    summary = ingest(config(mixed_src, out), log=lambda _: None)
    assert summary.ok
    errors = [json.loads(line) for f in sorted(out.glob("*.errors.jsonl"))
              for line in f.read_text().splitlines()]
    by_source = {e["source"]: e for e in errors}
    for name in BROKEN:
        entry = next(e for src, e in by_source.items() if src.startswith(name))
        assert entry["status"] == "failed" and entry["error"], entry
    assert by_source["short.mp4"]["status"] == "skipped"
    assert "too short" in by_source["short.mp4"]["error"]
    totals = summary.totals
    assert (totals["ok"], totals["failed"], totals["skipped"]) == (len(GOOD) + 2, len(BROKEN), 1)

    samples = read_all(out)
    assert all(set(k) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
               for k in samples)
    video_ids = {decode_meta(s)["video_id"] for s in samples.values()}
    assert {"good", "good-2", "go_od", "portrait", "rotated", "tenbit", "vfr"} <= video_ids
    for s in samples.values():
        frames = decode_frames(s)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
        assert len(frames) == decode_meta(s)["num_frames"] >= 12
    meta = decode_meta(samples["good_0000"])
    assert meta["source"] == "good.mp4" and meta["source_resolution"] == [160, 120]
    assert meta["crop"] == "center-crop" and meta["first_frame"] == 0

    index = json.loads((out / "_index.json").read_text())
    assert index["complete"] and sum(s["samples"] for s in index["shards"]) == len(samples)
    assert {r["source"] for r in index["renamed_ids"]} == {"good.webm"}
    assert json.loads((out / "config.json").read_text())["config"]["frames"]["min_frames"] == 12


def test_resume_skips_done_shards_and_refuses_other_settings(tmp_path, media):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        shutil.copy(media["good"], src / f"v{i}.mp4")
    out = tmp_path / "out"
    ingest(config(src, out, shard_samples=2), log=lambda _: None)
    first = out / "folder-000000.tar"
    mtime = first.stat().st_mtime_ns
    content = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    (out / "folder-000002.stats.json").unlink()           # as if killed before it finished
    summary = ingest(config(src, out, shard_samples=2), log=lambda _: None)
    assert summary.shards_resumed == 2 and first.stat().st_mtime_ns == mtime
    assert summary.totals["samples"] == 3 * 2
    assert {p.name: p.read_bytes() for p in out.glob("*.tar")} == content   # same bytes
    assert not list(out.glob("_parts-*"))                 # parts removed once complete

    with pytest.raises(UserError, match="--overwrite"):
        ingest(config(src, out, shard_samples=3), log=lambda _: None)
    summary = ingest(config(src, out, shard_samples=3, overwrite=True), log=lambda _: None)
    assert summary.shards_resumed == 0
    assert sorted(p.name for p in out.glob("*.tar")) == ["folder-000000.tar", "folder-000001.tar"]


def test_mp4_storage_decodes_to_the_same_shape(tmp_path, media):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(media["good"], src / "a.mp4")
    out = tmp_path / "out"
    ingest(config(src, out, storage="mp4"), log=lambda _: None)
    (sample,) = [s for k, s in read_all(out).items() if k == "a_0000"]
    assert "frames.mp4" in sample and decode_frames(sample).shape == (12, 64, 64, 3)


def cli_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cli, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_user_mistakes_give_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CWM_DATA", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = cli_error(capsys, ["folder", "--src", str(tmp_path), "--out", str(blocker / "out")])
    assert err.startswith("error: --out") and "not a writable directory" in err
    assert len(err.splitlines()) == 1
    err = cli_error(capsys, ["ssv2", "--out", str(tmp_path / "o")])
    assert err.startswith("error: no --src given") and len(err.splitlines()) == 1
    err = cli_error(capsys, ["folder", "--src", str(tmp_path / "missing"), "--out",
                             str(tmp_path / "o")])
    assert "does not exist" in err
    (tmp_path / "empty").mkdir()
    err = cli_error(capsys, ["human36m", "--src", str(tmp_path / "empty"), "--out",
                             str(tmp_path / "o")])
    assert "no human36m inputs found" in err
    err = cli_error(capsys, ["folder", "--src", str(tmp_path), "--out", str(tmp_path / "o"),
                             "--min-frames", "80"])
    assert "--min-frames" in err
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cli, ["no-such-dataset"])
    assert exit_info.value.code == 2


def test_shards_mix_sources_and_do_not_depend_on_the_task_cut(tmp_path, monkeypatch):
    """A long input split into ranges gives the same shards, byte for byte, as decoded whole."""
    from tests.ingest.conftest import encode, moving

    src = tmp_path / "src"
    src.mkdir()
    encode(src / "long.mp4", np.concatenate([moving(150, seed=k) for k in range(2)]))
    for i in range(4):
        encode(src / f"short{i}.mp4", moving(24, seed=10 + i))
    outputs = {}
    for longest in (600, 4):            # 600 segments: nothing split; 4: the long input in ranges
        monkeypatch.setattr("cwm.ingest.plan.MAX_UNIT_SEGMENTS", longest)
        out = tmp_path / f"out{longest}"
        lines = []
        summary = ingest(config(src, out, shard_samples=5), log=lines.append)
        assert summary.ok and summary.totals["ok"] == 5
        units = int(lines[0].split(" units)")[0].rsplit("(", 1)[1])
        assert (units == 5) if longest == 600 else (units > 5)
        outputs[longest] = {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}
    assert outputs[600] == outputs[4]

    samples = read_all(tmp_path / "out4")
    assert len(samples) == 300 // 12 + 4 * 2 and len(outputs[4]) == -(-len(samples) // 5)
    shards_of, mixed = {}, 0
    for name, blob in outputs[4].items():
        with tarfile.open(fileobj=__import__("io").BytesIO(blob)) as tar:
            ids = {m.name.split(".", 1)[0].rsplit("_", 1)[0] for m in tar}
        mixed += len(ids) >= 2
        for video_id in ids:
            shards_of.setdefault(video_id, set()).add(name)
    assert mixed >= len(outputs[4]) // 2                    # shards mix sources
    assert len(shards_of["long"]) >= 3                      # a long source spread over shards
    index = json.loads((tmp_path / "out4" / "_index.json").read_text())
    assert index["totals"]["videos"] == 5 and index["totals"]["samples"] == len(samples)


def test_a_range_whose_seek_fails_is_decoded_from_the_start_and_counted(tmp_path, monkeypatch):
    from cwm.ingest import decode
    from tests.ingest.conftest import encode, moving

    src = tmp_path / "src"
    src.mkdir()
    encode(src / "long.mp4", np.concatenate([moving(120, seed=k) for k in range(2)]))
    ingest(config(src, tmp_path / "whole", shard_samples=5), log=lambda _: None)

    def seek_fails(*args, **kwargs):
        raise decode._SeekFailed("as if the demuxer could not seek")

    monkeypatch.setattr("cwm.ingest.plan.MAX_UNIT_SEGMENTS", 4)
    monkeypatch.setattr(decode, "_decode_by_seeking", seek_fails)
    lines = []
    summary = ingest(config(src, tmp_path / "split", shard_samples=5), log=lines.append)
    assert summary.ok and summary.seek_fallbacks >= 1
    assert "split ranges decoded from the file start" in "\n".join(lines)
    stats = [json.loads(p.read_text()) for p in (tmp_path / "split").glob("*.stats.json")]
    assert sum(s["seek_fallbacks"] for s in stats) == summary.seek_fallbacks
    tars = lambda d: {p.name: p.read_bytes() for p in (tmp_path / d).glob("*.tar")}  # noqa: E731
    assert tars("split") == tars("whole")

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cwm.errors import UserError
from cwm.model.checkpoint import (check_compatible, checkpoint_path, list_checkpoints,
                                  load_checkpoint, save_checkpoint, set_rng_state)
from cwm.model.config import make_config
from cwm.model.train import make_optimizer
from cwm.model.world_model import WorldModel

from tests.model.clips import moving_squares

REPO = Path(__file__).resolve().parents[2]


def _step(model, opt, clips):
    loss, _ = model(clips, clips[:, 1])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


def _trained(cfg, clips, steps=3):
    torch.manual_seed(0)
    model = WorldModel(cfg.model)
    opt = make_optimizer(model, cfg)
    for _ in range(steps):
        _step(model, opt, clips)
    return model, opt


def test_round_trip_is_bit_exact(tmp_path):
    cfg = make_config("tiny", "contextwm")
    clips = torch.from_numpy(moving_squares(2, 6, seed=0))
    model, opt = _trained(cfg, clips)
    path = save_checkpoint(checkpoint_path(tmp_path, 3), cfg=cfg, step=3, model=model,
                           optimizer=opt, data={"seed": 0, "step": 3, "clips_seen": 6})
    ckpt = load_checkpoint(path)   # weights_only=True inside
    assert ckpt["kind"] == "cwm-train" and ckpt["step"] == 3 and ckpt["preset"] == "tiny"
    restored = WorldModel(cfg.model)
    restored.load_state_dict(ckpt["model"])
    restored_opt = make_optimizer(restored, cfg)
    restored_opt.load_state_dict(ckpt["optimizer"])
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), name
    # The next step (random token drop, latent samples) is identical too: RNG state travels.
    set_rng_state(ckpt["rng"])
    expected = _step(model, opt, clips)
    set_rng_state(ckpt["rng"])
    assert torch.equal(_step(restored, restored_opt, clips), expected)
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)


def test_other_kind_or_preset_is_one_clear_error(tmp_path):
    cfg = make_config("tiny", "contextwm")
    model = WorldModel(cfg.model)
    path = save_checkpoint(checkpoint_path(tmp_path, 1), cfg=cfg, step=1, model=model,
                           optimizer=None, data={})
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, cfg, path)
    with pytest.raises(UserError, match="contextwm model of preset tiny, not plain/tiny"):
        check_compatible(ckpt, make_config("tiny", "plain"), path)
    with pytest.raises(UserError, match="not contextwm/small"):
        check_compatible(ckpt, make_config("small", "contextwm"), path)


def test_damaged_or_foreign_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(UserError, match="not a cwm-train checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_last_good_checkpoint(tmp_path):
    # A real OS-level write failure: the file-size limit makes write() fail with EFBIG, as a
    # full disk fails with ENOSPC. The older checkpoint must stay loadable, no temporary left.
    cfg = make_config("tiny", "plain")
    model = WorldModel(cfg.model)
    good = save_checkpoint(checkpoint_path(tmp_path, 1), cfg=cfg, step=1, model=model,
                           optimizer=None, data={})
    script = textwrap.dedent(f"""
        import resource, signal
        from cwm.errors import UserError
        from cwm.model.checkpoint import checkpoint_path, save_checkpoint
        from cwm.model.config import make_config
        from cwm.model.world_model import WorldModel
        cfg = make_config("tiny", "plain")
        model = WorldModel(cfg.model)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            save_checkpoint(checkpoint_path({str(tmp_path)!r}, 2), cfg=cfg, step=2, model=model,
                            optimizer=None, data={{}})
        except UserError as e:
            print("error:", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write checkpoint"), out
    assert str(good) in lines[0]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    load_checkpoint(good)


def test_sample_by_reaches_the_config_and_bad_names_are_refused():
    from cwm.errors import UserError
    from cwm.model.config import make_config

    assert make_config("tiny", "plain").train.sample_by == "video"          # upstream's draw
    assert make_config("tiny", "plain", sample_by="segment").train.sample_by == "segment"
    with pytest.raises(UserError, match="--sample-by must be one of video, segment"):
        make_config("tiny", "plain", sample_by="frame")

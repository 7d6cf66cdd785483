import pytest
import torch

from cwm.rl.bonus import BonusConfig, KNNBonus


@pytest.mark.parametrize("rule", ["upstream", "causal"])
def test_novel_motion_gets_larger_bonus(rule):
    torch.manual_seed(0)
    bonus = KNNBonus(feat_dim=32, cfg=BonusConfig(queue_size=256, k=4, rule=rule))
    familiar = torch.randn(1, 1, 32).repeat(8, 20, 1) + 0.01 * torch.randn(8, 20, 32)
    for _ in range(3):
        bonus(familiar)
    seen = bonus(familiar[:2], update=False).mean()
    novel = bonus(familiar[:2] + 5.0, update=False).mean()
    assert novel > 10 * seen


def test_queue_is_fifo_and_bounded():
    bonus = KNNBonus(feat_dim=8, cfg=BonusConfig(queue_size=10, k=2, window=1))
    bonus(torch.randn(1, 7, 8))
    assert int(bonus.filled) == 7 and int(bonus.cursor) == 7
    bonus(torch.randn(1, 7, 8))
    assert int(bonus.filled) == 10 and int(bonus.cursor) == 4


def test_window_smooths_causally_and_state_round_trips():
    bonus = KNNBonus(feat_dim=4, cfg=BonusConfig(window=3, dim=4, rule="causal"))
    bonus.proj.copy_(torch.eye(4))
    feat = torch.zeros(1, 5, 4)
    feat[0, 2] = 3.0
    emb = bonus.embed(feat)
    assert torch.allclose(emb[0, :, 0], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    bonus(torch.randn(2, 6, 4))
    clone = KNNBonus(feat_dim=4, cfg=BonusConfig(window=3, dim=4, rule="causal"), seed=1)
    clone.load_state_dict(bonus.state_dict())
    x = torch.randn(1, 6, 4)
    assert torch.equal(clone(x, update=False), bonus(x, update=False))


def _reference_upstream_bonus(feats, k, window, proj, momentum=0.99):
    """Upstream's rule written out step by step with plain loops (wmlib/agents/expl.py and
    core.StreamNorm read as a spec): forward window, add then search, mean from 1.0."""
    queue, mag, out = [], 1.0, []
    for feat in feats:                                   # one [B, T, F] batch per update
        b, t, _ = feat.shape
        rows = []
        for i in range(b):
            for s in range(t - window + 1):
                rows.append(feat[i, s:s + window].mean(0).double() @ proj.double())
        queue = rows + queue                             # newest first, joined before the search
        bonus = []
        for r in rows:
            d = sorted(float((r - q).norm()) for q in queue)
            bonus.append(sum(d[:k]) / min(k, len(d)))
        bonus = torch.tensor(bonus, dtype=torch.float64)
        mag = momentum * mag + (1 - momentum) * float(bonus.abs().mean())
        out.append((bonus / (mag + 1e-8)).reshape(b, t - window + 1))
    return out


def test_upstream_rule_matches_a_step_by_step_reference():
    torch.manual_seed(0)
    cfg = BonusConfig(window=5, dim=6, queue_size=4096, k=3, rule="upstream")
    bonus = KNNBonus(feat_dim=4, cfg=cfg)
    feats = [torch.randn(2, 9, 4) for _ in range(3)]
    want = _reference_upstream_bonus(feats, cfg.k, cfg.window, bonus.proj)
    for feat, ref in zip(feats, want):
        got = bonus(feat)
        assert got.shape == (2, 9 - 5 + 1)                # reward[:, :T - 4] gets a bonus
        assert torch.allclose(got.double(), ref, rtol=1e-4, atol=1e-6)
    # The normaliser started at 1.0 and moved 1% per batch towards the batch mean.
    assert 0.9 < float(bonus.running_mean) < 1.0


def test_upstream_rule_adds_before_searching_and_looks_forward():
    cfg = BonusConfig(window=2, dim=3, k=1, rule="upstream")
    bonus = KNNBonus(feat_dim=3, cfg=cfg)
    bonus.proj.copy_(torch.eye(3))
    # With k = 1 each step finds itself in the queue it just joined: a zero bonus.
    assert torch.equal(bonus(torch.randn(1, 6, 3)), torch.zeros(1, 5))
    # Step t averages t and t + 1: a change at step 3 moves the windows of steps 2 and 3.
    feat = torch.zeros(1, 5, 3)
    feat[0, 3] = 2.0
    assert torch.allclose(bonus.embed(feat)[0, :, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))

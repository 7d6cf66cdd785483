import torch

from cwm.rl.bonus import BonusConfig, KNNBonus


def test_novel_motion_gets_larger_bonus():
    torch.manual_seed(0)
    bonus = KNNBonus(feat_dim=32, cfg=BonusConfig(queue_size=256, k=4))
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
    bonus = KNNBonus(feat_dim=4, cfg=BonusConfig(window=3, dim=4))
    bonus.proj.copy_(torch.eye(4))
    feat = torch.zeros(1, 5, 4)
    feat[0, 2] = 3.0
    emb = bonus.embed(feat)
    assert torch.allclose(emb[0, :, 0], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    bonus(torch.randn(2, 6, 4))
    clone = KNNBonus(feat_dim=4, cfg=BonusConfig(window=3, dim=4), seed=1)
    clone.load_state_dict(bonus.state_dict())
    x = torch.randn(1, 6, 4)
    assert torch.equal(clone(x, update=False), bonus(x, update=False))

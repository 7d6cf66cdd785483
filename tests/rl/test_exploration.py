"""Prefill actions: plain uniform draws by default, held random pushes with `prefill_hold`."""

import numpy as np
import pytest

from cwm.errors import UserError
from cwm.rl.config import make_rl_config
from cwm.rl.exploration import PrefillActions


def test_hold_one_is_the_plain_uniform_prefill():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    acts = PrefillActions(2, 3, 1, a)
    for _ in range(5):
        assert np.array_equal(acts.next(), b.uniform(-1, 1, (2, 3)).astype(np.float32))


def test_held_actions_change_about_once_per_hold_steps_per_env():
    acts = PrefillActions(4, 2, 10, np.random.default_rng(0))
    seq = np.stack([acts.next() for _ in range(3000)])           # [T, n, A]
    assert seq.dtype == np.float32 and seq.min() >= -1 and seq.max() <= 1
    changes = (np.diff(seq, axis=0) != 0).any(-1).mean(0)        # per env
    assert np.all((changes > 0.07) & (changes < 0.13))           # ~1/10 (a redraw may repeat 0)
    assert abs(seq.mean()) < 0.1 and seq.std() > 0.5             # still uniform in [-1, 1]


def test_a_hold_below_one_is_refused():
    with pytest.raises(UserError, match="prefill_hold"):
        make_rl_config("dmc", preset="tiny", prefill_hold=0.5)

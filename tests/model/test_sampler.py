"""The latent sampler (`cwm.model.distributions.categorical_draw`) draws what torch.multinomial
draws, bit for bit, from the same generator state, and leaves the generator where multinomial
leaves it: replacing multinomial changed no sample of any run on the CPU."""

import math

import pytest
import torch

from cwm.model.distributions import categorical_draw, onehot_sample

torch.set_num_threads(1)


def _multinomial(probs: torch.Tensor) -> torch.Tensor:
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])


@pytest.mark.parametrize("shape", [(192, 16, 16), (8, 32, 32), (3, 5), (1 << 16, 16)])
def test_draws_are_multinomials_bit_for_bit_and_consume_the_same_stream(shape):
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(shape, generator=gen) * 3      # peaked and flat rows
    probs = logits.softmax(-1)
    for seed in range(4):
        torch.manual_seed(seed)
        want, after_want = _multinomial(probs), torch.rand(4)
        torch.manual_seed(seed)
        got, after_got = categorical_draw(probs), torch.rand(4)
        assert got.shape == shape[:-1] and got.dtype == torch.int64
        assert torch.equal(got, want)
        assert torch.equal(after_got, after_want)


def test_a_million_draws_match_multinomial():
    torch.manual_seed(0)
    probs = torch.randn(1 << 16, 16).softmax(-1)
    for seed in range(16):
        torch.manual_seed(seed)
        want = _multinomial(probs)
        torch.manual_seed(seed)
        assert torch.equal(categorical_draw(probs), want), seed


def test_draw_frequencies_follow_the_probabilities():
    """Chi-square over 200k draws of one distribution, with a zero-probability class: below the
    0.999 quantile of chi-square with 5 degrees of freedom (20.5), and the zero class never."""
    probs = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04, 0.0])
    n = 200_000
    torch.manual_seed(5)
    counts = torch.bincount(categorical_draw(probs.expand(n, -1)), minlength=7).double()
    assert counts[-1] == 0
    expected = n * probs[:-1].double()
    chi2 = float(((counts[:-1] - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, chi2
    assert math.isclose(float(counts.sum()), n)


def test_onehot_sample_draws_through_it_and_takes_the_mode_when_not_sampling():
    torch.manual_seed(1)
    logits = torch.randn(4, 6, 8)
    torch.manual_seed(2)
    drawn = onehot_sample(logits)
    torch.manual_seed(2)
    assert torch.equal(drawn.argmax(-1), _multinomial(logits.softmax(-1)))
    assert torch.equal(onehot_sample(logits, sample=False).argmax(-1), logits.argmax(-1))

import torch

from cwm.model.config import make_config
from cwm.model.world_model import WorldModel

from tests.model.clips import moving_squares


def test_tiny_contextwm_overfits_a_handful_of_clips():
    torch.manual_seed(0)
    model = WorldModel(make_config("tiny", "contextwm").model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-5)
    clips = torch.from_numpy(moving_squares(4, 10, seed=0))
    losses = []
    for _ in range(200):
        loss, _ = model(clips, clips[:, 3])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[0], min(losses[-10:])
    assert last < first / 10, (first, last)
    # Trained, the decoder draws the scene from the context: swapping contexts between clips
    # changes the predicted frames substantially.
    model.eval()
    own = model.open_loop(clips, clips[:, 0], observe=3)
    swapped = model.open_loop(clips, clips.flip(0)[:, 0], observe=3)
    assert (own - swapped).abs().mean() > 0.05

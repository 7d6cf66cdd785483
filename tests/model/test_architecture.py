import pytest
import torch

from cwm.model.attention import ContextCrossAttention
from cwm.model.config import make_config
from cwm.model.world_model import WorldModel, parameter_breakdown, to_float_images

from tests.model.clips import moving_squares


def test_paper_parameter_counts_match_upstream():
    ctx = parameter_breakdown(WorldModel(make_config("paper", "contextwm").model))
    assert ctx == {
        "encoder": 1_562_112,
        "context_encoder": 1_562_112,
        "decoder": 7_779_003,
        "decoder_cross_attention": 259_776,
        "decoder_linear": 6_294_528,
        "rssm": 14_745_600,
        "total": 25_648_827,
    }
    plain = parameter_breakdown(WorldModel(make_config("paper", "plain").model))
    assert plain["total"] == 23_826_939
    assert plain["context_encoder"] == 0 and plain["decoder_cross_attention"] == 0


@torch.no_grad()
def test_paper_tensor_shapes():
    model = WorldModel(make_config("paper", "contextwm").model).eval()
    frames = torch.randint(0, 256, (1, 2, 64, 64, 3), dtype=torch.uint8)
    images = to_float_images(frames)
    assert images.shape == (1, 2, 3, 64, 64)
    embed = model.encode(images)
    assert embed.shape == (1, 2, 3072)
    maps = model.encode_context(images[:, 0])
    assert {r: tuple(m.shape) for r, m in maps.items()} == {
        32: (1, 48, 32, 32), 16: (1, 96, 16, 16), 8: (1, 192, 8, 8)}
    post, prior = model.rssm.observe(embed)
    assert post.logits.shape == (1, 2, 32, 32) and post.deter.shape == (1, 2, 1024)
    assert post.feature().shape == (1, 2, 2048)
    assert model.decode(post.feature(), maps).shape == (1, 2, 3, 64, 64)
    assert model.decoder.context_resolutions == (8, 16)


def _tiny(kind="contextwm"):
    torch.manual_seed(0)
    return WorldModel(make_config("tiny", kind).model)


def test_decoder_output_depends_on_context():
    model = _tiny().eval()
    clips = torch.from_numpy(moving_squares(2, 4, seed=1))
    feat = torch.randn(1, 4, model.cfg.feat_dim)
    with torch.no_grad():
        a = model.decode(feat, model.encode_context(to_float_images(clips[0:1, 0])))
        b = model.decode(feat, model.encode_context(to_float_images(clips[1:2, 0])))
    # At initialisation the attention output is small (zero positional embeddings, fresh
    # BatchNorm) but already real; the overfit test checks the trained model relies on it.
    assert (a - b).abs().max() > 1e-4
    with torch.no_grad():
        again = model.decode(feat, model.encode_context(to_float_images(clips[0:1, 0])))
    assert torch.equal(a, again)


def test_gradient_reaches_context_encoder():
    model = _tiny().train()
    clips = torch.from_numpy(moving_squares(2, 5, seed=2))
    loss, _ = model(clips, clips[:, 2])
    loss.backward()
    for name, p in model.context_encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_plain_model_ignores_context():
    model = _tiny("plain").eval()
    assert model.context_encoder is None
    clips = torch.from_numpy(moving_squares(2, 4, seed=3))
    torch.manual_seed(1)
    a, _ = model(clips, clips[:, 0])
    torch.manual_seed(1)
    b, _ = model(clips, clips.flip(0)[:, 0])
    assert torch.equal(a, b)


def test_context_tokens_dropped_only_in_training():
    attn = ContextCrossAttention(8, 4, heads=2, dropout=0.0, token_drop=0.75)
    assert attn.train().kept_tokens(16) == 4
    assert attn.eval().kept_tokens(16) == 16
    upstream = ContextCrossAttention(8, 4, heads=2, token_drop=0.75, token_drop_eval=True).eval()
    assert upstream.kept_tokens(16) == 4
    x, ctx = torch.randn(6, 8, 4, 4), torch.randn(2, 8, 4, 4)
    assert attn.train()(x, ctx).shape == (6, 8, 4, 4)


@pytest.mark.parametrize("kind", ["contextwm", "plain", "dreamerv2"])
def test_every_kind_trains_and_predicts(kind):
    model = _tiny(kind)
    clips = torch.from_numpy(moving_squares(2, 6, seed=4))
    loss, metrics = model(clips, clips[:, 1])
    loss.backward()
    assert torch.isfinite(loss) and set(metrics) >= {"image_nll", "kl", "loss"}
    model.eval()
    assert model.open_loop(clips, clips[:, 0], observe=3).shape == (2, 6, 3, 64, 64)
    assert model.compose(clips, clips[:, 0]).shape == (2, 2, 6, 3, 64, 64)

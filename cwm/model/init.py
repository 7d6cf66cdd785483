"""Upstream's weight initialisation, reproduced layer by layer.

Upstream (thuml/ContextWM) builds layers lazily through a module factory that, for every layer it
creates with a `weight` (LayerNorm excepted), draws the weight Xavier-uniform and zeroes the bias,
as TensorFlow's Dense/Conv defaults do. Layers built directly inside a module's constructor keep
torch's defaults. Which is which, in upstream's nets:

    through the factory (Xavier-uniform weight, zero bias)     torch defaults
    ------------------------------------------------------     ----------------------------------
    encoders: the stem conv (also the context encoder's);      every residual block's convs and
      DreamerV2's CNN encoder: every conv                        BatchNorms (built by the block)
    decoders: the input linear and the output transposed       cross-attention: a torch
      conv; DreamerV2's CNN decoder: every layer                 MultiheadAttention (its own reset:
    RSSM: img_in, img_out, the prior and posterior logits        Xavier over the joint [3C, C]
      layers, obs_out                                            q/k/v weight, zero biases, default
    MLP heads: every linear (dense layers and the output)        out_proj weight); position
                                                                 embeddings zero
                                                               RSSM: the GRU cell's linear and
                                                                 LayerNorm

`upstream_init_(module)` applies that rule to every part of `module` it knows (encoders, decoders,
RSSM, cross-attention, MLP heads) and returns it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cwm.model.attention import ContextCrossAttention
from cwm.model.decoder import ConvDecoder, ResNetDecoder
from cwm.model.encoder import ConvEncoder, ResNetEncoder
from cwm.model.heads import MLPHead
from cwm.model.rssm import RSSM


def xavier_zero_(layer: nn.Module) -> None:
    """Xavier-uniform weight, zero bias: what upstream's factory does to each layer it builds."""
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


@torch.no_grad()
def _multihead_in_proj_(attn: ContextCrossAttention) -> None:
    """torch.nn.MultiheadAttention's reset: one Xavier draw over the stacked q/k/v weight
    [3C, C] (bound sqrt(6 / 4C)), zero in- and out-projection biases."""
    c = attn.q_proj.in_features
    bound = math.sqrt(6.0 / (c + 3 * c))
    for lin in (attn.q_proj, attn.kv_proj):
        lin.weight.uniform_(-bound, bound)
        nn.init.zeros_(lin.bias)
    nn.init.zeros_(attn.out_proj.bias)


def factory_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of `module` itself (not its parts) that upstream builds through its factory."""
    if isinstance(module, ResNetEncoder):  # also ContextEncoder
        return [module.stem]
    if isinstance(module, ConvEncoder):
        return [m for m in module.net if isinstance(m, nn.Conv2d)]
    if isinstance(module, ResNetDecoder):
        return [module.linear, module.out]
    if isinstance(module, ConvDecoder):
        return [module.linear] + [m for m in module.net if isinstance(m, nn.ConvTranspose2d)]
    if isinstance(module, RSSM):
        return [module.img_in, module.img_out, module.img_logits, module.obs_out,
                module.obs_logits]
    if isinstance(module, MLPHead):
        return [m for m in module.net if isinstance(m, nn.Linear)]
    return []


def upstream_init_(module: nn.Module) -> nn.Module:
    """Re-initialise `module` in place as upstream would have built it; returns it."""
    for m in module.modules():
        for layer in factory_layers(m):
            xavier_zero_(layer)
        if isinstance(m, ContextCrossAttention):
            _multihead_in_proj_(m)
    return module

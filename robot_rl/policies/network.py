"""The denoising network: observation encoder + head (what is trained, EMA'd and exported)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from robot_rl.policies.config import PolicyConfig
from robot_rl.policies.encoders import ObservationEncoder
from robot_rl.policies.transformer_head import TransformerHead
from robot_rl.policies.unet1d import ConditionalUnet1D


def make_head(config: PolicyConfig, cond_dim: int) -> nn.Module:
    """The head named by ``config.head``: ``head(x (B,T,A), t (B,), cond (B,C)) -> (B,T,A)``, and
    ``head.condition(cond)`` -> ``(x, t) -> (B,T,A)`` with the conditioning work done once
    (``head.prepare(cond)`` -> context, then ``head.step(x, t, context)`` per step)."""
    if config.head == "unet":
        return ConditionalUnet1D(config.action_dim, cond_dim, config.unet)
    return TransformerHead(config.action_dim, config.horizon, cond_dim, config.transformer)


class DenoisingNet(nn.Module):
    """``encoder`` turns observations into conditioning once per action chunk; ``head`` is then
    called once per denoising / integration step."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.encoder = ObservationEncoder(config)
        self.head = make_head(config, self.encoder.out_dim)

    def forward(
        self,
        noisy: torch.Tensor,
        timestep: torch.Tensor,
        state: torch.Tensor,
        images: Mapping[str, torch.Tensor] | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One head evaluation from raw observations; returns ``(B, T, A)``.

        Shapes: ``noisy (B, T, A)``, ``timestep (B,)``, ``state (B, To, D)`` normalized,
        ``images`` camera -> ``(B, To, 3, H, W)`` uint8, ``tokens (B, L)`` int64.
        """
        return self.head(noisy, timestep, self.encoder(state, images, tokens))


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())

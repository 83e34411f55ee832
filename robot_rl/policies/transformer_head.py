"""Transformer "action expert" head (the pi0 idea, at small scale).

Each noisy action step becomes a token through an MLP over ``[action embedding ‖ time embedding]``
(as pi0's action-time MLP); the observation conditioning becomes one prefix token; a stack of
bidirectional transformer blocks mixes them and the action tokens are read out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robot_rl.policies.config import TransformerConfig
from robot_rl.policies.layers import TimeEmbedding, TransformerBlock


class TransformerHead(nn.Module):
    """Noisy actions ``(B, T, A)``, timestep ``(B,)``, conditioning ``(B, C)`` -> ``(B, T, A)``."""

    def __init__(
        self, action_dim: int, horizon: int, cond_dim: int, cfg: TransformerConfig
    ) -> None:
        super().__init__()
        d = cfg.dim
        self.action_in = nn.Linear(action_dim, d)
        self.time = TimeEmbedding(cfg.time_dim, d)
        self.action_time = nn.Sequential(nn.Linear(2 * d, d), nn.Mish(), nn.Linear(d, d))
        self.cond_in = nn.Linear(cond_dim, d)
        self.positions = nn.Parameter(torch.randn(horizon + 1, d) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(d, cfg.heads, cfg.ff_mult, cfg.dropout) for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, action_dim)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.condition(cond)(x, timestep)

    def condition(self, cond: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``(x (B, T, A), timestep (B,)) -> (B, T, A)`` for fixed conditioning ``(B, C)``."""
        prefix = self.prepare(cond)
        return lambda x, timestep: self.step(x, timestep, prefix)

    def prepare(self, cond: torch.Tensor) -> torch.Tensor:
        """The observation prefix token ``(B, 1, dim)``, once per action chunk."""
        return self.cond_in(cond)[:, None, :]

    def step(self, x: torch.Tensor, timestep: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """One head evaluation with :meth:`prepare`'s output; ``(B, T, A)``."""
        t = x.shape[1]
        if t + 1 != self.positions.shape[0]:
            horizon = self.positions.shape[0] - 1
            raise ValueError(f"action chunk must have T={horizon} steps, got {tuple(x.shape)}")
        time = self.time(timestep)[:, None, :].expand(-1, t, -1)
        actions = self.action_time(torch.cat([self.action_in(x), time], dim=-1))
        h = torch.cat([prefix, actions], dim=1) + self.positions
        for block in self.blocks:
            h = block(h)
        return self.out(self.norm(h[:, 1:]))

"""Observation encoders: proprio state MLP, instruction encoder, and their combination.

:class:`ObservationEncoder` is the "VLA" front end: it turns an observation window (state history,
camera history, instruction tokens) into one global conditioning vector for a denoising head.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from robot_rl.policies.config import PolicyConfig, TextConfig
from robot_rl.policies.layers import TransformerBlock
from robot_rl.policies.tokenizer import PAD_ID
from robot_rl.policies.vision import ImageEncoder


class StateEncoder(nn.Module):
    """Per-frame MLP on normalized proprio state. ``(..., D) -> (..., features)``."""

    def __init__(self, state_dim: int, hidden: int, features: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(state_dim, hidden), nn.Mish(), nn.Linear(hidden, features)
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(state)


class TextEncoder(nn.Module):
    """Instruction tokens ``(B, L)`` int64 -> embedding ``(B, cfg.dim)``.

    Token + learned position embeddings, ``cfg.layers`` transformer blocks that ignore padding, then
    a mean over the non-padding tokens. Trained from scratch: with a handful of task instructions a
    pretrained language model would add weight, downloads and nothing the BC loss could use.
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        if not cfg.vocab:
            raise ValueError("TextEncoder needs a vocabulary (config.text.vocab is empty)")
        self.max_len = cfg.max_len
        self.tokens = nn.Embedding(len(cfg.vocab), cfg.dim, padding_idx=PAD_ID)
        self.positions = nn.Parameter(torch.randn(cfg.max_len, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.max_len:
            raise ValueError(
                f"instruction tokens must be (B, {self.max_len}), got {tuple(tokens.shape)}"
            )
        keep = tokens != PAD_ID
        x = self.tokens(tokens) + self.positions
        for block in self.blocks:
            x = block(x, keep)
        weights = keep.to(x.dtype)[..., None]
        return self.norm((x * weights).sum(1) / weights.sum(1).clamp_min(1.0))


class ObservationEncoder(nn.Module):
    """Observation window -> global conditioning vector ``(B, out_dim)``.

    ``out_dim = To * (state_features + cameras * vision.features) + text.dim`` (text if configured).
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.obs_horizon, self.cameras = config.obs_horizon, tuple(config.cameras)
        self.state = StateEncoder(config.state_dim, config.state_hidden, config.state_features)
        self.images = nn.ModuleDict(
            {cam: ImageEncoder(config.vision, config.image_size) for cam in self.cameras}
        )
        self.text = TextEncoder(config.text) if config.uses_text else None
        per_frame = config.state_features + len(self.cameras) * config.vision.features
        self.out_dim = config.obs_horizon * per_frame + (
            config.text.dim if self.text is not None else 0
        )

    def forward(
        self,
        state: torch.Tensor,
        images: Mapping[str, torch.Tensor] | None = None,
        tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            state: normalized state, shape ``(B, To, D)``.
            images: camera -> uint8 frames ``(B, To, 3, H, W)``, one entry per configured camera.
            tokens: instruction token ids ``(B, L)`` int64 when language is configured.
        """
        b, to = state.shape[:2]
        if to != self.obs_horizon:
            raise ValueError(
                f"state window must have To={self.obs_horizon} frames, got {tuple(state.shape)}"
            )
        parts = [self.state(state)]  # (B, To, F)
        images = images or {}
        for cam, encoder in self.images.items():
            if cam not in images:
                raise ValueError(f"missing frames of camera {cam!r}; got cameras {sorted(images)}")
            frames = images[cam]
            parts.append(encoder(frames.reshape(b * to, *frames.shape[2:])).reshape(b, to, -1))
        features = [torch.cat(parts, dim=-1).reshape(b, -1)]
        if self.text is not None:
            if tokens is None:
                raise ValueError("this policy is conditioned on language: pass instruction tokens")
            features.append(self.text(tokens))
        return torch.cat(features, dim=-1)

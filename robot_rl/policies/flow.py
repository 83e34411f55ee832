"""Flow-matching policy with pi0's conventions (Black et al. 2024, openpi ``pi0.py``).

Time t = 1 is pure noise and t = 0 the data: ``x_t = t * noise + (1 - t) * a`` with target
velocity ``u = dx_t/dt = noise - a``. Training times are ``Beta(1.5, 1) * 0.999 + 0.001``, which
favours the noisy end where the prediction is hardest. Sampling integrates ``dx/dt = v`` with Euler
from t = 1 down to t = 0.
"""

from __future__ import annotations

import torch

from robot_rl.policies.config import FlowConfig
from robot_rl.policies.policy import POLICIES, Denoiser, Policy, masked_mse

TIME_SCALE = 100.0
"""The head sees ``t * TIME_SCALE``: the same 0..100 range as diffusion timesteps, so both heads
share one sinusoidal embedding whose frequencies suit that range."""


def sample_time(
    n: int,
    beta: tuple[float, float] = (1.5, 1.0),
    t_min: float = 0.001,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training times ``Beta(*beta) * (1 - t_min) + t_min``, shape ``(n,)`` (global torch RNG)."""
    a, b = (torch.tensor(float(v), device=device) for v in beta)
    return torch.distributions.Beta(a, b).sample((n,)) * (1.0 - t_min) + t_min


def interpolate(
    actions: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Point and velocity on the straight path: ``x_t = t*noise + (1-t)*a``, ``u = noise - a``.

    Shapes: ``actions``, ``noise`` ``(B, T, A)``; ``t`` ``(B,)``; returns two ``(B, T, A)``.
    """
    tt = t.to(actions.dtype)[:, None, None]
    return tt * noise + (1.0 - tt) * actions, noise - actions


def integrate(denoiser: Denoiser, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """Euler-integrate ``dx/dt = v(x, t)`` from ``t = 1`` (``noise (B, T, A)``) down to ``t = 0``;
    the denoiser sees ``t * TIME_SCALE``."""
    x, dt = noise, 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), 1.0 - i * dt, device=x.device, dtype=x.dtype)
        x = x - dt * denoiser(x, t * TIME_SCALE)
    return x


def flow_loss(
    denoiser: Denoiser,
    actions: torch.Tensor,
    keep: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
) -> torch.Tensor:
    """Masked MSE between ``v(x_t, t * TIME_SCALE)`` and ``u = noise - actions``; ``t`` ``(B,)``."""
    x_t, u = interpolate(actions, noise, t)
    return masked_mse(denoiser(x_t, t * TIME_SCALE), u, keep)


@POLICIES.register("flow")
class FlowPolicy(Policy):
    """Flow-matching policy over normalized action chunks (UNet or transformer head)."""

    config_class = FlowConfig
    config: FlowConfig

    def _loss(self, denoiser: Denoiser, actions: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        t = sample_time(
            actions.shape[0], self.config.time_beta, self.config.time_min, actions.device
        )
        return flow_loss(denoiser, actions, keep, torch.randn_like(actions), t)

    def sample(
        self,
        denoiser: Denoiser,
        noise: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        steps = self.config.integration_steps if steps is None else steps
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return integrate(denoiser, noise, steps)

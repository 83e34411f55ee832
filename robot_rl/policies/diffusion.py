"""Diffusion policy (Chi et al. 2023): DDPM training, DDIM (or DDPM) sampling via diffusers.

DDIM uses ``timestep_spacing="trailing"`` so that even one step starts from the noisiest
timestep (99 of 100): the default "leading" spacing would make 1-step sampling run at t = 0 on
pure noise, which the network never saw at that timestep (Lin et al. 2024, "Common Diffusion
Noise Schedules and Sample Steps are Flawed", sec. 3.3 on trailing spacing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from robot_rl.policies.config import DiffusionConfig
from robot_rl.policies.policy import POLICIES, Denoiser, Policy, masked_mse


def _schedule(cfg: DiffusionConfig) -> dict[str, Any]:
    noise = cfg.noise_scheduler
    return {
        "num_train_timesteps": noise.train_timesteps,
        "beta_schedule": noise.beta_schedule,
        "prediction_type": noise.prediction_type,
        "clip_sample": noise.clip_sample,
        "timestep_spacing": "trailing",
    }


def train_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The forward (noising) process used in training."""
    return DDPMScheduler(**_schedule(cfg))


def inference_scheduler(cfg: DiffusionConfig) -> DDIMScheduler | DDPMScheduler:
    """The sampler named by ``cfg.sampler``, over the training betas."""
    if cfg.sampler == "ddpm":
        return DDPMScheduler(**_schedule(cfg))
    return DDIMScheduler(**_schedule(cfg), set_alpha_to_one=True)


def denoise(
    denoiser: Denoiser,
    scheduler: DDIMScheduler | DDPMScheduler,
    noise: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run ``steps`` reverse steps from ``noise (B, T, A)``; the denoiser sees int64 timesteps.

    Works in the dtype of ``noise`` (float64 lets tests check the schedule arithmetic exactly).
    """
    scheduler.set_timesteps(steps)  # timesteps stay on the CPU: they index the CPU alphas
    x = noise
    kwargs = {"generator": generator} if isinstance(scheduler, DDPMScheduler) else {}
    for t in scheduler.timesteps:
        timestep = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.int64)
        x = scheduler.step(denoiser(x, timestep), t, x, return_dict=False, **kwargs)[0]
    return x


@POLICIES.register("diffusion")
class DiffusionPolicy(Policy):
    """Diffusion policy over normalized action chunks (epsilon or x0 prediction)."""

    config_class = DiffusionConfig
    config: DiffusionConfig

    def __init__(
        self, config: DiffusionConfig, stats: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__(config, stats)
        self.noise_scheduler = train_scheduler(config)
        self.sampler = inference_scheduler(config)

    def _loss(self, denoiser: Denoiser, actions: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        noise = torch.randn_like(actions)
        n, b = self.config.noise_scheduler.train_timesteps, actions.shape[0]
        t = torch.randint(0, n, (b,), device=actions.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, t)
        target = noise if self.config.noise_scheduler.prediction_type == "epsilon" else actions
        return masked_mse(denoiser(noisy, t), target, keep)

    def sample(
        self,
        denoiser: Denoiser,
        noise: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        steps = self.config.inference_steps if steps is None else steps
        n = self.config.noise_scheduler.train_timesteps
        if not 1 <= steps <= n:
            raise ValueError(f"steps must be in [1, {n}], got {steps}")
        return denoise(denoiser, self.sampler, noise, steps, generator)

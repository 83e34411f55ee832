"""Samplers recover known targets when the network is an oracle.

The oracle knows the clean chunk ``a`` and answers exactly what a perfect network would: for
diffusion the noise that explains ``x_t`` (``eps = (x_t - sqrt(ab_t) a) / sqrt(1 - ab_t)``), for
flow the velocity that leads from ``x_t`` straight to ``a`` (``v = (x_t - a) / t``). Then every
sampler must land on ``a``: DDIM's last step has ``ab_prev = 1`` so it returns its x0 estimate,
DDPM's t = 0 step does the same, and Euler's last step from ``t = 1/n`` to 0 is exact on a
straight path. Any error in timestep spacing, scheduler wiring or the sign/direction of time
shows up as an O(1) miss.
"""

from __future__ import annotations

import pytest
import torch

from robot_rl.policies import DiffusionPolicy, FlowPolicy
from robot_rl.policies.flow import TIME_SCALE

from .conftest import tiny_config


def targets(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return ((torch.rand(3, 8, 2, generator=g) * 2 - 1) * 0.95).to(dtype)  # inside clip range


def epsilon_oracle(scheduler, target: torch.Tensor, seen: list[int]):
    def denoiser(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = int(timestep[0])
        seen.append(t)
        ab = scheduler.alphas_cumprod[t]
        # the scheduler takes these square roots in float32; use the very same numbers
        sa, sb = (ab**0.5).to(x.dtype), ((1 - ab) ** 0.5).to(x.dtype)
        return (x - sa * target) / sb

    return denoiser


@pytest.mark.parametrize(
    ("sampler", "steps", "dtype", "visited"),
    [
        ("ddim", 10, torch.float32, [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]),
        # One step starts at t = 99 where sqrt(ab) = 4.9e-4: float32 rounding of x_t (~1e-7) is
        # amplified 2000x by any sampler, so check the arithmetic in float64.
        ("ddim", 1, torch.float64, [99]),
        ("ddim", 1, torch.float32, [99]),
        ("ddpm", 100, torch.float32, list(range(99, -1, -1))),
    ],
)
def test_diffusion_samplers_recover_target_with_oracle(sampler, steps, dtype, visited):
    policy = DiffusionPolicy(tiny_config(sampler=sampler))
    target = targets(dtype)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    seen: list[int] = []
    oracle = epsilon_oracle(policy.sampler, target, seen)
    gen = torch.Generator().manual_seed(3)
    out = policy.sample(oracle, noise, steps=steps, generator=gen)
    assert seen == visited  # trailing spacing: even one step starts from pure noise
    assert out.dtype == dtype
    tol = 1e-5 if dtype == torch.float64 or steps > 1 else 2e-3
    err = (out - target).abs().max().item()
    assert err <= tol, f"{sampler} {steps} steps {dtype}: max error {err:.2e}"


@pytest.mark.parametrize(("steps", "times"), [(1, [1.0]), (4, [1.0, 0.75, 0.5, 0.25]), (10, None)])
def test_euler_recovers_target_with_oracle(steps, times):
    policy = FlowPolicy(tiny_config("flow"))
    target = targets(torch.float32)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(2))
    seen: list[float] = []

    def oracle(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = timestep[0].item() / TIME_SCALE
        seen.append(t)
        return (x - target) / t  # straight line through x_t and a: x_t = t*n + (1-t)*a

    out = policy.sample(oracle, noise, steps=steps)
    assert len(seen) == steps and seen[0] == 1.0  # t = 1 is noise
    if times is not None:
        assert seen == pytest.approx(times)
    err = (out - target).abs().max().item()
    assert err <= 1e-5, f"Euler {steps} steps: max error {err:.2e}"


def test_default_step_counts_come_from_config():
    d = DiffusionPolicy(tiny_config(inference_steps=4))
    seen: list[int] = []
    target = targets(torch.float32)
    d.sample(epsilon_oracle(d.sampler, target, seen), torch.randn(target.shape))
    assert seen == [99, 74, 49, 24]
    f = FlowPolicy(tiny_config("flow", integration_steps=3))
    calls = []
    f.sample(lambda x, t: calls.append(t[0].item()) or torch.zeros_like(x), torch.randn(1, 8, 2))
    assert calls == pytest.approx([100.0, 100.0 * 2 / 3, 100.0 / 3])
    with pytest.raises(ValueError, match="steps must be in"):
        d.sample(lambda x, t: x, torch.randn(1, 8, 2), steps=101)

"""Flow-matching conventions (pi0 / openpi): time distribution, interpolation, target."""

from __future__ import annotations

import pytest
import torch

import robot_rl.policies.flow as flow
from robot_rl.policies import FlowPolicy
from robot_rl.policies.flow import TIME_SCALE, flow_loss, interpolate, sample_time

from .conftest import random_batch, tiny_config


def test_time_distribution_is_scaled_beta_1p5_1():
    t = sample_time(200_000)
    # E[Beta(1.5, 1)] = 1.5 / 2.5 = 0.6, so E[t] = 0.6 * 0.999 + 0.001 = 0.6004; the standard
    # error of the mean is 0.262 * 0.999 / sqrt(2e5) = 5.9e-4, so 3e-3 is a 5-sigma band.
    assert t.mean().item() == pytest.approx(0.6 * 0.999 + 0.001, abs=3e-3)
    assert t.min().item() >= 0.001 and t.max().item() <= 1.0
    # Beta(1.5, 1) has CDF x^1.5: P(t <= 0.5) = ((0.5 - 0.001) / 0.999)^1.5 = 0.3530
    assert (t <= 0.5).float().mean().item() == pytest.approx(0.3530, abs=4e-3)


def test_interpolation_and_target_are_exactly_pi0s():
    g = torch.Generator().manual_seed(0)
    a, noise = torch.randn(4, 8, 2, generator=g), torch.randn(4, 8, 2, generator=g)
    t = torch.tensor([0.0, 0.25, 0.9, 1.0])
    x_t, u = interpolate(a, noise, t)
    expected = t[:, None, None] * noise + (1 - t[:, None, None]) * a
    assert torch.equal(x_t, expected)
    assert torch.equal(u, noise - a)
    assert torch.equal(x_t[0], a[0]) and torch.equal(x_t[3], noise[3])  # t = 0 data, t = 1 noise


def test_flow_loss_regresses_velocity_at_scaled_time():
    g = torch.Generator().manual_seed(0)
    a, noise = torch.randn(2, 8, 2, generator=g), torch.randn(2, 8, 2, generator=g)
    t = torch.tensor([0.3, 0.7])
    keep = torch.ones(2, 8, dtype=torch.bool)
    seen = {}

    def zero(x, timestep):
        seen["x"], seen["t"] = x, timestep
        return torch.zeros_like(x)

    loss = flow_loss(zero, a, keep, noise, t)
    assert torch.allclose(seen["t"], t * TIME_SCALE)
    assert torch.allclose(seen["x"], t[:, None, None] * noise + (1 - t[:, None, None]) * a)
    assert loss.item() == pytest.approx(((noise - a) ** 2).mean().item(), rel=1e-6)
    assert flow_loss(lambda x, s: noise - a, a, keep, noise, t).item() == 0.0


def test_policy_loss_uses_sampled_time(monkeypatch):
    """With t forced to 0 the head must see the clean (normalized) actions themselves."""
    policy = FlowPolicy(tiny_config("flow"))
    batch = random_batch(policy.config)
    monkeypatch.setattr(flow, "sample_time", lambda n, *args: torch.zeros(n))
    seen = {}
    head = policy.net.head
    original = head.condition

    def spy(cond):
        run = original(cond)

        def denoiser(x, t):
            seen["x"], seen["t"] = x, t
            return run(x, t)

        return denoiser

    monkeypatch.setattr(head, "condition", spy)
    policy.compute_loss(batch)
    assert torch.equal(seen["t"], torch.zeros(4))
    assert torch.allclose(seen["x"], batch["action"])  # identity normalizer: x_0 = a


def test_noise_scale_scales_the_initial_noise_and_zero_is_deterministic():
    """``noise_scale`` multiplies the drawn noise: 0 gives the chunk of zero noise whatever the
    generator; 0.5 gives the chunk of half the same generator's draw."""
    policy = FlowPolicy(tiny_config("flow"))
    state = torch.randn(2, policy.config.obs_horizon, policy.config.state_dim)
    shape = (2, policy.config.horizon, policy.config.action_dim)
    zero = policy.act({"state": state}, noise=torch.zeros(shape))
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(policy.act({"state": state}, generator=g, noise_scale=0.0), zero)
    drawn = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    half = policy.act({"state": state}, noise=0.5 * drawn)
    g = torch.Generator().manual_seed(3)
    assert torch.allclose(policy.act({"state": state}, generator=g, noise_scale=0.5), half)
    sampled = policy.act({"state": state}, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(sampled, zero)  # the default still samples

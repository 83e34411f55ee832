"""TD targets and losses against hand-computed values; residual actor and critic ensemble."""

from __future__ import annotations

import copy

import pytest
import torch

from robot_rl.algos.td import actor_loss, critic_loss, ensemble_target, polyak, smoothed_action
from robot_rl.policies.residual import CriticEnsemble, ResidualActor


def test_target_takes_min_of_a_random_pair_and_drops_bootstrap_only_on_termination():
    q_next = torch.tensor([[1.0, 5.0], [3.0, 2.0], [4.0, 9.0]])  # (E=3, B=2)
    reward = torch.tensor([0.5, 1.0])
    discount = torch.tensor([0.9, 0.0])  # env 1's window ended in a termination
    # Column 0's pairwise minima: heads {0,1} -> 1, {0,2} -> 1, {1,2} -> 3; each draw picks one
    # pair for the whole batch, and over many draws every pair shows up.
    seen = set()
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        target = ensemble_target(q_next, reward, discount, generator=g)
        assert target[1].item() == pytest.approx(1.0)  # termination: reward only
        seen.add(round((target[0].item() - 0.5) / 0.9, 6))
    assert seen == {1.0, 3.0}
    # With all heads the min is over the whole ensemble: 0.5 + 0.9 · min(1, 3, 4).
    full = ensemble_target(q_next, reward, discount, subset=3)
    assert full.tolist() == pytest.approx([0.5 + 0.9 * 1.0, 1.0])
    # A truncated window bootstraps (discount gamma^K > 0) even though the episode ended.
    trunc = ensemble_target(q_next, reward, torch.tensor([0.25, 0.25]), subset=3)
    assert trunc.tolist() == pytest.approx([0.5 + 0.25 * 1.0, 1.0 + 0.25 * 2.0])


def test_critic_loss_averages_heads_and_actor_uses_the_mean():
    q = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    target = torch.tensor([0.0, 1.0])
    loss, info = critic_loss(q, target)
    # head 0: (1 + 1) / 2 = 1; head 1: (9 + 1) / 2 = 5; mean over heads 3
    assert loss.item() == pytest.approx(3.0)
    assert info["q_mean"].item() == pytest.approx(1.5)
    a_loss, _ = actor_loss(q)
    assert a_loss.item() == pytest.approx(-1.5)
    # The residual penalty adds penalty · mean(correction²): 0.5 · (0.25 + 0 + 1 + 0.25) / 4.
    correction = torch.tensor([[0.5, 0.0], [-1.0, 0.5]])
    a_loss, info = actor_loss(q, correction, penalty=0.5)
    assert a_loss.item() == pytest.approx(-1.5 + 0.5 * 1.5 / 4)
    assert info["actor_q"].item() == pytest.approx(1.5)


def test_penalty_keeps_a_correction_where_q_is_flat_at_zero():
    """Adam turns a tiny consistent slope of Q into a full-size correction; the penalty stops
    that along a dimension where Q's slope is small, not along one where it is large."""
    torch.manual_seed(0)

    def train(penalty: float) -> torch.Tensor:
        actor = ResidualActor(obs_dim=3, action_dim=2, hidden=(32,), scale=0.2)
        opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
        slope = torch.tensor([1e-3, 1.0])  # Q = slope · action: dim 0 barely matters
        obs, base = torch.randn(128, 3), torch.zeros(128, 2)
        for _ in range(300):
            c = actor.correction(obs, base)
            loss, _ = actor_loss((slope * (base + c)).sum(-1)[None], c / 0.2, penalty)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return actor.correction(obs, base).detach().abs().mean(0) / 0.2

    free, held = train(0.0), train(0.1)
    assert free[0] > 0.5  # without the penalty the flat dimension drifts most of the way out
    assert held[0] < 0.1 and held[1] > 0.5


def test_smoothing_noise_is_clipped_and_actions_stay_in_range():
    action = torch.zeros(10_000, 2)
    out = smoothed_action(action, std=1.0, clip=0.3, generator=torch.Generator().manual_seed(0))
    assert out.abs().max().item() == pytest.approx(0.3)
    edge = smoothed_action(torch.ones(100, 2), std=0.5, clip=0.5)
    assert edge.max().item() <= 1.0


def test_polyak_moves_target_by_tau():
    src, tgt = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = copy.deepcopy(tgt)
    polyak(tgt, src, 0.25)
    for t, b, s in zip(tgt.parameters(), before.parameters(), src.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * s)


def test_zero_initialized_residual_acts_exactly_like_the_base():
    actor = ResidualActor(obs_dim=5, action_dim=3, scale=0.1)
    obs = torch.randn(64, 5)
    base = torch.rand(64, 3) * 2 - 1
    assert torch.equal(actor(obs, base), base)
    # Once trained away from zero the correction is bounded by the scale.
    torch.nn.init.normal_(actor.net[-1].weight, std=10.0)
    delta = actor(obs, base) - base
    assert delta.abs().max().item() <= 0.1 + 1e-6
    assert delta.abs().max().item() > 0.05


def test_critic_ensemble_starts_at_zero_and_heads_are_independent():
    critic = CriticEnsemble(obs_dim=4, action_dim=2, heads=5, hidden=(16, 16))
    obs, act = torch.randn(8, 4), torch.randn(8, 2)
    assert torch.equal(critic(obs, act), torch.zeros(5, 8))  # Q = 0 before any update
    torch.nn.init.normal_(critic.net[-1].weight)
    q = critic(obs, act)
    assert q.shape == (5, 8)
    assert not torch.allclose(q[0], q[1])
    # The gradient of head 0's output reaches only head 0's weights.
    q[0].sum().backward()
    first = critic.net[0].weight.grad
    assert first[0].abs().sum() > 0 and first[1:].abs().sum() == 0


def test_hl_gauss_histogram_sums_to_one_and_keeps_the_mean():
    from robot_rl.policies.residual import hl_gauss_probs

    edges = torch.linspace(-1.0, 2.0, 52)
    centers = (edges[1:] + edges[:-1]) / 2
    target = torch.tensor([0.0, 0.37, 1.2, 9.0])
    probs = hl_gauss_probs(target, edges, sigma=0.75 * 3.0 / 51)
    assert probs.shape == (4, 51)
    assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-6)
    mean = (probs * centers).sum(-1)
    assert torch.allclose(mean[:3], target[:3], atol=2e-3)
    assert 1.9 < mean[3] <= 2.0  # clamped to the support


def test_distributional_critic_starts_at_zero_and_learns_a_target_value():
    from robot_rl.algos.td import distributional_critic_loss

    torch.manual_seed(0)
    critic = CriticEnsemble(obs_dim=3, action_dim=2, heads=4, hidden=(32,), bins=41)
    obs, act = torch.randn(64, 3), torch.randn(64, 2)
    assert critic(obs, act).abs().max() < 1e-5  # uniform over [-1.5, 1.5]: Q = 0
    target = torch.where(obs[:, 0] > 0, 0.8, 0.1)  # a value that depends on the state
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = distributional_critic_loss(
            critic.logits(obs, act), target, critic.edges, critic.sigma
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    err = (critic(obs, act).detach() - target).abs()
    assert err.mean() < 0.02 and err.max() < 0.15, (err.mean(), err.max())


def test_stochastic_residual_log_density_matches_its_samples():
    actor = ResidualActor(obs_dim=2, action_dim=1, hidden=(8,), scale=0.2, stochastic=True)
    obs, base = torch.zeros(200_000, 2), torch.zeros(200_000, 1)
    assert torch.equal(actor(obs[:4], base[:4]), base[:4])  # the mean starts at the base
    with torch.no_grad():
        actor.net[-1].bias.copy_(torch.tensor([0.4, -0.7]))  # pre-tanh mean 0.4, log std -0.7
        c, log_prob, action = actor.sample(obs, base, torch.Generator().manual_seed(0))
    assert c.abs().max() < 0.2 and torch.equal(action, c)
    # The empirical density of the samples in each bin matches exp(log_prob) there.
    edges = torch.linspace(-0.2, 0.2, 21)
    idx = torch.bucketize(c[:, 0], edges) - 1
    width = float(edges[1] - edges[0])
    for b in range(2, 18):
        mask = idx == b
        if mask.sum() < 2000:
            continue
        empirical = mask.float().mean() / width
        assert log_prob[mask].exp().mean() == pytest.approx(float(empirical), rel=0.08)

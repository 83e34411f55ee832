"""TD losses of the residual off-policy learner as pure functions (TD3 + RLPD ensemble targets).

Every function takes tensors and returns ``(loss, info)`` or a tensor, so tests call them with
hand-made numbers, no environment.
"""

from __future__ import annotations

import torch

from robot_rl.policies.residual import hl_gauss_probs


def ensemble_target(
    q_next: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    *,
    subset: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n-step TD target ``r + discount · min_{j in S} Q_j(s', a')``, ``S`` a random subset of
    ``subset`` heads shared by the batch (RLPD / REDQ: Chen et al. 2021, eq. 2).

    Shapes: ``q_next (E, B)`` target-critic values of the next action; ``reward (B,)`` the
    discounted n-step reward sum; ``discount (B,)`` ``gamma^K``, 0 after a termination (so
    the bootstrap is ignored exactly on termination). Returns ``(B,)``, without gradient.
    """
    heads = q_next.shape[0]
    assert q_next.dim() == 2 and q_next.shape[1] == reward.shape[0] == discount.shape[0], (
        q_next.shape,
        reward.shape,
        discount.shape,
    )
    if not 1 <= subset <= heads:
        raise ValueError(f"subset must be in [1, {heads}], got {subset}")
    pick = torch.randperm(heads, generator=generator, device=q_next.device)[:subset]
    q_min = q_next[pick].min(dim=0).values
    return (reward + discount * q_min).detach()


def critic_loss(
    q: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean over heads of the mean squared TD error. ``q (E, B)``, ``target (B,)``."""
    assert q.dim() == 2 and q.shape[1] == target.shape[0], (q.shape, target.shape)
    td = q - target.unsqueeze(0)
    loss = td.pow(2).mean(dim=1).sum() / q.shape[0]
    return loss, {"critic_loss": loss.detach(), "q_mean": q.mean().detach()}


def distributional_critic_loss(
    logits: torch.Tensor, target: torch.Tensor, edges: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy between every head's value distribution ``logits (E, B, K)`` and the
    HL-Gauss histogram of the scalar TD target ``(B,)``, averaged over heads and batch."""
    assert logits.dim() == 3 and logits.shape[1] == target.shape[0], (logits.shape, target.shape)
    probs = hl_gauss_probs(target, edges, sigma)  # (B, K)
    loss = -(probs[None] * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    centers = (edges[1:] + edges[:-1]) / 2
    q = (torch.softmax(logits.detach(), dim=-1) * centers).sum(-1)
    return loss, {"critic_loss": loss.detach(), "q_mean": q.mean()}


def actor_loss(
    q: torch.Tensor, correction: torch.Tensor | None = None, penalty: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Deterministic policy gradient through the ensemble mean, ``-mean_B mean_E Q``, plus
    ``penalty · mean(correction²)``.

    ``q (E, B)``: critic values of the actor's actions; ``correction (B, A)``: the residual in
    units of its bound (in [-1, 1]). Adam normalizes gradient magnitudes per parameter, so
    without the penalty even a tiny consistent slope of Q (critic noise along an action
    dimension that does not matter) drives that dimension's correction to its bound within a
    few hundred updates; the penalty makes the correction settle where Q's slope balances it.
    """
    assert q.dim() == 2, q.shape
    q_term = -q.mean()
    info = {"actor_q": -q_term.detach()}
    loss = q_term
    if correction is not None and penalty > 0:
        reg = correction.pow(2).mean()
        loss = loss + penalty * reg
        info["correction_sq"] = reg.detach()
    info["actor_loss"] = loss.detach()
    return loss, info


def smoothed_action(
    action: torch.Tensor,
    std: float,
    clip: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """TD3's target-policy smoothing (Fujimoto et al. 2018, eq. 14): ``action`` plus Gaussian
    noise clipped to ``±clip``, then clipped to the action range [-1, 1]."""
    noise = torch.randn(action.shape, generator=generator, device=action.device) * std
    return (action + noise.clamp(-clip, clip)).clamp(-1.0, 1.0)


@torch.no_grad()
def polyak(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """``target <- (1 - tau) · target + tau · source``, parameter by parameter."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)

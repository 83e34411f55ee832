"""Residual off-policy RL on top of a frozen base controller (ResFiT's recipe; our own code).

The base (a BC policy run receding-horizon by a :class:`ChunkRunner`, or any controller with
``__call__(obs) -> (N, A)`` and ``reset(ids)``) acts; a residual actor adds a bounded correction
at every control step; a LayerNorm critic ensemble learns n-step TD targets from a replay buffer
of all N parallel envs. TD3-style by default: deterministic actor, fixed Gaussian exploration,
target-policy smoothing, Polyak-averaged target networks, delayed actor updates. Options: a
SAC-style stochastic residual with a tuned entropy temperature (``entropy``), a distributional
HL-Gauss critic (``critic_bins``), a penalty on the correction (``residual_penalty``, optionally
starting higher and annealed down: ``residual_penalty_start``),
potential-based reward shaping (``shaping``) and temporally correlated exploration
(``explore_correlation``).

Actions are handled in the env's normalized range [-1, 1] (the arm tasks' action space already
is). The residual and critic see the raw state standardized with mean/std measured on the
warm-up data, frozen afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from robot_rl.algos.td import (
    actor_loss,
    critic_loss,
    distributional_critic_loss,
    ensemble_target,
    polyak,
    smoothed_action,
)
from robot_rl.algos.train_state import load_optimizer, optimizer_tensors, strip_prefix
from robot_rl.core.errors import ConfigError
from robot_rl.data.replay import ReplayBuffer
from robot_rl.envs.vec_env import Obs, VecEnv
from robot_rl.policies.residual import CriticEnsemble, ResidualActor


class BaseController(Protocol):
    """What the residual learner needs of a base policy (a ChunkRunner, a scripted expert)."""

    def __call__(self, obs: Obs) -> torch.Tensor: ...

    def reset(self, ids: torch.Tensor) -> None: ...


@dataclass
class ResidualConfig:
    """Residual RL hyperparameters (``configs/algo/residual.yaml``); defaults from ResFiT/RLPD."""

    name: str = "residual"
    env_steps: int = 200_000  # total transitions collected (num_envs per vector step)
    action_scale: float = 0.1  # largest residual correction per action dimension
    # one bound per action dimension instead (overrides action_scale); 0 freezes a dimension at
    # the base action, e.g. [0.1, 0.1, 0.1, 0, 0, 0, 0] corrects only an arm's TCP position
    action_scale_per_dim: list[float] = field(default_factory=list)
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    critic_heads: int = 10
    # 1: Q regressed by MSE. > 1: distributional critic, HL-Gauss over critic_bins bins of
    # [critic_v_min, critic_v_max], which must cover the returns ([0, 1] for the sparse success
    # reward); Q starts at the support's midpoint
    critic_bins: int = 1
    critic_v_min: float = -1.5
    critic_v_max: float = 1.5
    target_heads: int = 2  # min over this many random heads in the TD target
    n_step: int = 3
    gamma: float = 0.99
    utd: float = 0.25  # gradient updates per collected transition
    batch_size: int = 256
    buffer_size: int = 300_000  # transitions
    warmup_env_steps: int = 10_000  # base + noise before any update
    warmup_noise: float = 0.1  # exploration std during warm-up (normalized units)
    critic_warmup_updates: int = 1_000  # critic-only updates before the actor starts
    explore_std: float = 0.05  # Gaussian exploration (deterministic actor only)
    # correlation of consecutive steps' exploration noise (AR(1), each step's std unchanged;
    # ExplorationNoise); 0: white noise. Warm-up and the deterministic actor's exploration.
    explore_correlation: float = 0.0
    # SAC-style: a stochastic residual (tanh Gaussian) explores by sampling, targets and the
    # actor loss carry -alpha · log pi, alpha tuned toward target_entropy (default: minus the
    # number of corrected action dimensions)
    entropy: bool = False
    init_alpha: float = 0.01
    alpha_lr: float = 3e-4
    target_entropy: float | None = None
    target_noise: float = 0.1
    target_noise_clip: float = 0.3
    actor_every: int = 2  # critic updates per actor update (TD3's delay)
    # actor loss += residual_penalty · mean((correction / action_scale)²): keeps corrections
    # along action dimensions where the critic has no consistent slope near zero
    residual_penalty: float = 0.0
    # When set: the penalty as the actor starts, moving linearly to residual_penalty over
    # residual_penalty_anneal_updates learner updates (critic updates; the actor steps on every
    # actor_every-th). The young critic's slopes are mostly noise, which the actor would turn into
    # corrections (the early dip under the base); a penalty that starts high keeps the first
    # corrections small until the critic has seen more data.
    residual_penalty_start: float | None = None
    residual_penalty_anneal_updates: int = 0
    actor_lr: float = 3e-5
    critic_lr: float = 1e-4
    tau: float = 0.005
    grad_clip: float = 1.0
    # "success": sparse 1 on the step the task succeeds (ResFiT). "task": the task's shaped
    # reward; its positive closeness terms pay for hovering near the goal, so with termination on
    # success an agent learns to stay just outside the success radius (measured on arm_reach).
    reward: str = "success"
    # Potential-based shaping (Ng et al. 1999), added to the reward: shaping_scale · (gamma ·
    # phi(s') - phi(s)) with phi(s) = -sum_k w_k · ||state[k.*]||, k naming vector entries of the
    # state (e.g. {cube_to_goal: 1.0, tcp_to_cube: 0.2} on arm_push). It leaves the optimal
    # policy unchanged and gives the critic a per-step signal the sparse reward lacks. Empty: off.
    shaping: dict[str, float] = field(default_factory=dict)
    shaping_scale: float = 10.0
    demo_ratio: float = 0.5  # share of each batch drawn from demonstrations (RLPD), when given

    def penalty_at(self, updates: int) -> float:
        """The residual penalty of the update that brings the learner's count to ``updates``
        (the actor starts after ``critic_warmup_updates``)."""
        start, span = self.residual_penalty_start, self.residual_penalty_anneal_updates
        if start is None:
            return self.residual_penalty
        done = max(0, updates - self.critic_warmup_updates)
        if done >= span:
            return self.residual_penalty
        return start + (self.residual_penalty - start) * done / span

    @property
    def scales(self) -> float | list[float]:
        """The residual's bound: per dimension when ``action_scale_per_dim`` is set."""
        return list(self.action_scale_per_dim) or self.action_scale

    def __post_init__(self) -> None:
        positive = ("env_steps", "critic_heads", "n_step", "batch_size", "buffer_size")
        for key in positive + ("actor_every",):
            if getattr(self, key) < 1:
                raise ConfigError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        if self.critic_bins < 1 or not self.critic_v_min < self.critic_v_max:
            raise ConfigError(
                "algo.critic_bins must be >= 1 and critic_v_min < critic_v_max; got "
                f"{self.critic_bins}, [{self.critic_v_min}, {self.critic_v_max}]"
            )
        if self.critic_heads < 2 or not 1 <= self.target_heads <= self.critic_heads:
            raise ConfigError(
                f"algo.target_heads must be in [1, critic_heads={self.critic_heads}], "
                f"got {self.target_heads}"
            )
        dims = self.action_scale_per_dim
        if dims and (not all(math.isfinite(v) and 0 <= v <= 2 for v in dims) or max(dims) <= 0):
            raise ConfigError(
                "algo.action_scale_per_dim must hold values in [0, 2], at least one > 0; "
                f"got {dims}"
            )
        if not (math.isfinite(self.residual_penalty) and self.residual_penalty >= 0):
            raise ConfigError(
                f"algo.residual_penalty must be a finite number >= 0, got {self.residual_penalty}"
            )
        start = self.residual_penalty_start
        if start is not None and not (math.isfinite(start) and start >= 0):
            raise ConfigError(
                f"algo.residual_penalty_start must be a finite number >= 0 (or null), got {start}"
            )
        if self.residual_penalty_anneal_updates < (0 if start is None else 1):
            raise ConfigError(
                "algo.residual_penalty_anneal_updates must be >= 1 with a "
                "residual_penalty_start (>= 0 without), "
                f"got {self.residual_penalty_anneal_updates}"
            )
        for key in ("gamma", "tau"):
            v = getattr(self, key)
            if not 0.0 < v <= 1.0:
                raise ConfigError(f"algo.{key} must be in (0, 1], got {v}")
        for key in ("utd", "actor_lr", "critic_lr", "action_scale", "init_alpha", "alpha_lr"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"algo.{key} must be a finite number > 0, got {v}")
        if not 0.0 <= self.explore_correlation < 1.0:
            raise ConfigError(
                f"algo.explore_correlation must be in [0, 1), got {self.explore_correlation}"
            )
        if self.entropy and self.explore_correlation > 0:
            raise ConfigError(
                "algo.explore_correlation needs the deterministic actor: a stochastic "
                "(entropy) residual explores by sampling its own noise"
            )
        if not 0.0 <= self.demo_ratio < 1.0:
            raise ConfigError(f"algo.demo_ratio must be in [0, 1), got {self.demo_ratio}")
        if not (math.isfinite(self.shaping_scale) and self.shaping_scale >= 0):
            raise ConfigError(f"algo.shaping_scale must be >= 0, got {self.shaping_scale}")
        if self.reward not in ("success", "task"):
            raise ConfigError(f"algo.reward must be 'success' or 'task', got {self.reward!r}")


class Potential:
    """``phi(state) = -sum_k w_k · ||state[:, entries of k]||`` over named state vectors.

    Args:
        weights: state-vector name -> weight, e.g. ``{"cube_to_goal": 1.0}`` takes the entries
            named ``cube_to_goal.x``, ``.y``, ``.z`` (or one entry named exactly so).
        names: the names of the state entries, in order.
    """

    def __init__(self, weights: dict[str, float], names: list[str] | tuple[str, ...]) -> None:
        self.terms: list[tuple[list[int], float]] = []
        for key, w in weights.items():
            idx = [i for i, n in enumerate(names) if n == key or n.startswith(key + ".")]
            if not idx:
                raise ConfigError(
                    f"algo.shaping names {key!r}, which is not in the state; state vectors: "
                    f"{sorted({n.split('.')[0] for n in names})}"
                )
            self.terms.append((idx, float(w)))

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(state.shape[:-1], device=state.device)
        for idx, w in self.terms:
            out -= w * state[..., idx].norm(dim=-1)
        return out


class ExplorationNoise:
    """Unit-variance Gaussian exploration noise per env, white or temporally correlated.

    ``noise_t = rho · noise_(t-1) + sqrt(1 - rho²) · eps_t``: every step's noise is still a
    standard normal, but consecutive steps correlate by ``rho`` (over about ``1 / (1 - rho)``
    steps), so a small correction is explored as a sustained offset (the aim of a push) instead
    of per-step jitter that averages out over the motion. ``rho = 0`` draws exactly the white
    noise ``torch.randn`` would. A finished episode's env starts afresh (:meth:`reset`).

    Args:
        shape: ``(N, A)``.
        rho: correlation of consecutive steps, in [0, 1).
        generator: the random stream (the learner's).
        device: where the noise lives.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        rho: float,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        self.shape, self.rho, self.gen, self.device = shape, rho, generator, device
        self.state: torch.Tensor | None = None  # the last draw (rho > 0)

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device)

    def __call__(self) -> torch.Tensor:
        if self.rho == 0.0:
            return self._randn(self.shape)
        if self.state is None:  # the stationary distribution: a standard normal
            self.state = self._randn(self.shape)
        else:
            self.state = self.rho * self.state + math.sqrt(1 - self.rho**2) * self._randn(
                self.shape
            )
        return self.state

    def reset(self, ids: torch.Tensor) -> None:
        """Envs ``ids`` begin new episodes: their next noise is a fresh draw."""
        if self.rho > 0.0 and self.state is not None and len(ids):
            state = self.state.clone()  # out of place: a returned draw never changes later
            state[ids] = self._randn((len(ids), self.shape[1]))
            self.state = state


def shaped_reward(
    reward: torch.Tensor,
    state: torch.Tensor,
    next_state: torch.Tensor,
    potential: Potential | None,
    cfg: ResidualConfig,
) -> torch.Tensor:
    """``reward + shaping_scale · (gamma · phi(next_state) - phi(state))``; ``reward`` when
    shaping is off. Shapes ``(N,)``, ``(N, D)``, ``(N, D)``."""
    if potential is None:
        return reward
    gain = cfg.gamma * potential(next_state) - potential(state)
    return reward + cfg.shaping_scale * gain.to(reward.dtype)


class ResidualLearner:
    """Actor, critic ensemble, their targets and optimizers, and one update step.

    Args:
        obs_dim: D of the state the residual sees.
        action_dim: A.
        cfg: hyperparameters.
        device: where networks and batches live.
        seed: seeds the exploration, smoothing and head-subset draws.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        cfg: ResidualConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.actor = ResidualActor(
            obs_dim, action_dim, cfg.hidden, cfg.scales, cfg.layer_norm, cfg.entropy
        ).to(self.device)
        self.critic = CriticEnsemble(
            obs_dim,
            action_dim,
            cfg.critic_heads,
            cfg.hidden,
            cfg.layer_norm,
            cfg.critic_bins,
            cfg.critic_v_min,
            cfg.critic_v_max,
        ).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=self.device)
        self.log_alpha.requires_grad_(cfg.entropy)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.target_entropy = (
            -float(self.actor.active.sum()) if cfg.target_entropy is None else cfg.target_entropy
        )
        self.obs_mean = torch.zeros(obs_dim, device=self.device)
        self.obs_std = torch.ones(obs_dim, device=self.device)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.updates = 0
        self.normalizer_fitted = False

    _OPTIMS = ("actor_optim", "critic_optim", "alpha_optim")

    def fit_normalizer(self, states: torch.Tensor) -> None:
        """Standardize observations with the mean/std of ``states (M, D)`` from now on."""
        self.obs_mean = states.mean(dim=0).to(self.device)
        self.obs_std = states.std(dim=0).clamp_min(1e-2).to(self.device)
        self.normalizer_fitted = True

    def trainer_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What training continues from beyond the networks and the normalizer: optimizer
        moments, the entropy temperature, the random stream and counters, as tensors + JSON
        (:meth:`load_trainer_state`)."""
        tensors = {"log_alpha": self.log_alpha.detach().reshape(1), "rng": self.gen.get_state()}
        meta: dict[str, Any] = {"updates": self.updates}
        meta["normalizer_fitted"] = self.normalizer_fitted
        for name in self._OPTIMS:
            moments, groups = optimizer_tensors(getattr(self, name))
            tensors |= {f"{name}.{k}": v for k, v in moments.items()}
            meta[f"{name}.param_groups"] = groups
        return tensors, meta

    def load_trainer_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`trainer_state`; a mismatch raises ``CheckpointError``/``KeyError``."""
        for name in self._OPTIMS:
            moments = strip_prefix(tensors, name + ".")
            load_optimizer(getattr(self, name), moments, meta[f"{name}.param_groups"], name)
        with torch.no_grad():
            self.log_alpha.copy_(tensors["log_alpha"].reshape(()))
        self.gen.set_state(tensors["rng"])
        self.updates = int(meta["updates"])
        self.normalizer_fitted = bool(meta["normalizer_fitted"])

    def norm(self, state: torch.Tensor) -> torch.Tensor:
        return (state.to(self.device) - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def act(
        self,
        state: torch.Tensor,
        base_action: torch.Tensor,
        explore: float,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Base + residual (+ exploration noise of std ``explore``: ``explore · noise``, a fresh
        standard normal draw when ``noise`` is None), clipped to [-1, 1]. A stochastic
        (``entropy``) actor explores by sampling instead, whenever ``explore > 0``."""
        if self.cfg.entropy and explore > 0:
            return self.actor.sample(self.norm(state), base_action.to(self.device), self.gen)[2]
        action = self.actor(self.norm(state), base_action.to(self.device))
        if explore > 0:  # (frozen dimensions, bound 0, stay at the base action)
            if noise is None:
                noise = torch.randn(action.shape, generator=self.gen, device=self.device)
            action = (action + explore * noise * self.actor.active).clamp(-1.0, 1.0)
        return action

    def update(self, batch: dict[str, torch.Tensor], train_actor: bool) -> dict[str, float]:
        """One critic step and, every ``actor_every`` updates when ``train_actor``, one actor
        step plus the Polyak updates of both targets."""
        cfg = self.cfg
        s, ns = self.norm(batch["obs.state"]), self.norm(batch["next_obs.state"])
        alpha = float(self.log_alpha.detach().exp()) if cfg.entropy else 0.0
        with torch.no_grad():
            if cfg.entropy:  # SAC: the current policy's sample, minus alpha · log pi
                _, logp_next, a_next = self.actor.sample(ns, batch["next_base_action"], self.gen)
                q_next = self.critic_target(ns, a_next) - alpha * logp_next[None]
            else:  # TD3: the target actor, smoothed
                a_next = self.actor_target(ns, batch["next_base_action"])
                smooth = smoothed_action(a_next, cfg.target_noise, cfg.target_noise_clip, self.gen)
                a_next = torch.where(self.actor.active, smooth, a_next)
                q_next = self.critic_target(ns, a_next)
            target = ensemble_target(
                q_next,
                batch["reward"],
                batch["discount"],
                subset=cfg.target_heads,
                generator=self.gen,
            )
        if self.critic.bins > 1:
            logits = self.critic.logits(s, batch["action"])
            c_loss, info = distributional_critic_loss(
                logits, target, self.critic.edges, self.critic.sigma
            )
        else:
            c_loss, info = critic_loss(self.critic(s, batch["action"]), target)
        self.critic_optim.zero_grad(set_to_none=True)
        c_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_optim.step()
        self.updates += 1
        out = {k: float(v) for k, v in info.items()}
        if train_actor and self.updates % cfg.actor_every == 0:
            if cfg.entropy:
                correction, logp, a_pi = self.actor.sample(s, batch["base_action"], self.gen)
            else:
                correction = self.actor.correction(s, batch["base_action"])
                a_pi = (batch["base_action"] + correction).clamp(-1.0, 1.0)
            self.critic.requires_grad_(False)  # dQ/da only: no critic weight gradients
            try:
                q_pi = self.critic(s, a_pi)
            finally:
                self.critic.requires_grad_(True)
            active = self.actor.active
            unit = correction[:, active] / self.actor.scale[active]  # in [-1, 1]
            penalty = cfg.penalty_at(self.updates)
            a_loss, a_info = actor_loss(q_pi, unit, penalty)
            if cfg.entropy:
                a_loss = a_loss + alpha * logp.mean()
            self.actor_optim.zero_grad(set_to_none=True)
            a_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
            self.actor_optim.step()
            out.update({k: float(v) for k, v in a_info.items()})
            if cfg.entropy:  # alpha follows the entropy toward its target
                alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                self.alpha_optim.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optim.step()
                out.update({"alpha": alpha, "entropy": float(-logp.detach().mean())})
            out["residual_abs"] = float((a_pi.detach() - batch["base_action"]).abs().mean())
            out["residual_penalty"] = penalty
        if self.updates % cfg.actor_every == 0:
            polyak(self.critic_target, self.critic, cfg.tau)
            if not cfg.entropy:  # SAC's targets sample the current actor: no actor target
                polyak(self.actor_target, self.actor, cfg.tau)
        return out


def collect_and_learn(
    env: VecEnv,
    base: BaseController,
    cfg: ResidualConfig,
    learner: ResidualLearner,
    *,
    seed: int = 0,
    demos: ReplayBuffer | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    buffer: ReplayBuffer | None = None,
    start_steps: int = 0,
) -> ReplayBuffer:
    """Run the residual learner until ``cfg.env_steps`` transitions in ``env``.

    ``buffer`` (default: a new :func:`online_buffer`) receives the online transitions. To
    continue a run, pass its restored buffer and learner and the env steps it had done
    (``start_steps``): the envs start new episodes (seeded ``seed + start_steps``), the episodes
    the stop cut short end as truncations (``ReplayBuffer.cut_episodes``).

    With ``demos`` (see ``residual_demos.demo_buffer``), ``cfg.demo_ratio`` of every batch comes
    from them and the rest from the online buffer (RLPD's symmetric sampling).

    ``on_step(env_steps, info)`` is called after every vector step with the episode outcomes
    of envs that finished (``info["episode"]``, ``info["done"]``) and the latest update scalars;
    the caller evaluates and checkpoints from there.
    """
    n = env.num_envs
    state_dim = env.observation_spec["state"].shape[0]
    potential = Potential(cfg.shaping, env.state_names) if cfg.shaping else None
    if buffer is None:
        buffer = online_buffer(env, cfg, learner.device)
    buffer.cut_episodes()
    noise = ExplorationNoise(
        (n, env.action_dim), cfg.explore_correlation, learner.gen, learner.device
    )
    obs = env.reset(seed=seed + start_steps)
    base.reset(torch.arange(n, device=env.device))
    base_action = base(obs).to(learner.device).clamp(-1.0, 1.0)
    steps, owed, scalars = start_steps, 0.0, {}
    while steps < cfg.env_steps:
        warm = steps < cfg.warmup_env_steps
        explore = cfg.warmup_noise if warm else cfg.explore_std
        if warm:  # the base with noise: the residual has not learned anything yet
            eps = noise() * learner.actor.active  # frozen dimensions stay at the base action
            action = (base_action + explore * eps).clamp(-1.0, 1.0)
        elif cfg.entropy:  # the stochastic residual samples its own exploration
            action = learner.act(obs["state"], base_action, explore)
        else:
            # (no draw when there is no exploration: explore_std 0 keeps the old random stream)
            action = learner.act(obs["state"], base_action, explore, noise() if explore else None)
        next_obs, reward, terminated, truncated, info = env.step(action.to(env.device))
        if cfg.reward == "success":
            reward = info["success"].float()
        reward = shaped_reward(reward, obs["state"], info["final_obs"]["state"], potential, cfg)
        done = terminated | truncated
        if bool(done.any()):
            ids = done.nonzero().flatten()
            base.reset(ids)
            noise.reset(ids.to(learner.device))
        next_base = base(next_obs).to(learner.device).clamp(-1.0, 1.0)
        # The base action at a finished env's final observation is not computed (the base has
        # already moved on to the new episode); the one it was executing stands in for it. It
        # matters only when bootstrapping from a truncated episode's last state.
        done_l = done.to(learner.device)[:, None]
        buffer.add(
            {"state": obs["state"]},
            action,
            reward.to(learner.device),
            terminated.to(learner.device),
            truncated.to(learner.device),
            {"state": info["final_obs"]["state"]},
            base_action=base_action,
            next_base_action=torch.where(done_l, base_action, next_base),
        )
        steps += n
        if not warm:
            if not learner.normalizer_fitted:  # once, on the warm-up data; frozen from then on
                learner.fit_normalizer(buffer.obs["state"][: buffer.rows].reshape(-1, state_dim))
            owed += cfg.utd * n
            while owed >= 1.0:
                batch = mixed_batch(buffer, demos, cfg, learner.gen)
                train_actor = learner.updates >= cfg.critic_warmup_updates
                scalars = learner.update(batch, train_actor)
                owed -= 1.0
        if on_step is not None:
            on_step(steps, {"episode": info["episode"], "done": done, "scalars": scalars})
        obs, base_action = next_obs, next_base
    return buffer


def online_buffer(env: VecEnv, cfg: ResidualConfig, device: torch.device) -> ReplayBuffer:
    """The empty online replay buffer of a run in ``env``: ``cfg.buffer_size`` transitions."""
    n = env.num_envs
    return ReplayBuffer(
        max(1, cfg.buffer_size // n),
        n,
        {"state": (env.observation_spec["state"].shape[0],)},
        env.action_dim,
        device=device,
    )


def mixed_batch(
    online: ReplayBuffer,
    demos: ReplayBuffer | None,
    cfg: ResidualConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``cfg.batch_size`` transitions: ``round(demo_ratio · B)`` from ``demos`` (when given),
    the rest from ``online``, concatenated (demonstrations last)."""
    from_demos = round(cfg.demo_ratio * cfg.batch_size) if demos is not None else 0
    batch = online.sample(cfg.batch_size - from_demos, cfg.n_step, cfg.gamma, generator)
    if demos is None or from_demos == 0:
        return batch
    extra = demos.sample(from_demos, cfg.n_step, cfg.gamma, generator)
    return {k: torch.cat([v, extra[k]]) for k, v in batch.items()}

"""PPO for massively parallel envs (Schulman et al. 2017; the rsl_rl recipe; our own code).

N envs step together for ``T`` steps; the rollout (kept on the learner's device) gets GAE
advantages, then ``epochs`` passes of ``minibatches`` shuffled minibatches minimize the clipped
surrogate + clipped value loss - entropy bonus, with the learning rate adapted to keep the KL
between the collecting and the updated policy near ``desired_kl``. The actor sees the normalized
``state``; with ``asymmetric`` the critic also sees ``privileged`` (simulator-only facts) when the
env provides it. Truncated episodes are bootstrapped: ``γ·V(final_obs)`` is added to the reward of
the step the time limit cut, then the episode is cut like a termination.

The math (GAE, losses, KL, the lr rule, the scaling rule) is pure functions so tests check it
with hand-worked numbers; :class:`ActorCritic` owns the networks and the observation statistics,
so one ``state_dict`` is the whole deployable policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robot_rl.core.errors import ConfigError
from robot_rl.envs.vec_env import Obs, VecEnv
from robot_rl.policies.ppo_actor import ACTIVATIONS, RunningNorm, mlp

SCALE_RULES = ("none", "fixed_minibatch", "fixed_batch")


@dataclass
class PPOConfig:
    """PPO hyperparameters (``configs/algo/ppo.yaml``); defaults from rsl_rl's legged recipe."""

    name: str = "ppo"
    env_steps: int = 20_000_000  # total transitions collected (num_envs per vector step)
    steps_per_env: int = 24  # rollout length T per update, at reference_envs envs
    epochs: int = 5
    minibatches: int = 4  # per epoch, at reference_envs envs
    # How T and the minibatch count follow the number of envs N (see schedule_for_envs):
    # "none": as given (rsl_rl: the minibatch grows with N); "fixed_minibatch": minibatches keep
    # the size they have at reference_envs and their count grows with N, never below
    # `minibatches` (Beukman et al. 2026: fix the inner loop, more samples per update);
    # "fixed_batch": T shrinks as N grows so N·T stays at reference_envs·steps_per_env,
    # within [min_steps_per_env, steps_per_env]
    scale_with_envs: str = "fixed_minibatch"
    reference_envs: int = 4096  # legged_gym's N, at which steps_per_env/minibatches are tuned
    min_steps_per_env: int = 8
    lr: float = 1.0e-3
    schedule: str = "adaptive"  # "adaptive": KL-driven lr; "fixed"
    desired_kl: float = 0.01
    lr_min: float = 1.0e-5
    lr_max: float = 1.0e-2
    clip: float = 0.2  # ratio clip of the surrogate
    value_clip: float = 0.2  # clip of the value change around the collected value; 0: none
    gamma: float = 0.99
    lam: float = 0.95  # GAE λ
    entropy_coef: float = 0.01
    value_coef: float = 1.0
    max_grad_norm: float = 1.0
    init_std: float = 1.0  # state-independent, learned action std (normalized action units)
    actor_hidden: tuple[int, ...] = (512, 256, 128)
    critic_hidden: tuple[int, ...] = (512, 256, 128)
    activation: str = "elu"
    normalize_obs: bool = True  # running mean/std per observation key, frozen at evaluation
    obs_clip: float = 10.0  # normalized observations are clipped to ±obs_clip
    normalize_advantages: bool = True
    asymmetric: bool = True  # critic reads obs["privileged"] too, when the env has it

    def __post_init__(self) -> None:
        for key in ("env_steps", "steps_per_env", "epochs", "minibatches", "reference_envs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"algo.{key} must be >= 1, got {getattr(self, key)}")
        if not 1 <= self.min_steps_per_env <= self.steps_per_env:
            raise ConfigError(
                f"algo.min_steps_per_env must be in [1, steps_per_env={self.steps_per_env}], "
                f"got {self.min_steps_per_env}"
            )
        if self.scale_with_envs not in SCALE_RULES:
            raise ConfigError(
                f"algo.scale_with_envs must be one of {SCALE_RULES}, got {self.scale_with_envs!r}"
            )
        if self.schedule not in ("adaptive", "fixed"):
            raise ConfigError(f"algo.schedule must be adaptive or fixed, got {self.schedule!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"algo.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if not (0 < self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ConfigError(
                f"algo.gamma must be in (0, 1], lam in [0, 1]; got {self.gamma}, {self.lam}"
            )
        for key in ("lr", "desired_kl", "clip", "init_std", "obs_clip"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"algo.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.lr_min <= self.lr <= self.lr_max:
            raise ConfigError(
                f"algo.lr must lie in [lr_min, lr_max], got {self.lr} not in "
                f"[{self.lr_min}, {self.lr_max}]"
            )


def schedule_for_envs(cfg: PPOConfig, num_envs: int) -> tuple[int, int]:
    """``(steps_per_env, minibatches)`` for ``num_envs`` under ``cfg.scale_with_envs``.

    ``fixed_minibatch``: the minibatch keeps the size ``reference_envs·T/minibatches`` it has at
    the reference N (capped by the whole batch), so at N = 16·4096 there are 16× more gradient
    steps per update on 16× more samples; below the reference the count stays ``minibatches``.
    ``fixed_batch``: ``T = ceil(reference_envs·steps_per_env / N)`` clamped to
    ``[min_steps_per_env, steps_per_env]``, minibatch count unchanged.
    """
    steps, mbs = cfg.steps_per_env, cfg.minibatches
    if cfg.scale_with_envs == "fixed_minibatch":
        size = cfg.reference_envs * steps / mbs
        mbs = max(mbs, round(num_envs * steps / size))
    elif cfg.scale_with_envs == "fixed_batch":
        steps = math.ceil(cfg.reference_envs * steps / num_envs)
        steps = min(cfg.steps_per_env, max(cfg.min_steps_per_env, steps))
    return steps, min(mbs, num_envs * steps)


# --- pure math ------------------------------------------------------------------------------


def bootstrap_truncated(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_value: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """``reward + γ·V(final_obs)`` where the time limit cut a non-terminal episode (the return
    would have continued), else ``reward``. All shapes ``(N,)``; a step both terminated and
    truncated is terminal (no bootstrap)."""
    assert reward.shape == terminated.shape == truncated.shape == final_value.shape
    cut = truncated & ~terminated
    return reward + gamma * final_value * cut.to(reward.dtype)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16), cut at episode ends.

    Shapes: ``rewards``, ``values``, ``dones`` ``(T, N)`` (``dones[t]``: the episode ended at
    step t, terminated or truncated; truncations already carry their bootstrap in the reward);
    ``last_value (N,)`` = V of the observation after the last step. Returns ``(advantages,
    returns)`` ``(T, N)``, ``returns = advantages + values`` (the value targets).
    """
    assert rewards.shape == values.shape == dones.shape and last_value.shape == rewards.shape[1:]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        alive = 1.0 - dones[t].to(rewards.dtype)
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def surrogate_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate ``-E[min(ρA, clip(ρ, 1±ε)A)]``, ``ρ = π/π_old``; all shapes ``(B,)``."""
    assert log_prob.shape == old_log_prob.shape == advantages.shape
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.min(unclipped, clipped).mean()
    clip_frac = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, {"surrogate_loss": loss.detach(), "clip_fraction": clip_frac.detach()}


def value_loss(
    value: torch.Tensor, old_value: torch.Tensor, returns: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``E[max((V-R)², (V_clip-R)²)]``, ``V_clip = V_old + clip(V-V_old, ±clip)`` (the PPO2
    value clip); ``clip = 0`` is the plain squared error. Shapes ``(B,)``."""
    assert value.shape == old_value.shape == returns.shape
    err = (value - returns).pow(2)
    if clip > 0:
        clipped = old_value + (value - old_value).clamp(-clip, clip)
        err = torch.max(err, (clipped - returns).pow(2))
    loss = err.mean()
    return loss, {"value_loss": loss.detach()}


def gaussian_kl(
    mu_old: torch.Tensor, std_old: torch.Tensor, mu: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_old, std_old) || N(mu, std))`` of diagonal Gaussians, summed over the action
    dimension: ``(B, A)`` (stds broadcast) ⇒ ``(B,)``."""
    var_old, var = std_old.pow(2), std.pow(2)
    kl = torch.log(std / std_old) + (var_old + (mu_old - mu).pow(2)) / (2.0 * var) - 0.5
    return kl.sum(-1)


def adapt_lr(lr: float, kl: float, desired_kl: float, lr_min: float, lr_max: float) -> float:
    """The adaptive-KL step rule: ÷1.5 when the KL overshoots 2× the target, ×1.5 when it stays
    under half of it, kept in ``[lr_min, lr_max]`` (rsl_rl's schedule, Rudin et al. 2022)."""
    if kl > 2.0 * desired_kl:
        lr /= 1.5
    elif 0.0 < kl < 0.5 * desired_kl:
        lr *= 1.5
    return min(lr_max, max(lr_min, lr))


# --- networks (mlp, RunningNorm: robot_rl.policies.ppo_actor, shared with deployment) ---------


class ActorCritic(nn.Module):
    """Gaussian actor on ``state``, critic on ``state`` (⊕ ``privileged`` when asymmetric), and
    the running statistics of every observation key they read.

    ``obs_dims``: feature size per observation key the env provides (``state`` required).
    """

    def __init__(self, obs_dims: dict[str, int], action_dim: int, cfg: PPOConfig) -> None:
        super().__init__()
        if "state" not in obs_dims:
            raise ConfigError(f"PPO needs a 'state' observation; the env has {sorted(obs_dims)}")
        self.obs_dims, self.action_dim = dict(obs_dims), action_dim
        self.actor_keys = ("state",)
        asym = cfg.asymmetric and "privileged" in obs_dims
        self.critic_keys = ("state", "privileged") if asym else ("state",)
        clip = cfg.obs_clip if cfg.normalize_obs else math.inf
        self.norms = nn.ModuleDict({k: RunningNorm(obs_dims[k], clip) for k in self.critic_keys})
        self.update_norms = cfg.normalize_obs
        self.actor = mlp(obs_dims["state"], cfg.actor_hidden, action_dim, cfg.activation)
        critic_in = sum(obs_dims[k] for k in self.critic_keys)
        self.critic = mlp(critic_in, cfg.critic_hidden, 1, cfg.activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(cfg.init_std)))

    def inputs(self, obs: Obs, update: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(actor input (N, D_a), critic input (N, D_c))``, normalized; ``update`` first folds
        ``obs`` into the statistics (collection only: frozen during updates and evaluation)."""
        if update and self.update_norms:
            for k in self.critic_keys:
                self.norms[k].update(obs[k])
        normed = {k: self.norms[k](obs[k].float()) for k in self.critic_keys}
        return normed["state"], torch.cat([normed[k] for k in self.critic_keys], dim=-1)

    def distribution(self, actor_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean (N, A), std (A,))`` of the Gaussian policy."""
        return self.actor(actor_in), self.log_std.exp()

    def value(self, critic_in: torch.Tensor) -> torch.Tensor:
        """``V (N,)``."""
        return self.critic(critic_in).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: Obs) -> torch.Tensor:
        """The deterministic (mean) action ``(N, A)`` clipped to ``[-1, 1]``: evaluation and
        deployment."""
        actor_in, _ = self.inputs(obs)
        return self.actor(actor_in).clamp(-1.0, 1.0)


def log_prob(action: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over ``A``: ``(B, A)`` ⇒ ``(B,)``."""
    z = (action - mu) / std
    return (-0.5 * z.pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian with std ``(A,)`` (state-independent)."""
    return (torch.log(std) + 0.5 * math.log(2 * math.pi * math.e)).sum()


# --- rollout storage and the learner ---------------------------------------------------------


@dataclass
class Rollout:
    """``T`` steps of ``N`` envs on the learner's device; inputs are stored normalized (with the
    statistics they were acted on) so the first epoch's ratio is exactly 1."""

    actor_in: torch.Tensor  # (T, N, D_a)
    critic_in: torch.Tensor  # (T, N, D_c)
    actions: torch.Tensor  # (T, N, A) the unclipped Gaussian samples
    log_probs: torch.Tensor  # (T, N)
    mu: torch.Tensor  # (T, N, A)
    values: torch.Tensor  # (T, N)
    rewards: torch.Tensor  # (T, N) with truncation bootstraps
    dones: torch.Tensor  # (T, N) float
    std: torch.Tensor  # (A,) the collecting policy's std (state-independent)
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    @classmethod
    def empty(cls, steps: int, n: int, d_a: int, d_c: int, a: int, device) -> Rollout:
        def z(*shape: int) -> torch.Tensor:
            return torch.zeros(steps, n, *shape, device=device)

        return cls(
            actor_in=z(d_a), critic_in=z(d_c), actions=z(a), log_probs=z(), mu=z(a),
            values=z(), rewards=z(), dones=z(), std=torch.ones(a, device=device),
        )  # fmt: skip


class PPO:
    """The learner: an :class:`ActorCritic`, its Adam optimizer, the adaptive lr."""

    def __init__(
        self,
        obs_dims: dict[str, int],
        action_dim: int,
        cfg: PPOConfig,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's RNG untouched
            torch.manual_seed(seed)
            self.model = ActorCritic(obs_dims, action_dim, cfg).to(self.device)
        self.lr = cfg.lr
        self.optim = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)

    @torch.no_grad()
    def explore(self, obs: Obs) -> dict[str, torch.Tensor]:
        """Sample actions for collection (updating the observation statistics first)."""
        actor_in, critic_in = self.model.inputs(obs, update=True)
        mu, std = self.model.distribution(actor_in)
        noise = torch.randn(mu.shape, generator=self.gen, device=self.device)
        action = mu + std * noise
        return {
            "actor_in": actor_in,
            "critic_in": critic_in,
            "action": action,
            "log_prob": log_prob(action, mu, std),
            "mu": mu,
            "value": self.model.value(critic_in),
        }

    @torch.no_grad()
    def value(self, obs: Obs) -> torch.Tensor:
        """``V (N,)`` of raw observations, statistics untouched."""
        return self.model.value(self.model.inputs(obs)[1])

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optim.param_groups:
            group["lr"] = lr

    def update(self, ro: Rollout, minibatches: int) -> dict[str, float]:
        """``epochs`` passes of shuffled minibatch steps over the rollout; mean losses etc."""
        cfg, model = self.cfg, self.model
        assert ro.advantages is not None and ro.returns is not None, "compute advantages first"
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        actor_in, critic_in = flat(ro.actor_in), flat(ro.critic_in)
        actions, old_lp, old_mu = flat(ro.actions), flat(ro.log_probs), flat(ro.mu)
        old_v, returns, adv = flat(ro.values), flat(ro.returns), flat(ro.advantages)
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        batch = adv.shape[0]
        size = batch // minibatches
        sums: dict[str, float] = {}
        for _ in range(cfg.epochs):
            perm = torch.randperm(batch, generator=self.gen, device=self.device)
            for i in range(minibatches):
                idx = perm[i * size : (i + 1) * size]
                mu, std = model.distribution(actor_in[idx])
                with torch.no_grad():
                    kl = gaussian_kl(old_mu[idx], ro.std, mu, std).mean().item()
                if cfg.schedule == "adaptive":
                    self.set_lr(adapt_lr(self.lr, kl, cfg.desired_kl, cfg.lr_min, cfg.lr_max))
                lp = log_prob(actions[idx], mu, std)
                surr, s_info = surrogate_loss(lp, old_lp[idx], adv[idx], cfg.clip)
                v = model.value(critic_in[idx])
                vloss, v_info = value_loss(v, old_v[idx], returns[idx], cfg.value_clip)
                entropy = gaussian_entropy(std)
                loss = surr + cfg.value_coef * vloss - cfg.entropy_coef * entropy
                self.optim.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                self.optim.step()
                step = {**s_info, **v_info, "entropy": entropy.detach(), "kl": kl}
                step["grad_norm"] = grad_norm
                for k, val in step.items():
                    sums[k] = sums.get(k, 0.0) + float(val)
        n = cfg.epochs * minibatches
        out = {k: v / n for k, v in sums.items()}
        out |= {"lr": self.lr, "std": float(model.log_std.detach().exp().mean())}
        return out


@dataclass
class EpisodeTally:
    """Sums over the episodes that finished during one rollout, kept on the device (no per-step
    host sync): return, length, success and each task metric (NaN entries skipped)."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, done: torch.Tensor, episode: dict[str, Any]) -> None:
        values = {"return": episode["return"], "length": episode["length"]}
        values["success"] = episode["success"]
        values |= {k: v for k, v in episode.get("metrics", {}).items()}
        for k, v in values.items():
            v = v.to(done.device, torch.float32)
            ok = done & torch.isfinite(v)
            self.sums[k] = self.sums.get(k, 0) + torch.where(ok, v, 0.0).sum()
            self.counts[k] = self.counts.get(k, 0) + ok.sum()

    def means(self) -> dict[str, float]:
        """Mean per quantity over the episodes that reported it (absent when none did)."""
        return {
            k: float(self.sums[k] / self.counts[k]) for k in self.sums if int(self.counts[k]) > 0
        }


def _to(obs: Obs, device: torch.device) -> Obs:
    return {k: v.to(device) for k, v in obs.items()}


def train_ppo(
    env: VecEnv,
    learner: PPO,
    *,
    seed: int,
    env_steps_done: int = 0,
    on_iteration: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> int:
    """Collect and update until ``learner.cfg.env_steps`` env steps; returns the count.

    ``on_iteration(env_steps, scalars)`` after every update gets losses, ``episode/*`` means
    of the episodes that finished in that rollout and timings; returning ``True`` stops early.
    """
    cfg, dev, n = learner.cfg, learner.device, env.num_envs
    steps_per_env, minibatches = schedule_for_envs(cfg, n)
    m = learner.model
    d_c = sum(m.obs_dims[k] for k in m.critic_keys)
    ro = Rollout.empty(steps_per_env, n, m.obs_dims["state"], d_c, m.action_dim, dev)
    obs = _to(env.reset(seed=seed), dev)
    steps = env_steps_done
    while steps < cfg.env_steps:
        t0 = time.perf_counter()
        tally = EpisodeTally()
        for t in range(steps_per_env):
            out = learner.explore(obs)
            # the env gets the clipped action; the log-prob is of the unclipped sample
            obs_next, reward, term, trunc, info = env.step(out["action"].clamp(-1.0, 1.0))
            reward, term, trunc = reward.to(dev), term.to(dev), trunc.to(dev)
            # on CPU a host check is free and skips most critic passes; on a GPU it would sync
            if dev.type != "cpu" or bool(trunc.any()):
                final_v = learner.value(_to(info["final_obs"], dev))
                reward = bootstrap_truncated(reward, term, trunc, final_v, cfg.gamma)
            done = term | trunc
            ro.actor_in[t], ro.critic_in[t] = out["actor_in"], out["critic_in"]
            ro.actions[t], ro.log_probs[t], ro.mu[t] = out["action"], out["log_prob"], out["mu"]
            ro.values[t], ro.rewards[t], ro.dones[t] = out["value"], reward, done.float()
            tally.add(done, info["episode"])
            obs = _to(obs_next, dev)
        ro.std = m.log_std.detach().exp().clone()
        ro.advantages, ro.returns = gae(
            ro.rewards, ro.values, ro.dones, learner.value(obs), cfg.gamma, cfg.lam
        )
        t1 = time.perf_counter()
        scalars = learner.update(ro, minibatches)
        t2 = time.perf_counter()
        steps += n * steps_per_env
        scalars |= {f"episode/{k}": v for k, v in tally.means().items()}
        scalars |= {
            "fps": n * steps_per_env / (t2 - t0),
            "collect_s": t1 - t0,
            "update_s": t2 - t1,
            "steps_per_env": steps_per_env,
            "minibatches": minibatches,
        }
        if on_iteration is not None and on_iteration(steps, scalars):
            break
    return steps

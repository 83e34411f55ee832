"""The deployable half of a PPO checkpoint (``robot-rl train ppo``): the actor MLP and the
running statistics of its ``state`` input, as a policy with the shape of every robot_rl policy
(``act(obs) -> (B, 1, A)``: a chunk of one action). The trainer (``robot_rl.algos.ppo``) builds
its networks from the same :func:`mlp` and :class:`RunningNorm`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from robot_rl.core.errors import ConfigError
from robot_rl.policies.observations import STATE

MODEL_FILE = "ppo.safetensors"
ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), ACTIVATIONS[activation]()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean/variance of a ``(B, D)`` stream (Chan et al.'s parallel Welford update, in
    float64 so billions of samples do not drown new ones), normalizing to ``±clip``."""

    def __init__(self, dim: int, clip: float) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(B, D)`` into the statistics."""
        x = x.to(torch.float64)
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = self.var.clamp_min(1e-8).sqrt().to(x.dtype)
        return ((x - self.mean.to(x.dtype)) / std).clamp(-self.clip, self.clip)


@dataclass(frozen=True)
class PPOActorConfig:
    """What a runner and an evaluation report read of a policy's config (as
    :class:`~robot_rl.policies.PolicyConfig`): one observation frame in, a chunk of one action
    out, no cameras, no language."""

    state_dim: int
    action_dim: int
    task: str = ""
    state_names: tuple[str, ...] = ()
    obs_horizon: int = 1
    horizon: int = 1
    action_steps: int = 1
    cameras: tuple[str, ...] = ()
    instructions: tuple[str, ...] = ()
    uses_text: bool = False
    head: str = "mlp"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PPOActor(nn.Module):
    """The deterministic (mean) action of the normalized ``state``, clipped to ``[-1, 1]``."""

    name: ClassVar[str] = "ppo"

    def __init__(
        self, config: PPOActorConfig, hidden: tuple[int, ...], activation: str, clip: float
    ) -> None:
        super().__init__()
        self.config = config
        self.norm = RunningNorm(config.state_dim, clip)
        self.actor = mlp(config.state_dim, hidden, config.action_dim, activation)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], generator=None, steps=None, noise_scale=1.0) -> torch.Tensor:
        """``obs["state"]`` (or ``obs["observation.state"]``, as the batched runner names it)
        ``(B, D)`` or a window ``(B, To, D)`` (its last frame) ⇒ the action chunk ``(B, 1, A)``.
        The mean action: ``generator``, ``steps`` and ``noise_scale`` (a sampler's) do not
        apply."""
        state = torch.as_tensor(obs["state"] if "state" in obs else obs[STATE])
        if state.dim() == 3:
            state = state[:, -1]
        state = state.to(self.norm.mean.device, torch.float32)
        return self.actor(self.norm(state)).clamp(-1.0, 1.0)[:, None]

    def reset(self) -> None:
        """Stateless."""

    def compile_for_inference(self, batch_size: int = 1) -> None:
        """Nothing to compile: one small MLP."""


def is_ppo_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / MODEL_FILE).is_file()


def read_ppo_checkpoint(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` and the tensors of a PPO checkpoint directory, without pickle; a missing
    or damaged file is a one-line :class:`ConfigError`."""
    try:
        meta = json.loads((directory / "config.json").read_text())
        tensors = load_file(str(directory / MODEL_FILE))
    except FileNotFoundError as e:
        raise ConfigError(f"{directory} is not a PPO checkpoint: {e.filename} is missing") from None
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise ConfigError(f"PPO checkpoint {directory} is unreadable: {e}") from None
    return meta, tensors


def load_ppo_actor(directory: str | Path) -> PPOActor:
    """The actor of a PPO checkpoint directory (``config.json`` + ``ppo.safetensors``; the
    critic and optimizer state are not read). A missing or damaged file is a ConfigError."""
    directory = Path(directory)
    meta, tensors = read_ppo_checkpoint(directory)
    algo = meta.get("algo", {})
    try:
        config = PPOActorConfig(
            state_dim=int(meta["obs_dims"]["state"]),
            action_dim=int(meta["action_dim"]),
            task=str(meta.get("task", "")),
        )
        clip = float(algo.get("obs_clip", 10.0)) if algo.get("normalize_obs", True) else math.inf
        actor = PPOActor(
            config,
            tuple(algo.get("actor_hidden", (256, 128, 64))),
            algo.get("activation", "elu"),
            clip,
        )
        state = {k: v for k, v in tensors.items() if k.startswith("actor.")}
        prefix = "norms.state."
        state |= {f"norm.{k[len(prefix) :]}": v for k, v in tensors.items() if k.startswith(prefix)}
        actor.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        msg = str(e).splitlines()[0]
        raise ConfigError(f"PPO checkpoint {directory} does not match its config: {msg}") from None
    return actor.eval()

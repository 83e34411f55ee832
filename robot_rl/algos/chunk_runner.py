"""Receding-horizon execution of an action-chunking policy in a batched VecEnv.

Every env keeps its own observation window and action queue. A policy predicts ``T`` actions from
``To`` observations; the env executes the first ``Ta`` of them, then the policy replans from fresh
observations (diffusion_policy's To/Ta/T scheme). Envs replan independently: an env that
auto-resets drops its queue and starts a new window filled with its first observation (the same
convention the training windows use at an episode's start), while the others keep executing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from robot_rl.core.errors import ConfigError
from robot_rl.envs.vec_env import Obs
from robot_rl.policies import Policy
from robot_rl.policies.observations import IMAGE_PREFIX, STATE
from robot_rl.policies.policy import check_noise_scale
from robot_rl.policies.tokenizer import tokenize

if TYPE_CHECKING:
    from robot_rl.envs.task_env import TaskEnv


class ChunkRunner:
    """Turns a chunking :class:`Policy` into a per-step controller ``obs -> action (N, A)``.

    Args:
        policy: the policy (its config gives ``obs_horizon``, ``horizon`` and ``action_steps``).
        num_envs: N.
        instructions: the env's instruction strings, indexed by ``obs["instruction"]``; needed
            when the policy is conditioned on language.
        cameras: the env's camera names in the order ``obs["image"]`` stacks them (3 channels
            each); needed when the policy reads cameras.
        state_names: the env's state entry names; needed when the policy reads a subset of
            them (``config.state_names``).
        action_steps: ``Ta`` override (default: the policy's ``action_steps``).
        denoise_steps: sampler steps override (default: the policy's).
        noise_scale: multiplies the sampling noise (``Policy.act``); 0: deterministic flow.
        generator: fixes the sampling noise.

    Call :meth:`reset` with the ids of envs that (auto-)reset, before the next step.
    """

    def __init__(
        self,
        policy: Policy,
        num_envs: int,
        *,
        instructions: Sequence[str] = (),
        cameras: Sequence[str] = (),
        state_names: Sequence[str] = (),
        action_steps: int | None = None,
        denoise_steps: int | None = None,
        noise_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        cfg = policy.config
        self.policy, self.num_envs = policy, num_envs
        self.action_steps = cfg.action_steps if action_steps is None else action_steps
        if not 1 <= self.action_steps <= cfg.horizon:
            raise ConfigError(
                f"action_steps must be in [1, horizon={cfg.horizon}], got {self.action_steps}"
            )
        missing = [c for c in cfg.cameras if c not in cameras]
        if missing:
            raise ConfigError(
                f"the policy reads cameras {list(cfg.cameras)} but the env renders "
                f"{list(cameras)}; enable them with task.image.enabled=true "
                f"task.image.cameras={list(cfg.cameras)}"
            )
        self._channels = {c: 3 * list(cameras).index(c) for c in cfg.cameras}
        self._state_index: torch.Tensor | None = None
        if cfg.state_names:
            unknown = [n for n in cfg.state_names if n not in state_names]
            if unknown:
                raise ConfigError(
                    f"the policy reads state entries {unknown[:4]} that the env does not have"
                )
            self._state_index = torch.tensor([list(state_names).index(n) for n in cfg.state_names])
        self.noise_scale = check_noise_scale(noise_scale)
        self.denoise_steps, self.generator = denoise_steps, generator
        self._tokens = (
            tokenize(list(instructions), cfg.text.vocab, cfg.text.max_len)
            if cfg.uses_text
            else None
        )
        if cfg.uses_text and not instructions:
            raise ConfigError("the policy is conditioned on language: pass the env's instructions")
        self._window: dict[str, torch.Tensor] = {}
        self._queue = torch.zeros(num_envs, cfg.horizon, cfg.action_dim)
        self._next = torch.full((num_envs,), self.action_steps, dtype=torch.long)
        self._fresh = torch.ones(num_envs, dtype=torch.bool)
        self.replans = 0
        """Number of policy calls so far (for latency accounting)."""

    @classmethod
    def for_env(
        cls,
        policy: Policy,
        env: TaskEnv,
        *,
        seed: int = 0,
        action_steps: int | None = None,
        denoise_steps: int | None = None,
        noise_scale: float = 1.0,
    ) -> ChunkRunner:
        """A runner for every env of a task env: its instructions, cameras and state names,
        sampling noise seeded by ``seed``."""
        return cls(
            policy,
            env.num_envs,
            instructions=env.instructions,
            cameras=env.cfg.image.cameras if env.cfg.image.enabled else (),
            state_names=env.state_names,
            action_steps=action_steps,
            denoise_steps=denoise_steps,
            noise_scale=noise_scale,
            generator=torch.Generator().manual_seed(seed),
        )

    def reset(self, ids: torch.Tensor | None = None) -> None:
        """Envs ``ids`` (k,) start a new episode: empty their queue and window."""
        ids = torch.arange(self.num_envs) if ids is None else ids.cpu()
        self._fresh[ids] = True
        self._next[ids] = self.action_steps

    def __call__(self, obs: Obs) -> torch.Tensor:
        """The action ``(N, A)`` each env executes now."""
        self._push(obs)
        need = self._next >= self.action_steps
        if bool(need.any()):
            ids = need.nonzero().flatten()
            batch = {k: v[ids] for k, v in self._window.items()}
            if self._tokens is not None:
                batch["instruction"] = self._tokens[obs["instruction"].cpu()[ids]]
            chunk = self.policy.act(
                batch,
                generator=self.generator,
                steps=self.denoise_steps,
                noise_scale=self.noise_scale,
            )
            self._queue[ids] = chunk.float().cpu()
            self._next[ids] = 0
            self.replans += 1
        action = self._queue[torch.arange(self.num_envs), self._next]
        self._next += 1
        return action

    def _push(self, obs: Obs) -> None:
        """Append this step's frame to every env's window (a fresh env's window is all it)."""
        state = obs["state"].float().cpu()
        frame = {STATE: state if self._state_index is None else state[:, self._state_index]}
        for cam, c in self._channels.items():
            frame[IMAGE_PREFIX + cam] = obs["image"][:, c : c + 3].cpu()
        to = self.policy.config.obs_horizon
        for k, x in frame.items():
            x = x.unsqueeze(1)
            if k not in self._window:
                self._window[k] = x.expand(-1, to, *x.shape[2:]).clone()
                continue
            w = torch.cat([self._window[k][:, 1:], x], dim=1)
            fresh = self._fresh
            if bool(fresh.any()):
                w[fresh] = x[fresh].expand(-1, to, *x.shape[2:])
            self._window[k] = w
        self._fresh[:] = False

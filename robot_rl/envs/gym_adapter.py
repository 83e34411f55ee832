"""Each task as a single-env gymnasium environment (``robot_rl/ArmPush-v0`` …), so
Stable-Baselines3 and other gymnasium tools can use it. It wraps a ``num_envs=1`` VecEnv; for
throughput use :func:`robot_rl.envs.make` with many envs instead."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robot_rl.envs.registry import TASKS, make


class GymTaskEnv(gym.Env):
    """gymnasium ``Env`` over one env of a registered task; observations are the ``state`` vector
    (or a Dict with ``image`` when images are enabled)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str, render_mode: str | None = None, **overrides: Any):
        self._env = make(task, 1, **overrides)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1 / self._env.control_dt)}
        spec = self._env.observation_spec
        state = gym.spaces.Box(-np.inf, np.inf, shape=spec["state"].shape, dtype=np.float32)
        if "image" in spec:
            self.observation_space = gym.spaces.Dict(
                {
                    "state": state,
                    "image": gym.spaces.Box(0, 255, shape=spec["image"].shape, dtype=np.uint8),
                }
            )
        else:
            self.observation_space = state
        a = self._env.action_spec
        self.action_space = gym.spaces.Box(a.low, a.high, shape=a.shape, dtype=np.float32)
        self._needs_reset = True

    def _convert(self, obs: dict[str, torch.Tensor]):
        state = obs["state"][0].numpy()
        if isinstance(self.observation_space, gym.spaces.Dict):
            return {"state": state, "image": obs["image"][0].numpy()}
        return state

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and self._needs_reset and self.np_random is not None:
            seed = int(self.np_random.integers(2**31))
        obs = self._env.reset(seed=seed)
        self._needs_reset = False
        return self._convert(obs), {}

    def step(self, action):
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).view(1, -1)
        obs, reward, terminated, truncated, info = self._env.step(a)
        out_info = {
            "is_success": bool(info["success"][0]),
            **{f"reward/{k}": float(v[0]) for k, v in info["reward_terms"].items()},
        }
        # The VecEnv already auto-reset; gymnasium expects the final observation here. The reset()
        # gymnasium calls next draws a fresh episode again (an extra reset, not a wrong one), and
        # render() between the two shows the new episode's first frame.
        final = info["final_obs"]
        return (
            self._convert(final),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            out_info,
        )

    def render(self):
        return self._env.render()[0].numpy()

    def close(self):
        self._env.close()


def register_gym_envs() -> None:
    """Register every task under its gymnasium id (idempotent)."""
    for name in TASKS.names():
        spec = TASKS.get(name)
        if spec.gym_id not in gym.registry:
            gym.register(
                id=spec.gym_id,
                entry_point=GymTaskEnv,
                kwargs={"task": name},
                max_episode_steps=None,
                disable_env_checker=True,
            )

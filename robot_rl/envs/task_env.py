"""The generic batched RL loop over a physics backend: actions, delays, noise, rewards as named
terms, success/failure, time limits, automatic reset and domain randomization.

Task families subclass :class:`TaskEnv` and fill in the hooks (``_reset_task``, ``_apply_action``,
``_observe_state``, ``_reward_terms``, ``_success``, ``_failure``); they never touch the simulator
directly, only the :class:`SimBackend` interface (:class:`PhysicsBackend` for MJCF models).
"""

from __future__ import annotations

import secrets
from abc import abstractmethod
from collections.abc import Callable

import torch

from robot_rl.core.threads import torch_threads
from robot_rl.envs.backends import SimBackend
from robot_rl.envs.config import TaskConfig
from robot_rl.envs.randomization import DomainRandomizer
from robot_rl.envs.vec_env import Obs, TensorSpec, VecEnv


class TaskEnv(VecEnv):
    """A :class:`VecEnv` made of a task (this class's hooks) and a physics backend."""

    cfg: TaskConfig
    backend: SimBackend
    state_names: list[str]
    """Name of every entry of the ``state`` observation (dataset feature names)."""
    video_camera: str = "front"
    """The camera evaluation videos are filmed through."""

    def __init__(self, cfg: TaskConfig, backend: SimBackend, action_dim: int, seed: int | None):
        self.cfg = cfg
        self.backend = backend
        self.num_envs = backend.num_envs
        self.device = backend.device
        self.max_episode_steps = cfg.episode_length
        self.instructions = [cfg.instruction]
        n, dev = self.num_envs, self.device
        self.action_spec = TensorSpec((action_dim,), torch.float32, -1.0, 1.0)
        self._gen = torch.Generator(device=dev)
        # No seed: a random one, without touching (reseeding) torch's global generator.
        self._gen.manual_seed(seed if seed is not None else secrets.randbits(62))
        self.randomizer = self._make_randomizer()
        k = cfg.randomization.action_delay
        self._action_hist = torch.zeros(n, k + 1, action_dim, device=dev)
        self._delay = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_step = torch.zeros(n, dtype=torch.long, device=dev)
        self.step_observer: Callable[[TaskEnv], None] | None = None
        """Called after the physics of every step, before finished envs reset: sees the state
        each step reached, terminal ones included (e.g. a hard-limit violation counter)."""
        self.episode_return = torch.zeros(n, device=dev)
        self._instruction = torch.zeros(n, dtype=torch.long, device=dev)
        self._all = torch.arange(n, device=dev)
        state_dim = len(self.state_names)
        self.observation_spec = {
            "state": TensorSpec((state_dim,), torch.float32, names=tuple(self.state_names)),
            "instruction": TensorSpec((), torch.int64),
        }
        if cfg.image.enabled:
            c = 3 * len(cfg.image.cameras)
            self.observation_spec["image"] = TensorSpec(
                (c, cfg.image.height, cfg.image.width), torch.uint8
            )

    # ----------------------------------------------------------------- hooks for task families
    @abstractmethod
    def _reset_task(self, ids: torch.Tensor) -> None:
        """Write the initial state of envs ``ids`` (k,) into the backend (robot, objects, goals)."""

    @abstractmethod
    def _apply_action(self, action: torch.Tensor) -> None:
        """Turn the (delayed) action (N, action_dim) into actuator controls."""

    @abstractmethod
    def _observe_state(self) -> torch.Tensor:
        """State observation without noise, (N, state_dim) float32."""

    @abstractmethod
    def _reward_terms(self, action: torch.Tensor, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted reward terms, each (N,) float32; ``success`` is this step's ``_success()``."""

    @abstractmethod
    def _success(self) -> torch.Tensor:
        """(N,) bool: the task is accomplished in the current state."""

    def _failure(self) -> torch.Tensor:
        """(N,) bool: an unrecoverable state (e.g. object off the table); ends the episode."""
        return torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def _neutral_action(self) -> torch.Tensor:
        """(action_dim,) action a delayed env applies before its first real one."""
        return torch.zeros(self.action_dim, device=self.device)

    def _episode_metrics(self, success: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task-specific measures of an episode, each (N,) float, read where it just ended
        (e.g. a race's lap time and whether it crashed); NaN where a measure does not apply.
        Evaluations report the mean of each over the episodes where it is not NaN."""
        return {}

    def _make_randomizer(self):
        """The per-env parameter randomizer: an object whose ``apply(ids)`` draws new physical
        parameters for envs being reset. Default: MuJoCo model fields
        (:class:`DomainRandomizer`)."""
        return DomainRandomizer(self.cfg.randomization, self.backend, self._gen)

    def _after_physics(self, ids: torch.Tensor | None = None) -> None:  # noqa: B027 - optional hook
        """Refresh per-step caches after the backend stepped (``ids`` None: every env) or reset
        envs ``ids`` (k,)."""

    # ----------------------------------------------------------------- the loop
    def reset(self, seed: int | None = None) -> Obs:
        with self._threads():
            return self._reset_all(seed)

    def step(
        self, action: torch.Tensor
    ) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        with self._threads():
            return self._step(action)

    def _threads(self):
        # Small batched math on CPU runs best on one torch thread (see core/threads.py); the
        # parallelism is the simulator's thread pool and the batch dimension.
        return torch_threads(1 if self.device.type == "cpu" else torch.get_num_threads())

    def _reset_all(self, seed: int | None) -> Obs:
        if seed is not None:
            self._gen.manual_seed(seed)
        self._reset_ids(self._all)
        return self._observe()

    def _step(
        self, action: torch.Tensor
    ) -> tuple[Obs, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        if action.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"action must have shape ({self.num_envs}, {self.action_dim}), "
                f"got {tuple(action.shape)}"
            )
        action = action.to(self.device, torch.float32)
        if not torch.isfinite(action).all():
            bad = (~torch.isfinite(action)).any(-1).nonzero().flatten().tolist()
            raise ValueError(f"action has NaN/Inf entries in envs {bad[:8]}")
        action = action.clamp(self.action_spec.low, self.action_spec.high)
        applied = self._delayed(action)
        self._apply_action(applied)
        self.backend.step(self.substeps)
        self._after_physics()
        if self.step_observer is not None:  # the state this step reached, before any reset
            self.step_observer(self)
        self.episode_step += 1

        success = self._success()
        terms = self._reward_terms(applied, success)
        weights = self.cfg.reward_weights
        reward = torch.zeros(self.num_envs, device=self.device)
        for name, value in terms.items():
            reward += weights.get(name, 0.0) * value
        terminated = self._failure()
        if self.cfg.terminate_on_success:
            terminated = terminated | success
        truncated = (self.episode_step >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        self.episode_return += reward

        obs = self._observe()
        info: dict = {
            "success": success,
            "reward_terms": terms,
            "episode": {
                "return": self.episode_return.clone(),
                "length": self.episode_step.clone(),
                "success": success.clone(),
                "metrics": self._episode_metrics(success),
            },
            "final_obs": obs,
        }
        if done.any():
            ids = done.nonzero().flatten()
            self._reset_ids(ids)
            fresh = self._observe()
            # Only finished envs take the new episode's observation; the others keep theirs
            # (same noise draw as in final_obs).
            obs = {k: torch.where(_rows(done, v), fresh[k], v) for k, v in obs.items()}
        return obs, reward, terminated, truncated, info

    def _reset_ids(self, ids: torch.Tensor) -> None:
        self.randomizer.apply(ids)
        self.backend.reset_state(ids)
        self._reset_task(ids)
        self.backend.forward(ids)
        self._after_physics(ids)
        self.episode_step[ids] = 0
        self.episode_return[ids] = 0.0
        self._action_hist[ids] = self._neutral_action()
        k = self.cfg.randomization.action_delay
        if k:
            self._delay[ids] = torch.randint(
                0, k + 1, (len(ids),), generator=self._gen, device=self.device
            )

    def _delayed(self, action: torch.Tensor) -> torch.Tensor:
        if self._action_hist.shape[1] == 1:
            return action
        self._action_hist = torch.roll(self._action_hist, 1, dims=1)
        self._action_hist[:, 0] = action
        return self._action_hist[self._all, self._delay]

    def _observe(self) -> Obs:
        state = self._observe_state()
        std = self.cfg.randomization.obs_noise_std
        if std > 0:
            noise = torch.randn(state.shape, generator=self._gen, device=self.device)
            state = state + std * noise
        obs = {"state": state, "instruction": self._instruction.clone()}
        if self.cfg.image.enabled:
            obs["image"] = self.render_cameras()
        return obs

    def render_cameras(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Configured cameras stacked on channels: uint8 (k, 3·num_cameras, H, W)."""
        im = self.cfg.image
        frames = [self.backend.render(cam, ids, im.height, im.width) for cam in im.cameras]
        return torch.cat(frames, dim=-1).permute(0, 3, 1, 2).contiguous().to(self.device)

    def render(
        self,
        camera: str = "front",
        height: int = 240,
        width: int = 320,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One camera at any size, for videos: uint8 (k, H, W, 3)."""
        return self.backend.render(camera, ids, height, width)

    @property
    def substeps(self) -> int:
        return self._substeps

    def close(self) -> None:
        self.backend.close()


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) bool ⇒ broadcastable against ``like`` (N, ...)."""
    return mask.view(-1, *([1] * (like.dim() - 1)))

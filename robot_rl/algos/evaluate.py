"""Evaluate a policy in the batched simulator: success with a 95% interval, returns, lengths, and
rollout videos of the first few episodes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from robot_rl.algos.chunk_runner import ChunkRunner
from robot_rl.algos.rollout import RolloutStats, rollout
from robot_rl.envs.task_env import TaskEnv
from robot_rl.envs.vec_env import Obs
from robot_rl.policies import Policy


@dataclass
class EvalResult:
    """What one evaluation measured."""

    stats: RolloutStats
    videos: list[np.ndarray] = field(default_factory=list)
    """First episode of each filmed env: ``(T, H, W, 3)`` uint8."""
    seconds: float = 0.0
    policy_seconds: float = 0.0
    """Wall time spent inside the policy (sampling chunks)."""
    replans: int = 0
    safety: dict[str, float] = field(default_factory=dict)
    """With a safety chain in the loop: interventions per component, violations per 1000 steps."""

    def summary(self) -> dict[str, float]:
        out = self.stats.summary()
        out["wall_seconds"] = self.seconds
        out["policy_ms_per_replan"] = 1e3 * self.policy_seconds / max(self.replans, 1)
        return out


class _Filmer:
    """Renders envs ``0..k-1`` every step until their first episode ends."""

    def __init__(self, env: TaskEnv, k: int, camera: str, size: tuple[int, int]) -> None:
        self.env, self.camera, self.size = env, camera, size
        self.ids = torch.arange(min(k, env.num_envs))
        self.frames: list[list[np.ndarray]] = [[] for _ in range(len(self.ids))]
        self.live = torch.ones(len(self.ids), dtype=torch.bool)

    def capture(self) -> None:
        if not bool(self.live.any()):
            return
        ids = self.ids[self.live]
        h, w = self.size
        images = self.env.render(self.camera, h, w, ids=ids.to(self.env.device)).cpu().numpy()
        for row, i in enumerate(ids.tolist()):
            self.frames[i].append(images[row])

    def done(self, ids: torch.Tensor) -> None:
        for i in ids.cpu().tolist():
            if i < len(self.live):
                self.live[i] = False

    def videos(self) -> list[np.ndarray]:
        return [np.stack(f) for f in self.frames if f]


def evaluate_policy(
    policy: Policy,
    env: TaskEnv,
    episodes: int,
    *,
    seed: int | None = 0,
    video_episodes: int = 0,
    video_camera: str | None = None,
    video_size: tuple[int, int] = (240, 320),
    action_steps: int | None = None,
    denoise_steps: int | None = None,
    noise_scale: float = 1.0,
    progress: Callable[[int], None] | None = None,
    wrap: Callable[[ChunkRunner], Callable[[Obs], torch.Tensor]] | None = None,
) -> EvalResult:
    """Run ``policy`` (receding horizon, see :class:`ChunkRunner`) for ``episodes`` episodes;
    ``wrap`` turns the runner into the controller actually run (e.g. base + residual).

    ``video_episodes`` envs are filmed through ``video_camera`` (default: the env's
    ``video_camera``) during their first episode.
    """
    runner = ChunkRunner.for_env(
        policy,
        env,
        seed=seed or 0,
        action_steps=action_steps,
        denoise_steps=denoise_steps,
        noise_scale=noise_scale,
    )
    act = runner if wrap is None else wrap(runner)
    camera = video_camera or env.video_camera
    filmer = _Filmer(env, video_episodes, camera, video_size) if video_episodes else None
    policy_time = 0.0

    def controller(obs):
        nonlocal policy_time
        if filmer is not None:
            filmer.capture()
        t0 = time.perf_counter()
        action = act(obs)
        policy_time += time.perf_counter() - t0
        return action

    def on_reset(ids: torch.Tensor) -> None:
        runner.reset(ids)
        if filmer is not None and runner.replans:  # the first call is the initial reset
            filmer.done(ids)

    start = time.perf_counter()
    was_training = policy.training
    policy.eval()
    try:
        stats = rollout(env, controller, episodes, seed=seed, on_reset=on_reset, progress=progress)
    finally:
        policy.train(was_training)
    return EvalResult(
        stats=stats,
        videos=filmer.videos() if filmer is not None else [],
        seconds=time.perf_counter() - start,
        policy_seconds=policy_time,
        replans=runner.replans,
    )

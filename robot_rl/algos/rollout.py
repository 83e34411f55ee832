"""Batched rollouts of a controller in a VecEnv: evaluation and episode collection.

Collection is unbiased with respect to episode length: exactly the first ``episodes`` episodes to
*start* are kept, so short (e.g. successful) episodes are not over-represented the way they would be
by keeping the first ones to *finish*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from robot_rl.algos.stats import wilson_interval
from robot_rl.envs.vec_env import Obs, VecEnv

Controller = Callable[[Obs], torch.Tensor]
"""Maps a batched observation to a batched action (N, action_dim)."""


@dataclass
class RolloutStats:
    """Outcome of a set of finished episodes."""

    successes: list[bool] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    """Task-specific per-episode measures (``info["episode"]["metrics"]``), NaN where one did
    not apply, e.g. a race's ``lap_time`` (laps completed only) and ``crash``."""

    @property
    def episodes(self) -> int:
        return len(self.successes)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def success_ci(self) -> tuple[float, float]:
        return wilson_interval(sum(self.successes), self.episodes)

    def summary(self) -> dict[str, float]:
        lo, hi = self.success_ci
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "success_ci95_low": lo,
            "success_ci95_high": hi,
            "mean_return": float(np.mean(self.returns)) if self.returns else 0.0,
            "mean_length": float(np.mean(self.lengths)) if self.lengths else 0.0,
        } | {f"mean_{k}": _nanmean(v) for k, v in self.metrics.items()}


def _nanmean(values: list[float]) -> float:
    """Mean over the finite values; NaN when there are none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def rollout(
    env: VecEnv,
    controller: Controller,
    episodes: int,
    *,
    seed: int | None = None,
    on_reset: Callable[[torch.Tensor], None] | None = None,
    on_episode: Callable[[int, dict[str, torch.Tensor], dict], None] | None = None,
    record_images: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RolloutStats:
    """Run ``controller`` until ``episodes`` episodes (the first to start) have finished.

    Args:
        env: the batched env (it is reset here).
        controller: obs ⇒ action.
        episodes: how many episodes to finish and report.
        seed: passed to ``env.reset``.
        on_reset: called with the ids of envs that just auto-reset (e.g. an expert's ``reset``).
        on_episode: called per kept episode with (env index, frames, episode info); frames hold
            ``observation.state`` (T, D), ``action`` (T, A), ``next.reward`` (T, 1), ``next.done``
            (T, 1), ``next.success`` (T, 1), ``instruction`` (T,) and with ``record_images`` the
            env's ``image`` observation (T, C, H, W).
        progress: called with the number of episodes finished so far.
    """
    n = env.num_envs
    obs = env.reset(seed=seed)
    if on_reset is not None:
        on_reset(torch.arange(n, device=env.device))
    recording = torch.zeros(n, dtype=torch.bool)
    started = min(n, episodes)
    recording[:started] = True
    start_step = torch.zeros(n, dtype=torch.long)
    history: list[dict[str, torch.Tensor]] = []
    stats = RolloutStats()
    t = 0
    while stats.episodes < episodes:
        action = controller(obs)
        step_rec = {
            "observation.state": obs["state"].cpu(),
            "action": action.cpu(),
            "instruction": obs["instruction"].cpu(),
        }
        if record_images and "image" in obs:
            step_rec["image"] = obs["image"].cpu()
        obs, reward, terminated, truncated, info = env.step(action)
        done = (terminated | truncated).cpu()
        step_rec["next.reward"] = reward.cpu()[:, None]
        step_rec["next.done"] = terminated.cpu()[:, None]
        step_rec["next.success"] = info["success"].cpu()[:, None]
        history.append(step_rec)
        finished = (done & recording).nonzero().flatten().tolist()
        ep = info["episode"]
        for i in finished:
            stats.successes.append(bool(ep["success"][i]))
            stats.returns.append(float(ep["return"][i]))
            stats.lengths.append(int(ep["length"][i]))
            for k, v in ep.get("metrics", {}).items():
                stats.metrics.setdefault(k, []).append(float(v[i]))
            if on_episode is not None:
                frames = {
                    k: torch.stack([h[k][i] for h in history[int(start_step[i]) :]])
                    for k in step_rec
                }
                on_episode(
                    i,
                    frames,
                    {
                        "success": stats.successes[-1],
                        "return": stats.returns[-1],
                        "length": stats.lengths[-1],
                    },
                )
            if progress is not None:
                progress(stats.episodes)
            if stats.episodes >= episodes:
                break
        t += 1
        if done.any():
            ids = done.nonzero().flatten()
            if on_reset is not None:
                on_reset(ids.to(env.device))
            for i in ids.tolist():
                keep = started < episodes
                recording[i] = keep
                if keep:
                    started += 1
                    start_step[i] = t
        # Drop history no recording env still needs.
        live = start_step[recording]
        oldest = int(live.min()) if len(live) else t
        if oldest >= 64:
            history = history[oldest:]
            start_step -= oldest
            t -= oldest
    return stats

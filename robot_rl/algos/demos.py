"""Demonstrations: map a VecEnv's observations and actions onto dataset features (LeRobot v3
naming) and record scripted-expert episodes into a dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robot_rl.algos.rollout import RolloutStats, rollout
from robot_rl.core.errors import ConfigError
from robot_rl.data import DatasetWriter, Feature
from robot_rl.envs.config import TaskConfig
from robot_rl.envs.task_env import TaskEnv


def dataset_features(env: TaskEnv) -> dict[str, Feature]:
    """Features of the episodes ``env`` produces: state, action, reward/done/success, and one video
    stream per configured camera when images are enabled."""
    state = env.observation_spec["state"]
    act = env.action_spec
    feats = {
        "observation.state": Feature("float32", state.shape, list(state.names or [])),
        "action": Feature("float32", act.shape, list(act.names or [])),
        "next.reward": Feature("float32", (1,)),
        "next.done": Feature("bool", (1,)),
        "next.success": Feature("bool", (1,)),
    }
    im = env.cfg.image
    if im.enabled:
        for cam in im.cameras:
            feats[f"observation.images.{cam}"] = Feature("video", (im.height, im.width, 3))
    return feats


def episode_frames(frames: dict[str, torch.Tensor], env: TaskEnv) -> dict[str, np.ndarray]:
    """Turn one episode's stacked step records (from :func:`rollout`) into dataset columns."""
    out = {
        "observation.state": frames["observation.state"].numpy().astype(np.float32),
        "action": frames["action"].numpy().astype(np.float32),
        "next.reward": frames["next.reward"].numpy().astype(np.float32),
        "next.done": frames["next.done"].numpy().astype(bool),
        "next.success": frames["next.success"].numpy().astype(bool),
    }
    if "image" in frames:
        img = frames["image"]  # (T, 3·cams, H, W)
        for k, cam in enumerate(env.cfg.image.cameras):
            out[f"observation.images.{cam}"] = img[:, 3 * k : 3 * k + 3].permute(0, 2, 3, 1).numpy()
    return out


def make_env_and_expert(task_cfg: TaskConfig, num_envs: int, seed: int, noise: float):
    """``num_envs`` envs of ``task_cfg`` and their scripted expert."""
    from robot_rl.envs import make
    from robot_rl.envs.experts import make_expert

    env = make(task_cfg, num_envs, seed=seed)
    return env, make_expert(task_cfg.name, env, noise=noise, seed=seed)


def check_resumable(writer: DatasetWriter, features: dict, fps: int) -> None:
    """The episodes to append must have the dataset's rate and features."""
    if writer.fps != fps:
        raise ConfigError(
            f"resume: dataset {writer.root} is at {writer.fps} fps, this task at {fps}"
        )
    have = {k: tuple(f.shape) for k, f in writer.features.items()}
    want = {k: tuple(f.shape) for k, f in features.items()}
    if have != want:
        raise ConfigError(
            f"resume: dataset {writer.root} has features {have}, this task produces {want}"
        )


def collect_demos(
    task_cfg: TaskConfig,
    out: Path,
    episodes: int,
    *,
    num_envs: int = 16,
    seed: int = 0,
    noise: float = 0.0,
    overwrite: bool = False,
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RolloutStats:
    """Record ``episodes`` scripted-expert episodes of ``task_cfg`` into a LeRobot dataset at
    ``out`` (camera video too when ``task_cfg.image.enabled``); returns the expert's stats.

    ``resume`` appends to an existing dataset, continuing with a fresh seed (the same seed would
    replay, and so duplicate, the episodes already there)."""
    writer = DatasetWriter.open(out) if resume else None
    seed = seed + (writer.num_episodes if writer is not None else 0)
    try:
        env, expert = make_env_and_expert(task_cfg, num_envs, seed, noise)
        features = dataset_features(env)
        fps = round(1.0 / env.control_dt)
        if writer is not None:
            check_resumable(writer, features, fps)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    if writer is None:
        try:
            writer = DatasetWriter.create(
                out,
                fps=fps,
                features=features,
                robot_type=env.profile.robot_type,
                overwrite=overwrite,
            )
        except BaseException:
            env.close()
            raise

    def on_episode(i: int, frames: dict[str, torch.Tensor], ep: dict) -> None:
        writer.add_episode(
            episode_frames(frames, env),
            task=task_cfg.instruction,
            extras={"success": ep["success"]},
        )

    try:
        with writer:
            return rollout(
                env,
                expert.act,
                episodes,
                seed=seed,
                on_reset=expert.reset,
                on_episode=on_episode,
                record_images=task_cfg.image.enabled,
                progress=progress,
            )
    finally:
        env.close()

"""Map a VecEnv's observations and actions onto dataset features (LeRobot v3 naming)."""

from __future__ import annotations

import numpy as np
import torch

from robot_rl.data import Feature
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

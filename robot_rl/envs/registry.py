"""The task registry and the ``make`` factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robot_rl.core import ConfigError, Registry, asset_root
from robot_rl.envs.config import TaskConfig, build_config
from robot_rl.envs.vec_env import VecEnv


@dataclass(frozen=True)
class TaskSpec:
    name: str
    env_cls: type
    config_cls: type[TaskConfig]
    gym_id: str


TASKS: Registry[TaskSpec] = Registry("task")


def register_task(name: str, config_cls: type[TaskConfig], gym_id: str):
    """Class decorator: register a :class:`TaskEnv` subclass under ``name``."""

    def deco(env_cls: type) -> type:
        TASKS.register(name)(TaskSpec(name, env_cls, config_cls, gym_id))
        return env_cls

    return deco


def task_config_path(name: str) -> Path:
    return asset_root() / "configs" / "task" / f"{name}.yaml"


def load_task_config(name: str, overrides: dict[str, Any] | None = None) -> TaskConfig:
    """Defaults of the task's config class ⊕ ``configs/task/<name>.yaml`` ⊕ ``overrides``."""
    spec = TASKS.get(name)
    path = task_config_path(name)
    file_cfg = {}
    if path.is_file():
        try:
            file_cfg = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    cfg = build_config(spec.config_cls, file_cfg, overrides, where=f"task {name!r}")
    if cfg.name != name:
        raise ConfigError(f"task config {path} has name {cfg.name!r}, expected {name!r}")
    return cfg


def make(
    task: str | TaskConfig,
    num_envs: int,
    *,
    device: str = "cpu",
    seed: int | None = None,
    **overrides: Any,
) -> VecEnv:
    """Build ``num_envs`` parallel envs of a registered task.

    Args:
        task: registered name (see :func:`task_names`) or an already built task config.
        num_envs: N.
        device: torch device of every tensor the env returns.
        seed: fixes resets, randomization and noise; same seed ⇒ identical trajectories.
        **overrides: task config fields, e.g. ``episode_length=50``,
            ``randomization={"friction": [0.5, 1.5]}``.
    """
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    if isinstance(task, TaskConfig):
        cfg = build_config(
            TASKS.get(task.name).config_cls, task, overrides, where=f"task {task.name!r}"
        )
    else:
        cfg = load_task_config(task, overrides)
    return TASKS.get(cfg.name).env_cls(cfg, num_envs, device=device, seed=seed)


def simulation_device(task: TaskConfig, device: str) -> str:
    """Where ``task``'s envs run for a learner on ``device``: the MuJoCo CPU backend's tasks on
    the CPU (observations move to the learner), torch-simulated tasks on ``device`` itself."""
    from robot_rl.envs.backends import BACKENDS

    return "cpu" if task.backend in BACKENDS else device


def task_names() -> list[str]:
    return TASKS.names()

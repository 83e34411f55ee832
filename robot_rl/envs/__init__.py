"""Batched simulation: the VecEnv contract, physics backends, tasks and scripted experts.

>>> import robot_rl.envs as E
>>> env = E.make("arm_push", 256, seed=0)
"""

from robot_rl.envs import tasks as _tasks  # noqa: F401  (registers the tasks)
from robot_rl.envs.config import ImageConfig, RandomizationConfig, TaskConfig
from robot_rl.envs.registry import TASKS, load_task_config, make, simulation_device, task_names
from robot_rl.envs.vec_env import Obs, TensorSpec, VecEnv

__all__ = [
    "TASKS",
    "ImageConfig",
    "Obs",
    "RandomizationConfig",
    "TaskConfig",
    "TensorSpec",
    "VecEnv",
    "load_task_config",
    "make",
    "simulation_device",
    "task_names",
]

from robot_rl.envs.gym_adapter import register_gym_envs  # noqa: E402

register_gym_envs()

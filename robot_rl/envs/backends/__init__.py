"""Physics backends behind the task layer. Only the MuJoCo CPU backend ships today; GPU backends
(MuJoCo Warp, MJX, Isaac Lab) plug in by implementing :class:`PhysicsBackend`."""

from robot_rl.envs.backends.base import PhysicsBackend, SimBackend
from robot_rl.envs.backends.mujoco_cpu import MuJoCoCPUBackend

BACKENDS = {"mujoco_cpu": MuJoCoCPUBackend}

__all__ = ["BACKENDS", "MuJoCoCPUBackend", "PhysicsBackend", "SimBackend"]

"""Physics backends behind the task layer. Only the MuJoCo CPU backend ships today; GPU backends
(MuJoCo Warp, MJX, Isaac Lab) plug in by implementing :class:`PhysicsBackend`."""

import os

# Offscreen rendering without a display: EGL (Mesa's software EGL works on CPU-only machines; the
# NVIDIA driver's on GPU machines). Must be decided before mujoco is first imported.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from robot_rl.envs.backends.base import PhysicsBackend, SimBackend  # noqa: E402
from robot_rl.envs.backends.mujoco_cpu import MuJoCoCPUBackend  # noqa: E402

BACKENDS = {"mujoco_cpu": MuJoCoCPUBackend}

__all__ = ["BACKENDS", "MuJoCoCPUBackend", "PhysicsBackend", "SimBackend"]

"""robot_rl: from demonstrations to a safe deployed robot policy."""

import os
import sys

# Offscreen rendering without a display: EGL (Mesa's software EGL works on CPU-only machines; the
# NVIDIA driver's on GPU machines). MuJoCo picks its GL platform when it is first imported, so this
# runs on any ``import robot_rl...`` (a script that imports mujoco before robot_rl must set it).
# EGL is a Linux platform; macOS and Windows keep MuJoCo's default.
if (
    sys.platform.startswith("linux")
    and "MUJOCO_GL" not in os.environ
    and not os.environ.get("DISPLAY")
):
    os.environ["MUJOCO_GL"] = "egl"

__version__ = "0.1.0"

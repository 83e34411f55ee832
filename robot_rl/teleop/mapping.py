"""Device command → env action, one small pure function per robot family, registered by robot type.

Every env action lives in [-1, 1] (the env scales it by the robot profile's limits), so the
mappings only choose axes, scales and signs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robot_rl.core.registry import Registry
from robot_rl.teleop.command import TeleopCommand

GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0


def arm_action(
    twist: np.ndarray, gripper: float, linear_scale: float = 1.0, angular_scale: float = 1.0
) -> np.ndarray:
    """Arm end-effector deltas + gripper: ``(dx, dy, dz, rx, ry, rz, gripper)``. Shape: (7,).

    Args:
        twist: (6,) in [-1, 1], robot base frame.
        gripper: -1 open … +1 closed.
    """
    scale = np.array([linear_scale] * 3 + [angular_scale] * 3)
    return np.clip(np.append(np.asarray(twist) * scale, gripper), -1.0, 1.0)


def car_action(twist: np.ndarray, throttle_scale: float = 1.0) -> np.ndarray:
    """RC car ``(steer, throttle)``: steer from yaw plus lateral (left positive), throttle from x.
    Shape: (2,)."""
    t = np.asarray(twist)
    return np.clip(np.array([t[5] + t[1], throttle_scale * t[0]]), -1.0, 1.0)


def humanoid_action(twist: np.ndarray, yaw_scale: float = 1.0) -> np.ndarray:
    """Humanoid base velocity command ``(vx, vy, yaw_rate)`` in [-1, 1]. Shape: (3,)."""
    t = np.asarray(twist)
    return np.clip(np.array([t[0], t[1], yaw_scale * t[5]]), -1.0, 1.0)


class ArmMapping:
    """Stateful arm mapping: keeps the gripper (toggled or set absolutely) between polls."""

    action_dim = 7

    def __init__(self, linear_scale: float = 1.0, angular_scale: float = 1.0) -> None:
        self.linear_scale, self.angular_scale = linear_scale, angular_scale
        self.gripper = GRIPPER_OPEN

    def reset(self) -> None:
        """A new episode starts with the gripper open."""
        self.gripper = GRIPPER_OPEN

    def __call__(self, cmd: TeleopCommand) -> np.ndarray:
        if cmd.gripper is not None:
            self.gripper = float(np.clip(cmd.gripper, -1.0, 1.0))
        elif cmd.gripper_toggle:
            self.gripper = GRIPPER_CLOSED if self.gripper < 0 else GRIPPER_OPEN
        return arm_action(cmd.twist, self.gripper, self.linear_scale, self.angular_scale)

    def describe(self) -> str:
        return "gripper " + ("closed" if self.gripper > 0 else "open")


class _Stateless:
    """A mapping without state, around one of the pure functions above."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], action_dim: int) -> None:
        self.fn, self.action_dim = fn, action_dim

    def reset(self) -> None:
        pass

    def __call__(self, cmd: TeleopCommand) -> np.ndarray:
        return self.fn(cmd.twist)

    def describe(self) -> str:
        return ""


MAPPINGS: Registry[Callable[..., ArmMapping | _Stateless]] = Registry("teleop mapping")
MAPPINGS.register("arm")(ArmMapping)


def _car(linear_scale: float = 1.0, angular_scale: float = 1.0) -> _Stateless:
    """The car's throttle scales like a linear speed; its steering takes yaw as it is."""
    return _Stateless(lambda t: car_action(t, throttle_scale=linear_scale), 2)


def _humanoid(linear_scale: float = 1.0, angular_scale: float = 1.0) -> _Stateless:
    """The base velocity: (vx, vy) as the stick gives them, the yaw rate scaled."""
    return _Stateless(lambda t: humanoid_action(t, yaw_scale=angular_scale), 3)


# every factory takes the CLI's linear_scale / angular_scale
MAPPINGS.register("rc_car")(_car)
MAPPINGS.register("humanoid")(_humanoid)


def mapping_for(robot_type: str, **kwargs: float) -> ArmMapping | _Stateless:
    """The mapping of a robot profile's ``robot_type``: an exact registered name, else the family
    it starts with (``arm6_parallel_gripper`` → ``arm``)."""
    name = robot_type
    if name not in MAPPINGS:
        name = next((n for n in MAPPINGS.names() if robot_type.startswith(n)), robot_type)
    return MAPPINGS.get(name)(**kwargs)

"""Forward kinematics of a serial chain from the robot profile, batched in numpy.

The profile's ``kinematics`` list gives, per joint in command order, its origin in the parent
frame (``xyz``, optional ``rpy``, metres / radians, URDF conventions) and its ``axis``; ``ee``
gives the tool point's offset in the last joint's frame. Revolute joints only (arms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError


def rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw ``(3,)`` -> rotation ``(3, 3)``: Rz(y) @ Ry(p) @ Rx(r)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations about the unit ``axis (3,)`` by ``angle (N,)`` -> ``(N, 3, 3)`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


class SerialChain:
    """``fk(q (N, J)) -> tool positions (N, 3)`` and ``jacobian(q) -> (N, 3, J)``.

    Args:
        joints: per joint ``{"joint": name, "xyz": [...], "rpy": [...], "axis": [...]}``.
        ee: the tool point in the last joint's frame ``(3,)``.
    """

    def __init__(self, joints: list[dict[str, Any]], ee: list[float]) -> None:
        if not joints:
            raise ConfigError("kinematics: the chain needs at least one joint")
        self.names, self.origins, self.frames, self.axes = [], [], [], []
        for j in joints:
            try:
                axis = np.asarray(j["axis"], float)
                self.origins.append(np.asarray(j["xyz"], float).reshape(3))
                self.frames.append(rpy_matrix(np.asarray(j.get("rpy", (0, 0, 0)), float)))
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError(f"kinematics: bad joint entry {j}: {e}") from None
            norm = float(np.linalg.norm(axis))
            if axis.shape != (3,) or not norm > 0:
                raise ConfigError(f"kinematics: joint {j.get('joint')!r} needs a nonzero 3-axis")
            self.names.append(str(j.get("joint", "")))
            self.axes.append(axis / norm)
        self.ee = np.asarray(ee, float).reshape(3)

    @property
    def dof(self) -> int:
        return len(self.axes)

    def frames_of(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Joint origins ``(N, J, 3)``, world axes ``(N, J, 3)``, the tool point ``(N, 3)`` and
        the tool orientation ``(N, 3, 3)``."""
        n = q.shape[0]
        rot = np.broadcast_to(np.eye(3), (n, 3, 3))
        pos = np.zeros((n, 3))
        origins, axes = [], []
        for i, (xyz, frame, axis) in enumerate(zip(self.origins, self.frames, self.axes)):
            pos = pos + rot @ xyz
            rot = rot @ frame
            origins.append(pos)
            axes.append(rot @ axis)
            rot = rot @ axis_angle(axis, q[:, i])
        tool = pos + rot @ self.ee
        return np.stack(origins, 1), np.stack(axes, 1), tool, rot

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool positions ``(N, 3)`` and orientations ``(N, 3, 3)`` for ``q (N, J)``."""
        return self.frames_of(np.asarray(q, float)[:, : self.dof])[2:]

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Tool positions ``(N, 3)`` for joint angles ``q (N, J)``."""
        return self.frames_of(np.asarray(q, float)[:, : self.dof])[2]

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positional Jacobian ``(N, 3, J)`` (revolute: ``axis × (tool - origin)``) and the tool
        positions ``(N, 3)``."""
        origins, axes, tool, _ = self.frames_of(np.asarray(q, float)[:, : self.dof])
        return np.cross(axes, tool[:, None, :] - origins).transpose(0, 2, 1), tool


def chain_from_profile(extra: dict[str, Any], source: str = "robot profile") -> SerialChain:
    """The :class:`SerialChain` of a profile's ``kinematics: {joints: [...], ee: [...]}``."""
    kin = extra.get("kinematics")
    if not isinstance(kin, dict) or "joints" not in kin:
        raise ConfigError(f"{source} has no kinematics.joints (needed by the workspace filters)")
    return SerialChain(list(kin["joints"]), kin.get("ee", (0.0, 0.0, 0.0)))

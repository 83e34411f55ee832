"""Forward kinematics of a serial chain from the robot profile, batched in numpy.

The profile's ``kinematics`` list gives, per joint in command order, its origin in the parent
frame (``xyz``, optional ``rpy``, metres / radians, URDF conventions) and its ``axis``; ``ee``
gives the tool point's offset in the last joint's frame. Revolute joints only (arms).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
        # the same chain as flat tuples of floats, for the single-pose path
        self._plain = []
        for xyz, frame, axis in zip(self.origins, self.frames, self.axes):
            k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            flat = None if np.allclose(frame, np.eye(3)) else tuple(frame.ravel().tolist())
            # (index, sign) of an axis along x, y or z: a cheaper rotation update
            big = int(np.argmax(np.abs(axis)))
            principal = (big, float(np.sign(axis[big]))) if abs(axis[big]) == 1.0 else None
            self._plain.append(
                (
                    *xyz.tolist(),
                    flat,
                    *axis.tolist(),
                    tuple(k.ravel()),
                    tuple((k @ k).ravel()),
                    principal,
                )
            )
        self._ee = tuple(self.ee.tolist())

    @property
    def dof(self) -> int:
        return len(self.axes)

    def frames_of(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Joint origins ``(N, J, 3)``, world axes ``(N, J, 3)``, the tool point ``(N, 3)`` and
        the tool orientation ``(N, 3, 3)``."""
        n = q.shape[0]
        if n == 1:  # one robot at control rate: plain floats beat numpy's per-call overhead
            origins, axes, tool, rot = self._frames_one(q[0].tolist())
            return np.array([origins]), np.array([axes]), np.array([tool]), np.array([rot])
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

    def _frames_one(self, q: list[float]) -> tuple[list, list, tuple, tuple]:
        """:meth:`frames_of` for a single pose in Python floats, unrolled (numpy's per-call
        overhead would cost ~70 µs for this chain)."""
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0
        px = py = pz = 0.0
        origins, axes = [], []
        for (x, y, z, frame, ax, ay, az, k, k2, principal), angle in zip(self._plain, q):
            px, py, pz = (
                px + r00 * x + r01 * y + r02 * z,
                py + r10 * x + r11 * y + r12 * z,
                pz + r20 * x + r21 * y + r22 * z,
            )
            if frame is not None:
                r00, r01, r02, r10, r11, r12, r20, r21, r22 = _mul(
                    (r00, r01, r02, r10, r11, r12, r20, r21, r22), frame
                )
            origins.append((px, py, pz))
            axes.append(
                (
                    r00 * ax + r01 * ay + r02 * az,
                    r10 * ax + r11 * ay + r12 * az,
                    r20 * ax + r21 * ay + r22 * az,
                )
            )
            if principal is None:  # a general axis: Rodrigues
                sn, c1 = math.sin(angle), 1.0 - math.cos(angle)
                m = [(i % 4 == 0) + sn * k[i] + c1 * k2[i] for i in range(9)]
                r00, r01, r02, r10, r11, r12, r20, r21, r22 = _mul(
                    (r00, r01, r02, r10, r11, r12, r20, r21, r22), m
                )
                continue
            sn, cs = math.sin(principal[1] * angle), math.cos(angle)
            if principal[0] == 2:  # about z: columns x, y turn
                r00, r01 = r00 * cs + r01 * sn, r01 * cs - r00 * sn
                r10, r11 = r10 * cs + r11 * sn, r11 * cs - r10 * sn
                r20, r21 = r20 * cs + r21 * sn, r21 * cs - r20 * sn
            elif principal[0] == 1:  # about y: columns z, x turn
                r02, r00 = r02 * cs + r00 * sn, r00 * cs - r02 * sn
                r12, r10 = r12 * cs + r10 * sn, r10 * cs - r12 * sn
                r22, r20 = r22 * cs + r20 * sn, r20 * cs - r22 * sn
            else:  # about x: columns y, z turn
                r01, r02 = r01 * cs + r02 * sn, r02 * cs - r01 * sn
                r11, r12 = r11 * cs + r12 * sn, r12 * cs - r11 * sn
                r21, r22 = r21 * cs + r22 * sn, r22 * cs - r21 * sn
        ex, ey, ez = self._ee
        tool = (
            px + r00 * ex + r01 * ey + r02 * ez,
            py + r10 * ex + r11 * ey + r12 * ez,
            pz + r20 * ex + r21 * ey + r22 * ez,
        )
        rot = ((r00, r01, r02), (r10, r11, r12), (r20, r21, r22))
        return origins, axes, tool, rot

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool positions ``(N, 3)`` and orientations ``(N, 3, 3)`` for ``q (N, J)``."""
        return self.frames_of(np.asarray(q, float)[:, : self.dof])[2:]

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Tool positions ``(N, 3)`` for joint angles ``q (N, J)``."""
        return self.frames_of(np.asarray(q, float)[:, : self.dof])[2]

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positional Jacobian ``(N, 3, J)`` (revolute: ``axis × (tool - origin)``) and the tool
        positions ``(N, 3)``."""
        q = np.asarray(q, float)
        if q.shape[0] == 1:
            origins, axes, (tx, ty, tz), _ = self._frames_one(q[0, : self.dof].tolist())
            cols = [
                (
                    ay * (tz - oz) - az * (ty - oy),
                    az * (tx - ox) - ax * (tz - oz),
                    ax * (ty - oy) - ay * (tx - ox),
                )
                for (ox, oy, oz), (ax, ay, az) in zip(origins, axes)
            ]
            return np.array(cols).T[None], np.array([[tx, ty, tz]])
        origins, axes, tool, _ = self.frames_of(np.asarray(q, float)[:, : self.dof])
        return np.cross(axes, tool[:, None, :] - origins).transpose(0, 2, 1), tool


def pull_back(
    start: np.ndarray,
    delta: np.ndarray,
    violation: Callable[[np.ndarray], np.ndarray],
    steps: int = 16,
) -> np.ndarray:
    """The farthest of ``steps`` evenly spaced poses on ``start + s · delta`` (``(M, J)`` each,
    ``s`` in [0, 1]) whose ``violation`` (``(K, J) -> (K,)``, > 0 outside), and that of every
    pose before it, is 0; when ``start`` itself violates, the least violating pose (never
    deeper in)."""
    grid = np.linspace(0.0, 1.0, steps + 1)
    pts = start[:, None] + grid[None, :, None] * delta[:, None]  # (M, S, J)
    m, k = pts.shape[:2]
    viol = violation(pts.reshape(m * k, -1)).reshape(m, k)
    # last index of the leading run of allowed poses; -1 when the start violates
    prefix = np.cumprod(viol <= 0, axis=1).sum(axis=1) - 1
    pick = np.where(prefix >= 0, prefix, viol.argmin(axis=1))
    return pts[np.arange(m), pick]


def _mul(a, b) -> tuple[float, ...]:
    """Product of two row-major flat 3x3 matrices."""
    a00, a01, a02, a10, a11, a12, a20, a21, a22 = a
    b00, b01, b02, b10, b11, b12, b20, b21, b22 = b
    return (
        a00 * b00 + a01 * b10 + a02 * b20,
        a00 * b01 + a01 * b11 + a02 * b21,
        a00 * b02 + a01 * b12 + a02 * b22,
        a10 * b00 + a11 * b10 + a12 * b20,
        a10 * b01 + a11 * b11 + a12 * b21,
        a10 * b02 + a11 * b12 + a12 * b22,
        a20 * b00 + a21 * b10 + a22 * b20,
        a20 * b01 + a21 * b11 + a22 * b21,
        a20 * b02 + a21 * b12 + a22 * b22,
    )


def chain_from_profile(extra: dict[str, Any], source: str = "robot profile") -> SerialChain:
    """The :class:`SerialChain` of a profile's ``kinematics: {joints: [...], ee: [...]}``."""
    kin = extra.get("kinematics")
    if not isinstance(kin, dict) or "joints" not in kin:
        raise ConfigError(f"{source} has no kinematics.joints (needed by the workspace filters)")
    return SerialChain(list(kin["joints"]), kin.get("ee", (0.0, 0.0, 0.0)))

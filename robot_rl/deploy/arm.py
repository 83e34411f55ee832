"""The arm on ROS 2 topics: the policy's observation from ``/joint_states`` and object poses,
and its end-effector action turned into the joint position command ros2_control executes.

Both reproduce what the simulated arm task does inside ``ArmEnv`` (the tests step the env and
compare), so a policy sees the same numbers through the ROS graph as in the batched simulator:
the tool pose comes from the profile's kinematic chain instead of MuJoCo, the IK is the same
damped least squares on the same geometric Jacobian.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.layouts import ARM_STATE_NAMES as STATE_NAMES
from robot_rl.core.profile import RobotProfile
from robot_rl.msgs import JointState, Pose
from robot_rl.safety.kinematics import chain_from_profile

FINGERS = ("finger_left", "finger_right")


def command_topics(profile: RobotProfile) -> tuple[str, str]:
    """The arm's and the gripper's command topics (the profile's ``topics``)."""
    topics = profile.extra.get("topics", {})
    return (
        topics.get("joint_command", "/arm_controller/commands"),
        topics.get("gripper_command", "/gripper_controller/commands"),
    )


def rot6(mat: np.ndarray) -> np.ndarray:
    """First two columns of a rotation matrix ``(3, 3)``, column-major ``(6,)``."""
    return np.asarray(mat)[:, :2].T.reshape(6)


def quat_matrix(w: float, x: float, y: float, z: float) -> np.ndarray:
    """Rotation matrix of a (normalized on the fly) quaternion."""
    n = np.sqrt(w * w + x * x + y * y + z * z)
    if not n > 0:
        raise ValueError("zero or non-finite quaternion")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def joint_arrays(msg: JointState, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of ``names`` from one JointState (any order, extra joints
    ignored); a missing joint raises ``ValueError``, missing velocities read as NaN."""
    cache = JointCache(names)
    cache.update(msg)
    q, dq = cache.arrays()
    return q, np.full(len(q), np.nan) if dq is None else dq


class JointCache:
    """The latest reading of each named joint, merged over ``JointState`` messages (a gripper's
    driver may publish its own). A message with the wrong number of positions or velocities
    raises ``ValueError`` and changes nothing."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.pos: dict[str, float] = {}
        self.vel: dict[str, float] = {}

    def update(self, msg: JointState) -> None:
        n = len(msg.name)
        if len(msg.position) != n:
            raise ValueError(f"joint_states has {n} names but {len(msg.position)} positions")
        if len(msg.velocity) not in (0, n):
            raise ValueError(f"joint_states has {n} names but {len(msg.velocity)} velocities")
        for i, name in enumerate(msg.name):
            self.pos[name] = float(msg.position[i])
            if msg.velocity:
                self.vel[name] = float(msg.velocity[i])
            else:
                self.vel.pop(name, None)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Positions ``(J,)`` of ``names``; velocities ``(J,)``, or None when a driver does not
        report them. ``ValueError`` while a joint has never been read."""
        missing = [n for n in self.names if n not in self.pos]
        if missing:
            raise ValueError(f"joint_states lacks joints {missing}")
        q = np.array([self.pos[n] for n in self.names])
        if any(n not in self.vel for n in self.names):
            return q, None
        return q, np.array([self.vel[n] for n in self.names])


class ArmObservation:
    """The arm tasks' state vector from ROS messages.

    Args:
        profile: the arm's profile (joint names, gripper, kinematic chain).
        names: the state entries the policy reads (default: all of :data:`STATE_NAMES`).
    """

    def __init__(self, profile: RobotProfile, names: Sequence[str] = ()) -> None:
        self.joints = profile.joint_names
        self.chain = chain_from_profile(profile.extra, f"profile {profile.name}")
        names = list(names) or STATE_NAMES
        unknown = [n for n in names if n not in STATE_NAMES]
        if unknown:
            raise ConfigError(f"the arm observation has no state entries {unknown[:4]}")
        self.index = np.array([STATE_NAMES.index(n) for n in names])
        self.needs_objects = any(n.startswith(("cube", "goal", "tcp_to_cube")) for n in names)

    @property
    def joint_names(self) -> list[str]:
        """The joints it reads, in the order of ``q``: the arm's, then both fingers."""
        return [*self.joints, *FINGERS]

    def __call__(
        self, q: np.ndarray, dq: np.ndarray | None, cube: Pose | None, goal: Pose | None
    ) -> np.ndarray:
        """The state ``(D,)`` float64 from positions / velocities of :attr:`joint_names`
        (``dq`` None: NaN, which the policy node refuses); ``cube``/``goal`` may be ``None``
        when the policy does not read them."""
        dq = np.full(len(q), np.nan) if dq is None else dq
        tcp, mat = self.chain.pose(q[None, :6])
        tcp, mat = tcp[0], mat[0]
        if cube is None or goal is None:
            if self.needs_objects:
                raise ValueError("no cube or goal pose yet")
            cube_p, cube_r, goal_p = np.zeros(3), np.zeros(6), np.zeros(3)
        else:
            cube_p = np.array([cube.position.x, cube.position.y, cube.position.z])
            o = cube.orientation
            cube_r = rot6(quat_matrix(o.w, o.x, o.y, o.z))
            goal_p = np.array([goal.position.x, goal.position.y, goal.position.z])
        full = np.concatenate(
            [q[:6], dq[:6], [q[6] + q[7]], tcp, rot6(mat), cube_p, cube_r, goal_p]
            + [cube_p - tcp, goal_p - cube_p]
        )
        return full[self.index]


class EeDeltaCommand:
    """The ``ee_delta`` action ``(7,)`` in [-1, 1] → the joint position command ``(7,)`` (6 joint
    targets in rad, then the opening of one finger in m), as ``ArmEnv`` computes it: a world
    frame TCP step of ``max_ee_step`` at |a| = 1, damped least squares on the geometric
    Jacobian at the measured joints, joint steps capped at the velocity limits, the target
    integrated from the last command and kept within a band of two steps around the measured
    joints and inside the joint limits.

    Args:
        profile: the arm's profile.
        control_dt: seconds per control step.
        damping: the IK's damping λ (``ArmTaskConfig.ik_damping``).
    """

    def __init__(self, profile: RobotProfile, control_dt: float, damping: float = 0.05) -> None:
        self.chain = chain_from_profile(profile.extra, f"profile {profile.name}")
        self.low = np.array(profile.limits("lower"))
        self.high = np.array(profile.limits("upper"))
        self.step_max = np.array(profile.limits("velocity")) * control_dt
        self.max_pos, self.max_rot = profile.max_ee_step
        self.finger_open = profile.gripper.upper
        self.damping = damping

    def __call__(
        self, q: np.ndarray, action: np.ndarray, last: np.ndarray | None = None
    ) -> np.ndarray:
        """``q``: measured arm joints ``(6,)``; ``action`` ``(7,)``; ``last``: the last applied
        command ``(7,)`` (``None``: start from the measured joints)."""
        a = np.clip(np.asarray(action, float), -1.0, 1.0)
        q = np.asarray(q, float)[:6]
        origins, axes, tool, _ = self.chain.frames_of(q[None])
        lin = np.cross(axes[0], tool[0] - origins[0]).T  # (3, J)
        jac = np.concatenate([lin, axes[0].T])  # (6, J): linear rows, then angular
        err = np.concatenate([a[:3] * self.max_pos, a[3:6] * self.max_rot])
        y = np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
        dq = np.clip(jac.T @ y, -self.step_max, self.step_max)
        prev = q if last is None else np.asarray(last, float)[:6]
        band = 2 * self.step_max
        q_des = np.clip(np.clip(prev + dq, q - band, q + band), self.low, self.high)
        finger = self.finger_open * (1.0 - a[6]) / 2.0
        return np.concatenate([q_des, [finger]])

"""The humanoid's adapters of the policy and safety nodes (:mod:`robot_rl.deploy.adapters`):
Unitree-style low level on bare DDS, as a Unitree robot speaks it (:mod:`robot_rl.msgs.unitree_hg`).

In: ``/lowstate`` (DDS ``rt/lowstate``, ``LowState_``: motors and the pelvis IMU) and, for a
walking policy, ``/cmd_vel`` (``geometry_msgs/Twist``: vx, vy, yaw rate). Out: ``/lowcmd`` (DDS
``rt/lowcmd``, ``LowCmd_``): per motor a position target with the profile's ``pd_gains``, or the
gains of the mode the safety node is in: ``idle`` zero torque (kp = kd = 0), ``damping`` and
``estop`` the profile's ``damping_mode`` (kp 0, kd 8), with the CRC the robot checks.

The profile's joint ``i`` is motor slot ``motor_index[i]`` (``hardware/humanoid.yaml``; default
``i``: the G1's legs are slots 0–11 in this order). Slots not in the profile are sent disabled
(mode 0, no torque). ``LowState_.tick`` is read as milliseconds (the observation's stamp).

The observation is the humanoid tasks' ``state`` (:mod:`robot_rl.envs.tasks.humanoid.base`),
rebuilt from the message: gyro ×0.25, projected gravity, command ×(2, 2, 0.25), joint position −
default, joint velocity ×0.05, last action. The policy's action (12,) in [-1, 1] becomes the
target ``default + action_scale · a``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.layouts import HUMANOID_OBS_SCALES, humanoid_state_names
from robot_rl.core.profile import RobotProfile
from robot_rl.deploy import adapters
from robot_rl.deploy.node import Out, Port
from robot_rl.deploy.qos import COMMAND, SENSOR, STATE
from robot_rl.msgs import LowCmd_, LowState_, MotorCmd_, Twist, low_cmd_crc
from robot_rl.msgs.unitree_hg import NUM_MOTORS, quat_rpy

ANG_VEL_SCALE = HUMANOID_OBS_SCALES["ang_vel"]
JOINT_VEL_SCALE = HUMANOID_OBS_SCALES["joint_vel"]
COMMAND_SCALE = np.array(HUMANOID_OBS_SCALES["command"])


def topics(profile: RobotProfile) -> dict[str, str]:
    """The low-level state and command topics and the velocity command (the profile's)."""
    t = profile.extra.get("topics", {})
    return {
        "low_state": t.get("low_state", "/lowstate"),
        "low_command": t.get("low_command", "/lowcmd"),
        "velocity_command": t.get("velocity_command", "/cmd_vel"),
    }


@dataclass
class HumanoidSpec:
    """What the adapters read of the profile: motor slots, default pose, gains, action scale."""

    names: list[str]
    motors: np.ndarray  # (J,) int: LowCmd_/LowState_ slot of each profile joint
    default: np.ndarray  # (J,)
    kp: np.ndarray  # (J,)
    kd: np.ndarray  # (J,)
    damping_kd: float
    action_scale: float

    @staticmethod
    def of(profile: RobotProfile) -> HumanoidSpec:
        names = list(profile.joint_names)
        extra = profile.extra
        motors = np.asarray(extra.get("motor_index", range(len(names))), int)
        bad = len(motors) != len(names) or len(set(motors.tolist())) != len(motors)
        if bad or not ((motors >= 0) & (motors < NUM_MOTORS)).all():
            raise ConfigError(
                f"{profile.source}: motor_index must give {len(names)} distinct slots in "
                f"[0, {NUM_MOTORS}), got {motors.tolist()}"
            )
        gains = extra.get("pd_gains", {})
        missing = [n for n in names if n not in gains]
        if missing:
            raise ConfigError(f"{profile.source}: pd_gains lacks joints {missing}")
        damping = extra.get("damping_mode", {})
        if float(damping.get("kp", 0.0)) != 0.0:
            raise ConfigError(f"{profile.source}: damping_mode.kp must be 0, got {damping['kp']}")
        return HumanoidSpec(
            names,
            motors,
            np.asarray(profile.limits("default"), float),
            np.array([float(gains[n]["kp"]) for n in names]),
            np.array([float(gains[n]["kd"]) for n in names]),
            float(damping.get("kd", 8.0)),
            float(extra.get("action_scale", 0.25)),
        )

    def target(self, action: np.ndarray) -> np.ndarray:
        """Joint targets ``(J,)`` of a policy action ``(J,)`` (clipped to [-1, 1] as the env)."""
        return self.default + self.action_scale * np.clip(action, -1.0, 1.0)

    def gains(self, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """``(kp, kd)`` ``(J,)`` sent in safety-node ``mode``."""
        zero = np.zeros(len(self.names))
        if mode == "idle":
            return zero, zero  # zero torque: the robot hangs passive
        if mode in ("damping", "estop"):
            return zero, np.full(len(self.names), self.damping_kd)
        return self.kp, self.kd


@dataclass
class LowReading:
    """One ``LowState_`` in the profile's joint order: ``q``, ``dq`` (J,), IMU ``quat`` (w, x,
    y, z), ``gyro`` (3,) rad/s body frame, ``rpy`` (3,) from the quaternion, ``tick`` (ms)."""

    q: np.ndarray
    dq: np.ndarray
    quat: np.ndarray
    gyro: np.ndarray
    rpy: np.ndarray
    tick: int
    mode_machine: int


def read_low_state(msg: LowState_, spec: HumanoidSpec) -> LowReading:
    """``ValueError`` on a malformed message (wrong motor count, non-finite values)."""
    if len(msg.motor_state) != NUM_MOTORS:
        raise ValueError(f"LowState_ has {len(msg.motor_state)} motors, not {NUM_MOTORS}")
    motors = [msg.motor_state[i] for i in spec.motors]
    q = np.array([m.q for m in motors], float)
    dq = np.array([m.dq for m in motors], float)
    imu = msg.imu_state
    quat = np.asarray(imu.quaternion, float)
    gyro = np.asarray(imu.gyroscope, float)
    if not (np.isfinite(q).all() and np.isfinite(dq).all() and np.isfinite(gyro).all()):
        raise ValueError("LowState_ has non-finite joint or gyro readings")
    norm = float(np.linalg.norm(quat)) if np.isfinite(quat).all() else 0.0
    if not 0.9 < norm < 1.1:
        raise ValueError(f"LowState_ IMU quaternion {quat.tolist()} is not a rotation")
    quat = quat / norm
    return LowReading(
        q, dq, quat, gyro, np.array(quat_rpy(quat)), int(msg.tick), int(msg.mode_machine)
    )


def projected_gravity(quat: np.ndarray) -> np.ndarray:
    """World gravity direction (0, 0, −1) in the body frame of a (w, x, y, z) quaternion."""
    w, x, y, z = quat
    return -np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])


def humanoid_state(
    reading: LowReading, spec: HumanoidSpec, command: np.ndarray, last_action: np.ndarray
) -> np.ndarray:
    """The tasks' ``state`` ``(45,)`` float64: see the module docstring."""
    return np.concatenate(
        [
            reading.gyro * ANG_VEL_SCALE,
            projected_gravity(reading.quat),
            np.asarray(command, float) * COMMAND_SCALE,
            reading.q - spec.default,
            reading.dq * JOINT_VEL_SCALE,
            np.asarray(last_action, float),
        ]
    )


def low_command(
    q: np.ndarray, kp: np.ndarray, kd: np.ndarray, spec: HumanoidSpec, mode_machine: int = 0
) -> LowCmd_:
    """A ``LowCmd_`` with targets ``q`` and gains ``kp``, ``kd`` ``(J,)`` on the profile's
    motors (enabled; zero velocity target and feed-forward), every other slot disabled, and
    its CRC."""
    msg = LowCmd_(mode_pr=0, mode_machine=mode_machine)
    for j, slot in enumerate(spec.motors):
        msg.motor_cmd[slot] = MotorCmd_(
            mode=1, q=float(q[j]), dq=0.0, tau=0.0, kp=float(kp[j]), kd=float(kd[j])
        )
    msg.crc = low_cmd_crc(msg)
    return msg


class PolicyInputs(adapters.PolicyInputs):
    """``/lowstate`` (the trigger) and ``/cmd_vel`` (the commanded base velocity, default 0)."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], config) -> None:
        self.spec = HumanoidSpec.of(profile)
        names = humanoid_state_names(self.spec.names)
        wanted = tuple(getattr(config, "state_names", ()) or ())
        if wanted and tuple(wanted) != tuple(names):
            raise ConfigError(
                f"the policy reads state entries {list(wanted)[:4]}...; the humanoid observation "
                f"is the tasks' 45 entries {names[:4]}..."
            )
        self.dim = len(names)
        t = topics(profile)
        self.ports = {
            "cmd_vel": Port(t["velocity_command"], Twist, STATE),
            # best effort reads a robot's own writer (whatever its reliability) and ours
            "state": Port(t["low_state"], LowState_, SENSOR),
        }
        self.trigger = "state"
        self.reading: LowReading | None = None
        self.command = np.zeros(3)
        self.clear()

    def update(self, key: str, msg: Any) -> None:
        if key == "cmd_vel":
            cmd = np.array([msg.linear.x, msg.linear.y, msg.angular.z], float)
            if not np.isfinite(cmd).all():
                raise ValueError(f"non-finite velocity command {cmd.tolist()}")
            self.command = cmd
        else:
            self.reading = read_low_state(msg, self.spec)

    def stamp(self, msg: LowState_) -> float:
        return msg.tick / 1000.0

    def state(self) -> np.ndarray:
        if self.reading is None:
            raise ValueError("no low state yet")
        return humanoid_state(self.reading, self.spec, self.command, self.last)

    def acted(self, action: np.ndarray) -> None:
        self.last = np.clip(np.asarray(action, float), -1.0, 1.0)

    def clear(self) -> None:
        self.last = np.zeros(len(self.spec.names))


class SafetyIO(adapters.SafetyIO):
    """``q``, ``dq`` from ``/lowstate``, ``extra["rpy"]`` (1, 3) from its IMU quaternion (the
    fall detector); the action (12,) as joint targets; ``LowCmd_`` out with the mode's gains."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], period: float) -> None:
        self.spec = HumanoidSpec.of(profile)
        self.names = list(self.spec.names)
        t = topics(profile)
        self.measurement = t["low_state"]
        self.subscriptions = {"state": Port(t["low_state"], LowState_, SENSOR)}
        self.publishers = {"low_cmd": Port(t["low_command"], LowCmd_, COMMAND)}
        self.reading_: LowReading | None = None
        self.time = -np.inf

    def update(self, key: str, msg: LowState_, now: float) -> bool:
        try:
            self.reading_ = read_low_state(msg, self.spec)
        except ValueError as e:
            raise ValueError(f"bad lowstate: {e}") from None
        self.time = now
        return True

    def reading(self):
        r = self.reading_
        if r is None:
            return None, None, -np.inf, {}
        return r.q[None], r.dq[None], self.time, {"rpy": r.rpy[None]}

    def proposal(self, action: np.ndarray, q: np.ndarray, last: np.ndarray | None) -> np.ndarray:
        if action.shape != (len(self.names),):
            return np.full((1, len(self.names)), np.nan)  # the chain fails closed on it
        return self.spec.target(action)[None]

    def command(self, applied: np.ndarray, stamp, mode: str = "policy") -> Out:
        kp, kd = self.spec.gains(mode)
        machine = 0 if self.reading_ is None else self.reading_.mode_machine
        return [("low_cmd", low_command(applied, kp, kd, self.spec, machine))]

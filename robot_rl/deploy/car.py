"""The RC car on ROS 2 topics: the ``rccar_race`` policy's state vector from ``/odom``, ``/scan``
and the measured steering angle, and its action as the AckermannDrive command.

Conventions (the simulator bridge publishes them, a VESC / F1TENTH stack follows them):

- ``/odom`` (``nav_msgs/Odometry``): pose of ``base_link`` = the REAR AXLE's centre (ROS
  convention, ``hardware/rccar.yaml`` ``vehicle``) in the frame the track's centreline is given
  in (the map; in simulation odom = map); twist in ``base_link``. The simulator integrates the
  centre of gravity, ``lr`` ahead of the rear axle: ``p_cog = p_rear + lr·(cos ψ, sin ψ)``,
  ``v_lat,cog = v_lat,rear + lr·ω`` (rigid body), ``v_long`` is the same at both points.
- ``/scan`` (``sensor_msgs/LaserScan``, laser frame ``lidar_x`` ahead of the rear axle, as the
  simulated lidar): each of the policy's beams (``beam_angles(lidar_beams, lidar_fov)``) reads the
  NEAREST beam of the scan; REP 117 readings: +inf (no return) and anything beyond ``range_max``
  read the policy's ``max_range``, −inf / below ``range_min`` (too close) read 0, NaN stays NaN
  (the policy node then acts on nothing and the safety node's watchdog brakes). Ranges are clipped
  to ``[0, max_range]`` as the simulated lidar clips them. The bridge publishes a scan whose
  beams include the policy's beams exactly (:func:`scan_beam_count`), so nearest-beam resampling
  returns the simulator's ranges bit for bit.
- the measured wheel angle: ``sensor_msgs/JointState`` entry ``steering_angle`` (rad, the
  bridge on ``/joint_states``), or on a VESC car the servo command the driver echoes on
  ``/sensors/servo_position_command`` (``std_msgs/Float64``, servo units: angle = (servo −
  offset) / gain, f1tenth_system's ``steering_angle_to_servo_gain`` / ``_offset``), the servo
  being open loop.
- ``last_steer`` / ``last_speed``: the policy's own last action (clipped to [-1, 1], as
  ``TaskEnv.step`` clips it; the neutral action at an episode's start).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import RobotProfile
from robot_rl.msgs import (
    Float64,
    Header,
    JointState,
    LaserScan,
    Odometry,
    Point,
    Pose,
    PoseWithCovariance,
    Quaternion,
    Twist,
    TwistWithCovariance,
    Vector3,
)

STEERING_JOINT = "steering_angle"
SERVO_GAIN, SERVO_OFFSET = -1.2135, 0.5304
"""f1tenth_system's vesc.yaml: servo = gain · steering angle (rad) + offset."""


@dataclass(frozen=True)
class CarSpec:
    """What the nodes need of the task's config and the profile: action mapping, geometry, the
    policy's lidar beams and look-ahead distances. Built by :meth:`from_task`.

    Attributes:
        max_steer: wheel angle at |action| = 1 (rad).
        speed_range: speed (m/s) at action −1 and +1.
        lr, wheelbase: rear axle to centre of gravity, and to the front axle (m).
        beam_angles: the policy's beam angles ``(K,)`` (rad, right to left; float32 values).
        max_range: the policy's lidar range (m).
        lookahead: metres ahead of the observed centreline points.
        state_names: every entry of the task's state vector, in order.
    """

    max_steer: float
    speed_range: tuple[float, float]
    lr: float
    wheelbase: float
    beam_angles: np.ndarray
    max_range: float
    lookahead: tuple[float, ...]
    state_names: tuple[str, ...]

    @classmethod
    def from_task(
        cls,
        profile: RobotProfile,
        task: str = "rccar_race",
        overrides: Mapping[str, Any] | None = None,
    ) -> CarSpec:
        """The spec of car task ``task`` (its config file ⊕ ``overrides``) on ``profile``."""
        from robot_rl.envs import load_task_config
        from robot_rl.envs.tasks.car.lidar import beam_angles
        from robot_rl.envs.tasks.car.race import RaceConfig, _state_names

        cfg = load_task_config(task, dict(overrides or {}))
        if not isinstance(cfg, RaceConfig):
            raise ConfigError(f"task {task!r} is not a car racing task (rccar_race)")
        limits = dict(zip(profile.joint_names, profile.joints))
        if set(limits) != {STEERING_JOINT, "speed"}:
            raise ConfigError(
                f"{profile.source}: a car profile commands [steering_angle, speed], got "
                f"{profile.joint_names}"
            )
        v = profile.extra.get("vehicle", {})
        return cls(
            max_steer=limits[STEERING_JOINT].upper,
            speed_range=(float(cfg.speed_range[0]), float(cfg.speed_range[1])),
            lr=float(v.get("lr", 0.17145)),
            wheelbase=float(v.get("wheelbase", 0.3302)),
            beam_angles=beam_angles(cfg.lidar_beams, cfg.lidar_fov).double().numpy(),
            max_range=float(cfg.lidar_max_range),
            lookahead=tuple(float(d) for d in cfg.lookahead),
            state_names=tuple(_state_names(cfg)),
        )

    def action_to_command(self, action: np.ndarray) -> np.ndarray:
        """Action ``(2,)`` in [-1, 1] ⇒ [steering angle (rad), speed (m/s)], as ``RaceEnv``."""
        lo, hi = self.speed_range
        a = np.asarray(action, float)
        return np.array([a[0] * self.max_steer, lo + (a[1] + 1.0) * 0.5 * (hi - lo)])

    def neutral_action(self) -> np.ndarray:
        """The action of a stopped car with straight wheels (``RaceEnv._neutral_action``)."""
        lo, hi = self.speed_range
        return np.clip([0.0, 2.0 * (0.0 - lo) / (hi - lo) - 1.0], -1.0, 1.0)


def load_track(name_or_path: str):
    """A track by name (``sim/tracks/<name>.csv``) or a CSV path (the car's raceline map)."""
    from robot_rl.envs.tasks.car.track import Track

    if not name_or_path:
        raise ConfigError("the car needs the parameter track:=NAME (sim/tracks) or a CSV path")
    if name_or_path.endswith(".csv") or "/" in name_or_path:
        if not Path(name_or_path).is_file():
            raise ConfigError(f"track file {name_or_path} does not exist")
        return Track.from_csv(name_or_path)
    return Track.load(name_or_path)


# ------------------------------------------------------------------------------ messages
def yaw_of(q: Quaternion) -> float:
    """Heading (rad) of a planar orientation."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


@dataclass
class Odom:
    """One odometry reading at the centre of gravity, and the rear axle's pose.

    Attributes:
        cog: x, y (m), yaw (rad) of the centre of gravity ``(3,)``.
        rear: x, y, yaw of the rear axle (the message's pose) ``(3,)``.
        v_long, v_lat: velocity of the centre of gravity in the car's frame (m/s).
        yaw_rate: rad/s.
    """

    cog: np.ndarray
    rear: np.ndarray
    v_long: float
    v_lat: float
    yaw_rate: float


def read_odom(msg: Odometry, lr: float) -> Odom:
    """The reading of an Odometry message (see the module docstring for the frames)."""
    p, tw = msg.pose.pose, msg.twist.twist
    yaw = yaw_of(p.orientation)
    rear = np.array([p.position.x, p.position.y, yaw])
    cog = rear + np.array([lr * math.cos(yaw), lr * math.sin(yaw), 0.0])
    r = float(tw.angular.z)
    return Odom(cog, rear, float(tw.linear.x), float(tw.linear.y) + lr * r, r)


def odom_msg(
    header: Header,
    child: str,
    cog: Sequence[float],
    v_long: float,
    v_lat: float,
    r: float,
    lr: float,
) -> Odometry:
    """The Odometry of a car whose centre of gravity is at ``cog`` = (x, y, yaw) moving with
    ``v_long``, ``v_lat`` (CoG, car frame) and yaw rate ``r``: inverse of :func:`read_odom`."""
    x, y, yaw = (float(c) for c in cog)
    pose = Pose(
        position=Point(x=x - lr * math.cos(yaw), y=y - lr * math.sin(yaw), z=0.0),
        orientation=Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)),
    )
    twist = Twist(
        linear=Vector3(x=float(v_long), y=float(v_lat) - lr * float(r), z=0.0),
        angular=Vector3(x=0.0, y=0.0, z=float(r)),
    )
    return Odometry(
        header=header,
        child_frame_id=child,
        pose=PoseWithCovariance(pose=pose),
        twist=TwistWithCovariance(twist=twist),
    )


def scan_angles(msg: LaserScan) -> np.ndarray:
    """Angle (rad) of every beam of a scan ``(n,)``."""
    return msg.angle_min + np.arange(len(msg.ranges)) * float(msg.angle_increment)


def scan_beam_count(num_beams: int, policy_beams: int) -> int:
    """The beam count nearest ``num_beams`` whose beams include ``policy_beams`` beams spread
    over the same field of view: ``k·(policy_beams − 1) + 1`` (1080 and 32 beams: 1086)."""
    if policy_beams < 2:
        return max(1, num_beams)
    k = max(1, round((num_beams - 1) / (policy_beams - 1)))
    return k * (policy_beams - 1) + 1


class ScanResampler:
    """A scan's ranges at the policy's beams (nearest beam, REP 117, clipped; see the module
    docstring). The beam indices are computed once per scan geometry."""

    def __init__(self, angles: np.ndarray, max_range: float) -> None:
        self.angles = np.asarray(angles, float)
        self.max_range = float(max_range)
        self._key: tuple | None = None
        self.index = np.zeros(len(self.angles), dtype=np.int64)

    def __call__(self, msg: LaserScan) -> np.ndarray:
        n = len(msg.ranges)
        key = (float(msg.angle_min), float(msg.angle_increment), n)
        if key != self._key:
            if n == 0 or not msg.angle_increment > 0:
                raise ValueError(f"a scan of {n} beams with increment {msg.angle_increment}")
            pos = (self.angles - msg.angle_min) / msg.angle_increment
            if pos.min() < -0.5 or pos.max() > n - 0.5:
                raise ValueError(
                    f"the scan covers [{msg.angle_min:.3f}, "
                    f"{msg.angle_min + (n - 1) * msg.angle_increment:.3f}] rad, the policy's "
                    f"beams [{self.angles.min():.3f}, {self.angles.max():.3f}]"
                )
            self.index = np.clip(np.rint(pos).astype(np.int64), 0, n - 1)
            self._key = key
        r = np.asarray(msg.ranges, np.float32)[self.index].astype(np.float64)
        far = r > msg.range_max if msg.range_max > 0 else np.isposinf(r)
        near = r < msg.range_min
        r = np.where(far, self.max_range, np.where(near, 0.0, r))
        return np.clip(r, 0.0, self.max_range)  # NaN stays NaN


class SteeringReader:
    """The measured wheel angle from ``JointState`` (entry ``steering_angle``) or from a VESC's
    servo command (``Float64``, servo units)."""

    def __init__(self, source: str, gain: float = SERVO_GAIN, offset: float = SERVO_OFFSET):
        if source not in ("joint_states", "servo"):
            raise ConfigError(f"steering_source must be 'joint_states' or 'servo', got {source!r}")
        if source == "servo" and gain == 0:
            raise ConfigError("servo_gain must not be 0")
        self.source, self.gain, self.offset = source, gain, offset
        self.msg_type = JointState if source == "joint_states" else Float64
        self.angle: float | None = None

    def update(self, msg: Any) -> bool:
        """Read a message; False when it carries no steering angle (another joint's state)."""
        if self.source == "servo":
            self.angle = (float(msg.data) - self.offset) / self.gain
            return True
        if STEERING_JOINT not in msg.name:
            return False
        i = list(msg.name).index(STEERING_JOINT)
        if len(msg.position) != len(msg.name):
            raise ValueError(
                f"joint_states has {len(msg.name)} names, {len(msg.position)} positions"
            )
        self.angle = float(msg.position[i])
        return True


# ------------------------------------------------------------------------------ observation
class CarObservation:
    """The ``rccar_race`` state vector from readings, as ``RaceEnv._observe_state`` computes it
    (same Track queries in float32; the track position is searched near the last one, as the
    env does, after a global search on the first call or after :meth:`reset`).

    Args:
        spec: the task's spec.
        track: the track (centreline map) the car races.
        names: the state entries the policy reads (default: all).
    """

    def __init__(self, spec: CarSpec, track, names: Sequence[str] = ()) -> None:
        self.spec, self.track = spec, track
        names = list(names) or list(spec.state_names)
        unknown = [n for n in names if n not in spec.state_names]
        if unknown:
            raise ConfigError(
                f"the car observation has no state entries {unknown[:4]}; it has "
                f"{len(spec.state_names)} ({spec.state_names[0]} … {spec.state_names[-1]})"
            )
        self.index = np.array([spec.state_names.index(n) for n in names])
        self._lookahead = torch.tensor(spec.lookahead)
        self.seg: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the track position (a new episode, a car put down elsewhere)."""
        self.seg = None

    def __call__(
        self, odom: Odom, steer: float, ranges: np.ndarray, last_action: np.ndarray
    ) -> np.ndarray:
        """The state ``(D,)`` float64 in the order of ``names``."""
        f32 = torch.float32
        x, y, yaw = (torch.tensor([float(c)], dtype=f32) for c in odom.cog)
        v_long = torch.tensor([odom.v_long], dtype=f32)
        v_lat = torch.tensor([odom.v_lat], dtype=f32)
        xy = torch.stack((x, y), dim=-1)
        if self.seg is None:
            s, lateral, seg = self.track.progress(xy)
        else:
            s, lateral, seg = self.track.progress_near(xy, self.seg)
        self.seg = seg
        if odom.v_long != 0.0:
            beta = torch.atan(v_lat / v_long)  # |slip| < π/2, also when reversing
        else:  # at rest the slip is the kinematic one (dynamics.kinematic_slip_and_yaw_rate)
            ratio = self.spec.lr / self.spec.wheelbase
            beta = torch.atan(ratio * torch.tan(torch.tensor([steer], dtype=f32)))
        _, tangent = self.track.point_at(s)
        heading = (yaw + beta - tangent + math.pi) % (2 * math.pi) - math.pi
        pts, _ = self.track.point_at((s[:, None] + self._lookahead).flatten())
        rel = pts - xy
        c, sn = yaw.cos(), yaw.sin()
        ahead = torch.stack((c * rel[:, 0] + sn * rel[:, 1], -sn * rel[:, 0] + c * rel[:, 1]), -1)
        full = torch.cat(
            [
                v_long,
                v_lat,
                torch.tensor([odom.yaw_rate, steer], dtype=f32),
                lateral,
                heading,
                ahead.flatten(),
                torch.as_tensor(np.asarray(ranges), dtype=f32),
                torch.as_tensor(np.clip(last_action, -1.0, 1.0), dtype=f32),
            ]
        )
        if len(full) != len(self.spec.state_names):
            raise ValueError(
                f"{len(ranges)} ranges: the state has {len(full)} entries, the task "
                f"{len(self.spec.state_names)}"
            )
        return full.double().numpy()[self.index]

"""The RC car's adapters of the policy and safety nodes (:mod:`robot_rl.deploy.adapters`):
``/scan``, ``/odom`` and the measured steering angle in (conventions: :mod:`robot_rl.deploy.car`);
``/drive`` (``ackermann_msgs/AckermannDriveStamped``, into ackermann_mux) out.

Topics are the profile's (``hardware/rccar.yaml`` ``topics``); launch files remap them. The
steering angle comes from ``steering_topic``: a ``JointState`` (``steering_source:=joint_states``,
the simulator bridge) or a VESC's ``Float64`` servo command (``steering_source:=servo``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import RobotProfile
from robot_rl.deploy import adapters
from robot_rl.deploy.car import (
    CarObservation,
    CarSpec,
    Odom,
    ScanResampler,
    SteeringReader,
    load_track,
    read_odom,
    scan_angles,
)
from robot_rl.deploy.node import Out, Port
from robot_rl.deploy.qos import COMMAND, SENSOR, STATE
from robot_rl.msgs import (
    AckermannDrive,
    AckermannDriveStamped,
    Header,
    LaserScan,
    Odometry,
    to_seconds,
)


def topics(profile: RobotProfile) -> dict[str, str]:
    """The car's scan, odometry and drive topics (the profile's ``topics``)."""
    t = profile.extra.get("topics", {})
    return {k: t.get(k, f"/{k}") for k in ("scan", "odom", "drive")}


def car_spec(profile: RobotProfile, params: Mapping[str, Any], task: str = "") -> CarSpec:
    """The spec of ``task`` (default: the ``task`` parameter) with ``task_overrides`` (JSON)."""
    try:
        overrides = json.loads(params.get("task_overrides", "{}") or "{}")
    except ValueError as e:
        raise ConfigError(f"task_overrides is not JSON: {e}") from None
    return CarSpec.from_task(profile, task or params.get("task") or "rccar_race", overrides)


def _inputs(profile: RobotProfile, params: Mapping[str, Any]) -> tuple[dict, SteeringReader]:
    steering = SteeringReader(
        params["steering_source"], params["servo_gain"], params["servo_offset"]
    )
    names = topics(profile)
    ports = {
        # best effort reads a lidar driver's sensor-data QoS and a reliable writer alike
        "scan": Port(names["scan"], LaserScan, SENSOR),
        "steering": Port(params["steering_topic"], steering.msg_type, STATE),
        "odom": Port(names["odom"], Odometry, STATE),
    }
    return ports, steering


class PolicyInputs(adapters.PolicyInputs):
    """``/odom`` (the trigger), ``/scan``, the steering angle, the track (``track`` parameter)."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], config) -> None:
        self.spec = car_spec(profile, params, config.task)
        self.observe = CarObservation(self.spec, load_track(params["track"]), config.state_names)
        self.dim = len(self.observe.index)
        self.resample = ScanResampler(self.spec.beam_angles, self.spec.max_range)
        self.ports, self.steering = _inputs(profile, params)
        self.trigger = "odom"
        self.ranges: np.ndarray | None = None
        self.odom: Odom | None = None
        self.clear()

    def update(self, key: str, msg: Any) -> None:
        if key == "scan":
            self.ranges = self.resample(msg)
        elif key == "steering":
            self.steering.update(msg)
        else:
            self.odom = read_odom(msg, self.spec.lr)

    def stamp(self, msg: Odometry) -> float:
        return to_seconds(msg.header.stamp)

    def state(self) -> np.ndarray:
        missing = [
            name
            for name, value in (
                ("scan", self.ranges),
                ("steering angle", self.steering.angle),
                ("odometry", self.odom),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"no {', '.join(missing)} yet")
        return self.observe(self.odom, self.steering.angle, self.ranges, self.last)

    def acted(self, action: np.ndarray) -> None:
        self.last = np.clip(np.asarray(action, float), -1.0, 1.0)

    def clear(self) -> None:
        self.last = self.spec.neutral_action()
        self.observe.reset()


class SafetyIO(adapters.SafetyIO):
    """``q`` = [measured wheel angle, forward speed]; ``extra`` = the rear axle's ``pose``,
    ``speed``, the full scan's ``ranges`` and ``range_angles``; the action ``(2,)`` in [-1, 1]
    mapped as the task maps it (``task`` / ``task_overrides`` parameters)."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], period: float) -> None:
        self.spec = car_spec(profile, params)
        self.names = list(profile.joint_names)
        self.subscriptions, self.steering = _inputs(profile, params)
        self.measurement = f"{self.subscriptions['odom'].topic} and steering angle"
        self.publishers = {"drive": Port(topics(profile)["drive"], AckermannDriveStamped, COMMAND)}
        self.frame_id = params["frame_id"]
        self.odom: Odom | None = None
        self.ranges = self.angles = None
        self.times = {"scan": -np.inf, "steering": -np.inf, "odom": -np.inf}

    def update(self, key: str, msg: Any, now: float) -> bool:
        if key == "scan":
            ranges = np.asarray(msg.ranges, float)
            if len(ranges) == 0 or not msg.angle_increment > 0:
                raise ValueError(f"bad scan: {len(ranges)} beams, increment {msg.angle_increment}")
            self.ranges, self.angles = ranges[None], scan_angles(msg)
        elif key == "steering":
            try:
                if not self.steering.update(msg):
                    return False
            except ValueError as e:
                raise ValueError(f"bad steering: {e}") from None
        else:
            self.odom = read_odom(msg, self.spec.lr)
        self.times[key] = now
        return key == "odom" and self.steering.angle is not None

    def reading(self):
        if self.odom is None or self.steering.angle is None:
            return None, None, -np.inf, {}
        extra = {"pose": self.odom.rear[None], "speed": np.array([self.odom.v_long])}
        if self.ranges is not None:
            extra |= {"ranges": self.ranges, "range_angles": self.angles}
        q = np.array([[self.steering.angle, self.odom.v_long]])
        return q, None, min(self.times.values()), extra

    def proposal(self, action: np.ndarray, q: np.ndarray, last: np.ndarray | None) -> np.ndarray:
        if action.shape != (2,):
            return np.full((1, 2), np.nan)  # the chain fails closed on it
        return self.spec.action_to_command(action)[None]

    def command(self, applied: np.ndarray, stamp, mode: str = "policy") -> Out:
        steer, speed = (float(x) for x in applied)
        drive = AckermannDrive(steering_angle=steer, speed=speed)
        msg = AckermannDriveStamped(header=Header(stamp=stamp, frame_id=self.frame_id), drive=drive)
        return [("drive", msg)]

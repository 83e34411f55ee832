"""The arm's adapters of the policy and safety nodes (:mod:`robot_rl.deploy.adapters`):
``/joint_states`` and the cube / goal poses in; joint position commands out to two ros2_control
ForwardCommandControllers or one JointTrajectoryController."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import RobotProfile
from robot_rl.deploy import adapters
from robot_rl.deploy.arm import FINGERS, ArmObservation, EeDeltaCommand, JointCache, command_topics
from robot_rl.deploy.node import Out, Port
from robot_rl.deploy.qos import COMMAND, STATE
from robot_rl.msgs import (
    Float64MultiArray,
    JointState,
    JointTrajectory,
    JointTrajectoryPoint,
    PoseStamped,
    to_duration,
    to_seconds,
)


class PolicyInputs(adapters.PolicyInputs):
    """``/joint_states`` (the trigger) and the cube and goal poses (``PoseStamped``)."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], config) -> None:
        self.observe = ArmObservation(profile, config.state_names)
        self.joints = JointCache(self.observe.joint_names)
        self.dim = len(self.observe.index)
        self.ports = {
            "cube": Port(params["cube_pose_topic"], PoseStamped, STATE),
            "goal": Port(params["goal_pose_topic"], PoseStamped, STATE),
            "joints": Port(params["joint_states_topic"], JointState, STATE),
        }
        self.trigger = "joints"
        self.cube = self.goal = None

    def update(self, key: str, msg: Any) -> None:
        if key == "joints":
            self.joints.update(msg)
        elif key == "cube":
            self.cube = msg.pose
        else:
            self.goal = msg.pose

    def stamp(self, msg: JointState) -> float:
        return to_seconds(msg.header.stamp)

    def state(self) -> np.ndarray:
        return self.observe(*self.joints.arrays(), self.cube, self.goal)

    def clear(self) -> None:
        self.cube = self.goal = None  # the last episode's objects are gone


class SafetyIO(adapters.SafetyIO):
    """Joints from ``/joint_states``; the ``ee_delta`` action through the IK (or ``joint``:
    the command itself); commands to the ``forward`` controllers or a ``trajectory``."""

    def __init__(self, profile: RobotProfile, params: Mapping[str, Any], period: float) -> None:
        self.period = period
        if params["action_mode"] == "ee_delta":
            self.mapper = EeDeltaCommand(profile, period, params["ik_damping"])
        elif params["action_mode"] != "joint":
            raise ConfigError(
                f"action_mode must be 'ee_delta' or 'joint', got {params['action_mode']!r}"
            )
        else:
            self.mapper = None
        self.names = [*profile.joint_names, FINGERS[0]]
        self.joints = JointCache(self.names)
        arm, gripper = command_topics(profile)
        if params["command_interface"] == "forward":
            self.publishers = {
                "arm": Port(arm, Float64MultiArray, COMMAND),
                "gripper": Port(gripper, Float64MultiArray, COMMAND),
            }
        elif params["command_interface"] == "trajectory":
            topic = params["trajectory_topic"]
            self.publishers = {"trajectory": Port(topic, JointTrajectory, COMMAND)}
        else:
            raise ConfigError(
                "command_interface must be 'forward' or 'trajectory', "
                f"got {params['command_interface']!r}"
            )
        self.measurement = params["joint_states_topic"]
        self.subscriptions = {"joints": Port(self.measurement, JointState, STATE)}
        self.q = self.dq = None
        self.time = -np.inf

    def update(self, key: str, msg: JointState, now: float) -> bool:
        try:
            self.joints.update(msg)
            q, dq = self.joints.arrays()
        except ValueError as e:
            raise ValueError(f"bad joint_states: {e}") from None
        self.q, self.time = q[None], now
        self.dq = None if dq is None else dq[None]
        return True

    def reading(self):
        return self.q, self.dq, self.time, {}

    def proposal(self, action: np.ndarray, q: np.ndarray, last: np.ndarray | None) -> np.ndarray:
        nan = np.full((1, len(self.names)), np.nan)
        if self.mapper is None:
            return action[None] if action.shape == nan.shape[1:] else nan
        if action.shape != (7,) or not np.isfinite(q).all():
            return nan  # the chain fails closed on it
        return self.mapper(q[0], action, None if last is None else last[0])[None]

    def command(self, applied: np.ndarray, stamp, mode: str = "policy") -> Out:
        cmd = [float(x) for x in applied]
        if "trajectory" in self.publishers:
            point = JointTrajectoryPoint(positions=cmd, time_from_start=to_duration(self.period))
            # an empty stamp: the controller starts the trajectory on receipt
            msg = JointTrajectory(joint_names=list(self.names), points=[point])
            return [("trajectory", msg)]
        return [
            ("arm", Float64MultiArray(data=cmd[:-1])),
            ("gripper", Float64MultiArray(data=cmd[-1:])),
        ]

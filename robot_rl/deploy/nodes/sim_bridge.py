"""``sim_bridge_node``: a simulated task presented as a robot on ROS 2 topics.

The arm (``ArmEnv`` tasks): publishes what the arm's drivers and perception would:
``/joint_states`` (the six joints and both fingers), the tool pose, the cube and goal poses;
consumes the controllers' command topics (``Float64MultiArray``, as ros2_control's
ForwardCommandController), holding the last command like a position controller does.
The RC car (``rccar_race``, :mod:`robot_rl.deploy.nodes.car_sim`): publishes ``/scan``,
``/odom`` and the steering angle, consumes ``/drive`` (``AckermannDriveStamped``).
The humanoid (``humanoid_balance`` / ``humanoid_walk``, :mod:`robot_rl.deploy.nodes.humanoid_sim`):
publishes ``/lowstate`` (Unitree-style ``LowState_``) and ``/cmd_vel``, consumes ``/lowcmd``.

Either way it steps the task in real time (one control step per control period) and reports
each episode on ``/sim/episode`` (``std_msgs/String`` JSON: ``{"event": "start" | "end", ...}``),
which evaluation reads and the policy and safety nodes use to forget the episode.

Header stamps run on simulated time (started at the wall clock), so a stamp changes only when
physics advanced: a policy acts once per simulated step. Between two episodes the bridge spends
one period publishing only the ``start`` event, so every node has seen it before the new
episode's first observation.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.arm import FINGERS, command_topics
from robot_rl.deploy.node import NodeLogic, Out, Port
from robot_rl.deploy.qos import COMMAND, LATCHED, STATE
from robot_rl.envs import make
from robot_rl.envs.tasks.arm.base import ArmEnv
from robot_rl.msgs import (
    Float64MultiArray,
    Header,
    JointState,
    Point,
    Pose,
    PoseStamped,
    Quaternion,
    String,
    to_time,
)


def matrix_quat(m: np.ndarray) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation matrix (Shepperd's method)."""
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        return 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
    q = [0.0, 0.0, 0.0, 0.0]
    q[0] = (m[k, j] - m[j, k]) / s
    q[1 + i] = 0.25 * s
    q[1 + j] = (m[j, i] + m[i, j]) / s
    q[1 + k] = (m[k, i] + m[i, k]) / s
    return q[0], q[1], q[2], q[3]


def pose_msg(header: Header, pos: np.ndarray, mat: np.ndarray) -> PoseStamped:
    w, x, y, z = matrix_quat(mat)
    return PoseStamped(
        header=header,
        pose=Pose(
            position=Point(x=float(pos[0]), y=float(pos[1]), z=float(pos[2])),
            orientation=Quaternion(x=x, y=y, z=z, w=w),
        ),
    )


class ArmSim:
    """The arm's side of the bridge: joint, tool and object topics out, joint commands in."""

    def __init__(self, env: ArmEnv, params: dict[str, Any], log) -> None:
        self.env, self.params, self.log = env, params, log
        prof = env.profile
        topics = prof.extra.get("topics", {})
        self.names = [*prof.joint_names, *FINGERS]
        self.publishers = {
            "joints": Port(topics.get("joint_states", "/joint_states"), JointState, STATE),
            "ee": Port(topics.get("ee_pose", "/ee_pose"), PoseStamped, STATE),
            "cube": Port(params["cube_pose_topic"], PoseStamped, STATE),
            "goal": Port(params["goal_pose_topic"], PoseStamped, STATE),
        }
        arm, gripper = command_topics(prof)
        self.subscriptions = {
            "arm": Port(arm, Float64MultiArray, COMMAND),
            "gripper": Port(gripper, Float64MultiArray, COMMAND),
        }
        self.command = self.initial_command()

    def initial_command(self) -> np.ndarray:
        """What the controllers hold at an episode's start: where the arm stands."""
        q, _ = self.env.command_joints
        return q[0].numpy().copy()

    def take(self, key: str, msg: Float64MultiArray) -> None:
        data = np.asarray(msg.data, float)
        if key == "arm":
            if data.shape != (len(self.names) - 2,) or not np.isfinite(data).all():
                self.log(f"sim_bridge: ignored a joint command of shape {data.shape} or not finite")
                return
            self.command[:-1] = data
        else:
            if data.shape != (1,) or not np.isfinite(data).all():
                self.log(f"sim_bridge: ignored a gripper command {list(data)[:3]}")
                return
            self.command[-1] = data[0]

    def result(self, info: dict) -> dict[str, Any]:
        return {}

    def observe(self, stamp) -> Out:
        env = self.env
        header = Header(stamp=stamp, frame_id=self.params["frame_id"])
        q, dq = env.command_joints
        fingers = env.finger_positions[0].numpy()
        finger_vel = float(dq[0, -1])
        joints = JointState(
            header=header,
            name=list(self.names),
            position=[float(x) for x in q[0, :-1]] + [float(f) for f in fingers],
            velocity=[float(x) for x in dq[0, :-1]] + [finger_vel, finger_vel],
            effort=[],
        )
        # the poses first: a policy acts on /joint_states and must have this tick's poses by then
        return [
            ("cube", pose_msg(header, env.cube_pos[0].numpy(), env.cube_mat[0].numpy())),
            ("goal", pose_msg(header, env.goal[0].numpy(), np.eye(3))),
            ("ee", pose_msg(header, env.tcp_pos[0].numpy(), env.tcp_mat[0].numpy())),
            ("joints", joints),
        ]


class SimBridgeNode(NodeLogic):
    """Parameters: ``task`` (an arm task, ``rccar_race`` or a humanoid task), ``seed``, ``episodes``
    (stop stepping after this many; 0: run on), ``task_overrides`` (JSON of task config fields),
    ``wait_topic`` (a ``std_msgs/String`` topic; the first episode starts once ``policy`` is
    published there, e.g. the safety node's mode), topic names. The car also reads ``track`` (race
    this track of ``sim/tracks`` instead of the task's), ``steering_topic`` and ``scan_beams``
    (beams of the published scan; 0: the profile's count, adjusted so that the policy's beams
    are among them)."""

    default_name = "sim_bridge"
    parameters: dict[str, Any] = {
        "task": "arm_reach",
        "seed": 0,
        "episodes": 0,
        "task_overrides": "{}",
        "wait_topic": "",
        "frame_id": "base_link",
        "cube_pose_topic": "/cube_pose",
        "goal_pose_topic": "/goal_pose",
        "episode_topic": "/sim/episode",
        # the car (rccar_race)
        "track": "",
        "steering_topic": "/joint_states",
        "scan_beams": 0,
    }

    def __init__(self, params=None, clock=None, env=None) -> None:
        super().__init__(params, clock)
        p = self.params
        if env is None:
            try:
                overrides = json.loads(p["task_overrides"])
            except ValueError as e:
                raise ConfigError(f"sim_bridge: task_overrides is not JSON: {e}") from None
            if p["track"]:
                overrides["tracks"] = [p["track"]]
            env = make(p["task"], 1, seed=p["seed"], **overrides)
        self.env = env
        env.reset(seed=p["seed"])
        from robot_rl.envs.tasks.humanoid.base import HumanoidEnv

        if isinstance(env, ArmEnv):
            self.robot = ArmSim(env, p, lambda text: self.log(text))
        elif isinstance(env, HumanoidEnv):
            from robot_rl.deploy.nodes.humanoid_sim import HumanoidSim

            self.robot = HumanoidSim(env, p, lambda text: self.log(text))
        else:
            from robot_rl.deploy.nodes.car_sim import CarSim
            from robot_rl.envs.tasks.car.race import RaceEnv

            if not isinstance(env, RaceEnv):
                raise ConfigError(
                    "sim_bridge presents arm tasks, rccar_race and the humanoid tasks, not "
                    f"{type(env).__name__}"
                )
            self.robot = CarSim(env, p, lambda text: self.log(text))
        self.period = env.control_dt
        self.publishers = {
            **self.robot.publishers,
            "episode": Port(p["episode_topic"], String, STATE),
        }
        self.subscriptions = dict(self.robot.subscriptions)
        for key in self.robot.subscriptions:  # on_arm, on_gripper / on_drive
            setattr(self, f"on_{key}", lambda msg, k=key: self._on_command(k, msg))
        if p["wait_topic"]:
            # latched, as the safety node publishes its mode: a late joiner still reads it
            self.subscriptions["ready"] = Port(p["wait_topic"], String, LATCHED)
        self.timers = {"step": self.period}
        self.started = not p["wait_topic"]
        # a robot whose command is more than the env's command vector applies it itself
        env.command_filter = getattr(self.robot, "command_filter", self._apply)
        self.sim_time = time.time()
        self.episode = 0
        self.results: list[dict[str, Any]] = []
        # between episodes: one tick announces the episode ("start"), the next presents its
        # first observation, then every tick steps
        self.phase = "announce"
        self.accepting = False
        self.done = False
        self._neutral = env._neutral_action()[None]

    @property
    def command(self) -> np.ndarray:
        """The command the simulated controllers hold (the last one received)."""
        return self.robot.command

    @command.setter
    def command(self, value: np.ndarray) -> None:
        self.robot.command = np.asarray(value, float)

    def _apply(self, env, command: torch.Tensor) -> torch.Tensor:
        """The env's command filter: the last received command replaces the task's own."""
        return torch.as_tensor(self.command, dtype=command.dtype)[None]

    # ----------------------------------------------------------------------------------
    def _on_command(self, key: str, msg: Any) -> Out:
        if not self.accepting and self.started:
            return []  # a command for the episode that just ended
        self.robot.take(key, msg)
        return []

    def on_ready(self, msg: String) -> Out:
        if msg.data == "policy":
            self.started = True

    def tick_step(self) -> Out:
        if self.done:
            return []
        if not self.started:
            return self._observe()  # present the robot while waiting, without stepping
        if self.phase == "announce":
            self.phase = "present"
            return [("episode", self._event("start"))]
        if self.phase == "present":
            # the new episode's first observation; commands from now on are for it
            self.phase = "run"
            self.command = self.robot.initial_command()
            self.accepting = True
            return self._observe()
        _, _, term, trunc, info = self.env.step(self._neutral)
        self.sim_time += self.period
        if not bool((term | trunc)[0]):
            return self._observe()
        ep = info["episode"]
        result = {
            "episode": self.episode,
            "success": bool(ep["success"][0]),
            "length": int(ep["length"][0]),
            "return": float(ep["return"][0]),
            **self.robot.result(info),
        }
        self.results.append(result)
        outcome = "success" if result["success"] else "failure"
        self.log(f"episode {self.episode}: {outcome} in {result['length']} steps")
        out: Out = [("episode", self._event("end", **result))]
        self.episode += 1
        self.phase, self.accepting = "announce", False
        if self.params["episodes"] and self.episode >= self.params["episodes"]:
            self.done = True
            out.append(("episode", self._event("done", episodes=self.episode)))
        return out

    def activate(self) -> Out:
        return self._observe()

    # ----------------------------------------------------------------------------------
    def _event(self, event: str, **extra: Any) -> String:
        return String(data=json.dumps({"event": event, "episode": self.episode, **extra}))

    def _observe(self) -> Out:
        return self.robot.observe(to_time(self.sim_time))

"""The humanoid's side of ``sim_bridge_node``: ``humanoid_balance`` / ``humanoid_walk`` (one robot)
as a Unitree-style robot on bare DDS (:mod:`robot_rl.deploy.humanoid_io`).

Publishes, each control period, the task's commanded base velocity on ``/cmd_vel``
(``geometry_msgs/Twist``: the simulated operator's joystick) and then ``/lowstate``
(``LowState_``: the profile's motors, the pelvis IMU, ``tick`` = simulated milliseconds, CRC).
Consumes ``/lowcmd`` (``LowCmd_``) as the motor drivers do: a message with a wrong CRC is dropped;
per motor the last command is held and applied by the simulated PD loop (200 Hz) as
``tau + kp (q - q_meas) + kd (dq - dq_meas)``, clipped to the joint's effort limit; a disabled
motor (mode 0) gives no torque. So kp = 0 with kd > 0 damps, kp = kd = 0 leaves the joint passive.
The actuators' gains are rewritten every step, which replaces the task's actuator-gain
randomization.

Launch the task with ``terminate_on_fall: false`` (``launch/humanoid_sim.launch.xml`` does): the
robot then lies where it fell and the safety node sees it, as on hardware.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.humanoid_io import HumanoidSpec, topics
from robot_rl.deploy.node import Out, Port
from robot_rl.deploy.qos import COMMAND, SENSOR, STATE
from robot_rl.envs.tasks.humanoid.base import HumanoidEnv
from robot_rl.msgs import LowCmd_, LowState_, MotorState_, Twist, Vector3, low_cmd_crc
from robot_rl.msgs.unitree_hg import low_state_crc, quat_rpy

Q, DQ, TAU, KP, KD = range(5)
"""Rows of :attr:`HumanoidSim.command` ``(5, 12)``."""


class HumanoidSim:
    """A humanoid task with one robot behind ``/lowcmd``; see the module docstring."""

    def __init__(self, env: HumanoidEnv, params: dict[str, Any], log) -> None:
        if env.num_envs != 1:
            raise ConfigError(f"sim_bridge runs one humanoid, the env has {env.num_envs}")
        self.env, self.params, self.log = env, params, log
        self.spec = HumanoidSpec.of(env.profile)
        t = topics(env.profile)
        self.publishers = {
            "cmd_vel": Port(t["velocity_command"], Twist, STATE),
            "state": Port(t["low_state"], LowState_, SENSOR),
        }
        self.subscriptions = {"low_cmd": Port(t["low_command"], LowCmd_, COMMAND)}
        model = env.backend.model
        a = int(model.sensor("imu_acc").adr[0])
        self._s_acc = slice(a, a + 3)
        self._gain = env.backend.model_field("actuator_gainprm")
        self._bias = env.backend.model_field("actuator_biasprm")
        self.dropped = 0
        self.command = self.initial_command()

    def initial_command(self) -> np.ndarray:
        """At an episode's start the drivers hold the default pose with the profile's gains
        (as the task's own PD does): rows q, dq, tau, kp, kd ``(5, 12)``."""
        spec, zero = self.spec, np.zeros(len(self.spec.names))
        return np.stack([spec.default, zero, zero, spec.kp, spec.kd])

    def take(self, key: str, msg: LowCmd_) -> None:
        if low_cmd_crc(msg) != msg.crc:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                self.log(f"sim_bridge: dropped {self.dropped} LowCmd_ with a wrong crc")
            return
        motors = [msg.motor_cmd[i] for i in self.spec.motors]
        cmd = np.array([[m.q, m.dq, m.tau, m.kp, m.kd] for m in motors], float).T
        on = np.array([m.mode != 0 for m in motors])
        cmd[TAU:, ~on] = 0.0  # a disabled motor gives no torque
        if not np.isfinite(cmd).all() or (cmd[KP:] < 0).any():
            self.log("sim_bridge: ignored a LowCmd_ with non-finite values or negative gains")
            return
        self.command = cmd

    def command_filter(self, env: HumanoidEnv, target: torch.Tensor) -> torch.Tensor:
        """The env's joint targets ``(1, 12)`` replaced by the command's; the PD actuators'
        gains set to its kp, kd and a constant ``tau + kd · dq`` (MuJoCo's position actuator:
        ``gain · ctrl + b0 + b1 q + b2 q̇`` with gain = kp, b1 = −kp, b2 = −kd)."""
        c, act = self.command, env._act
        self._gain[0, act, 0] = torch.as_tensor(c[KP])
        self._bias[0, act, 0] = torch.as_tensor(c[TAU] + c[KD] * c[DQ])
        self._bias[0, act, 1] = torch.as_tensor(-c[KP])
        self._bias[0, act, 2] = torch.as_tensor(-c[KD])
        return torch.as_tensor(c[Q])[None]

    def result(self, info: dict) -> dict[str, Any]:
        m = info["episode"].get("metrics", {})
        return {k: float(v[0]) for k, v in m.items()}

    def low_state(self, tick: int) -> LowState_:
        """The robot's ``LowState_`` now (its motors in the profile's slots, IMU, CRC)."""
        env = self.env
        q, dq = env.joint_pos[0].tolist(), env.joint_vel[0].tolist()
        tau = env.torques[0].tolist()
        msg = LowState_(tick=tick % 2**32)
        for j, slot in enumerate(self.spec.motors):
            msg.motor_state[slot] = MotorState_(mode=1, q=q[j], dq=dq[j], tau_est=tau[j])
        quat = env.base_quat[0].tolist()
        imu = msg.imu_state
        imu.quaternion = quat
        imu.gyroscope = env.base_ang_vel[0].tolist()
        imu.accelerometer = env._sensors[0, self._s_acc].tolist()
        imu.rpy = list(quat_rpy(quat))
        msg.crc = low_state_crc(msg)
        return msg

    def observe(self, stamp) -> Out:
        vx, vy, wz = (float(x) for x in self.env.command[0])
        twist = Twist(linear=Vector3(x=vx, y=vy), angular=Vector3(z=wz))
        tick = round((stamp.sec + stamp.nanosec * 1e-9) * 1000)
        # the command first: a policy acts on /lowstate and must have this tick's command by then
        return [("cmd_vel", twist), ("state", self.low_state(tick))]

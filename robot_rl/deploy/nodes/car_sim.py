"""The RC car's side of ``sim_bridge_node``: ``rccar_race`` (one car) as an F1TENTH-style car.

Publishes, each control period, ``/scan`` (``sensor_msgs/LaserScan``, best effort like a lidar
driver), the measured wheel angle (``sensor_msgs/JointState`` entry ``steering_angle`` on
``steering_topic``) and ``/odom`` (``nav_msgs/Odometry`` of the rear axle, the frames of
:mod:`robot_rl.deploy.car`), in that order: a policy acts on ``/odom``. Consumes ``/drive``
(``AckermannDriveStamped``): the car's drive holds the last command, as a VESC does.

The scan: the profile's lidar (``hardware/rccar.yaml``: range, ``range_min``) with the beam count
nearest the profile's whose beams include the task's ``lidar_beams`` exactly
(:func:`~robot_rl.deploy.car.scan_beam_count`: 1086 for 1080 and 32), over the task's field of
view, cast from the same mount. Those included beams carry the task's own ranges (its noise
draw too), so nearest-beam resampling gives the policy exactly the simulator's observation; the
beams between them are cast by a second lidar (same noise level, its own generator).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.car import odom_msg, scan_beam_count
from robot_rl.deploy.car_io import topics
from robot_rl.deploy.node import Out, Port
from robot_rl.deploy.qos import COMMAND, SENSOR, STATE
from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig
from robot_rl.envs.tasks.car.race import RaceEnv
from robot_rl.msgs import AckermannDriveStamped, Header, JointState, LaserScan, Odometry


class CarSim:
    """``rccar_race`` with one car behind ``/drive``; see the module docstring."""

    def __init__(self, env: RaceEnv, params: dict[str, Any], log) -> None:
        if env.num_envs != 1:
            raise ConfigError(f"sim_bridge runs one car, the env has {env.num_envs}")
        self.env, self.params, self.log = env, params, log
        prof = env.profile
        names = topics(prof)
        self.publishers = {
            "scan": Port(names["scan"], LaserScan, SENSOR),
            "steering": Port(params["steering_topic"], JointState, STATE),
            "odom": Port(names["odom"], Odometry, STATE),
        }
        self.subscriptions = {"drive": Port(names["drive"], AckermannDriveStamped, COMMAND)}
        lidar = prof.extra.get("lidar", {})
        cfg = env.lidar_cfg
        wanted = params["scan_beams"] or int(lidar.get("num_beams", 1080))
        beams = scan_beam_count(wanted, cfg.num_beams)
        if (beams - 1) % max(cfg.num_beams - 1, 1):
            raise ConfigError(
                f"scan_beams {beams}: the task's {cfg.num_beams} beams are not among them; "
                f"use k·{cfg.num_beams - 1} + 1 beams"
            )
        self.stride = (beams - 1) // max(cfg.num_beams - 1, 1)
        self.range_min = float(lidar.get("range_min", 0.0))
        self.range_max = max(float(lidar.get("range_max", cfg.max_range)), cfg.max_range)
        self.scan_cfg = LidarConfig(
            num_beams=beams,
            fov=cfg.fov,
            max_range=self.range_max,
            noise_std=cfg.noise_std,
            mount_offset=cfg.mount_offset,
            method="brute",  # one car: a segment grid out to 30 m would cost more than it saves
        )
        self.lidars: dict[int, Lidar] = {}
        self.gen = torch.Generator().manual_seed(int(params["seed"]))
        self.command = self.initial_command()

    def initial_command(self) -> np.ndarray:
        """At an episode's start the car stands, wheels straight."""
        return np.zeros(2)

    def take(self, key: str, msg: AckermannDriveStamped) -> None:
        cmd = np.array([msg.drive.steering_angle, msg.drive.speed], float)
        if not np.isfinite(cmd).all():
            self.log(f"sim_bridge: ignored a drive command {list(cmd)}")
            return
        self.command = cmd

    def result(self, info: dict) -> dict[str, Any]:
        """The episode's track, laps, lap time (s; None unless it finished), crash and stuck."""
        env = self.env
        m = {k: float(v[0]) for k, v in info["episode"].get("metrics", {}).items()}
        success = bool(info["episode"]["success"][0])
        lap_time = m.get("lap_time", float("nan"))
        return {
            "track": env.tracks[int(env.track_id[0])].name,
            "laps": env.cfg.laps if success else 0.0,
            "lap_time_s": lap_time if lap_time == lap_time else None,
            "crashed": bool(m.get("crash", float(info["reward_terms"]["crash"][0]))),
            "stuck": bool(m.get("stuck", 0.0)),
        }

    def scan(self) -> np.ndarray:
        """The published ranges ``(B,)``: the task's beams are the task's own ranges."""
        env = self.env
        t = int(env.track_id[0])
        if t not in self.lidars:
            self.lidars[t] = Lidar(env.tracks[t].boundary_segments(), self.scan_cfg)
        ranges = self.lidars[t].scan(env.pose[:1], self.gen)[0].numpy().copy()
        own = env.ranges[0].numpy()
        sub = ranges[:: self.stride]
        # a beam the task clips at its range reads at least that (farther: the same to it)
        ranges[:: self.stride] = np.where(
            own < env.cfg.lidar_max_range, own, np.maximum(sub, env.cfg.lidar_max_range)
        )
        return ranges

    def observe(self, stamp) -> Out:
        env = self.env
        st = env.backend.state[0]
        cfg = self.scan_cfg
        scan = LaserScan(
            header=Header(stamp=stamp, frame_id="laser"),
            angle_min=-cfg.fov / 2,
            angle_max=cfg.fov / 2,
            angle_increment=cfg.fov / (cfg.num_beams - 1),
            scan_time=env.control_dt,
            range_min=self.range_min,
            range_max=self.range_max,
            ranges=[float(r) for r in self.scan()],
        )
        steering = JointState(
            header=Header(stamp=stamp, frame_id=self.params["frame_id"]),
            name=["steering_angle"],
            position=[float(st[D.STEER])],
        )
        # as RaceEnv._observe_state computes them (float32)
        v_long = float(st[D.V] * st[D.SLIP].cos())
        v_lat = float(st[D.V] * st[D.SLIP].sin())
        odom = odom_msg(
            Header(stamp=stamp, frame_id="odom"),
            self.params["frame_id"],
            env.pose[0].tolist(),
            v_long,
            v_lat,
            float(st[D.YAW_RATE]),
            float(env.profile.extra.get("vehicle", {}).get("lr", 0.17145)),
        )
        return [("scan", scan), ("steering", steering), ("odom", odom)]

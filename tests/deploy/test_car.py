"""The RC car on ROS topics: the policy's state vector built from ``/odom``, ``/scan`` and the
steering angle equals ``RaceEnv``'s own observation, state for state; the scan resampling and the
odometry frames; the three nodes drive the car through a graph on a manual clock."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.core import load_profile
from robot_rl.deploy.car import (
    SERVO_GAIN,
    SERVO_OFFSET,
    CarSpec,
    ScanResampler,
    SteeringReader,
    odom_msg,
    read_odom,
    scan_beam_count,
)
from robot_rl.deploy.graph import LocalGraph
from robot_rl.deploy.launch.parse import parse_launch
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.policy import PolicyNode
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
from robot_rl.deploy.rosargs import NodeOptions, parse_ros_args
from robot_rl.envs import make
from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.msgs import Float64, Header, JointState, LaserScan, String
from robot_rl.policies import FlowConfig, FlowPolicy

PROFILE = load_profile("rccar")
CAR = {"profile": "rccar", "safety": "rccar"}


def car_policy(env, seed: int = 0) -> FlowPolicy:
    """A randomly initialised flow policy reading the task's whole state."""
    torch.manual_seed(seed)
    cfg = FlowConfig.from_dict(
        {"state_dim": len(env.state_names), "action_dim": 2, "task": "rccar_race",
         "state_names": list(env.state_names), "horizon": 8, "action_steps": 4,
         "unet": {"down_dims": [8, 16], "time_dim": 16}, "state_hidden": 16,
         "state_features": 16, "integration_steps": 2}
    )  # fmt: skip
    return FlowPolicy(cfg).eval()


def test_scan_beam_count_includes_the_policys_beams():
    assert scan_beam_count(1080, 32) == 1086  # 35 · 31 + 1
    assert scan_beam_count(32, 32) == 32
    assert scan_beam_count(1000, 1) == 1000


def test_nearest_beam_resampling_and_rep117_readings():
    angles = np.array([-1.0, 0.0, 1.0])
    scan = LaserScan(
        angle_min=-1.2, angle_increment=0.1, range_min=0.1, range_max=20.0,
        ranges=[float(i) for i in range(25)],
    )  # fmt: skip
    r = ScanResampler(angles, max_range=10.0)(scan)
    np.testing.assert_allclose(r, [2.0, 10.0, 10.0])  # beams 2, 12 (clipped), 22 (clipped)
    scan.ranges[2], scan.ranges[12], scan.ranges[22] = math.inf, 0.05, math.nan
    r = ScanResampler(angles, max_range=10.0)(scan)
    assert r[0] == 10.0 and r[1] == 0.0 and math.isnan(r[2])  # no return, too close, broken
    narrow = LaserScan(angle_min=-0.5, angle_increment=0.1, range_max=20.0, ranges=[1.0] * 11)
    with pytest.raises(ValueError, match="covers"):
        ScanResampler(angles, 10.0)(narrow)


def test_odometry_is_the_rear_axle_and_converts_back_to_the_centre_of_gravity():
    lr = 0.17
    msg = odom_msg(Header(), "base_link", (1.0, 2.0, math.pi / 2), 3.0, 0.2, 0.5, lr)
    # the rear axle lies lr behind the centre of gravity; its lateral speed lacks lr·ω
    assert msg.pose.pose.position.x == pytest.approx(1.0)
    assert msg.pose.pose.position.y == pytest.approx(2.0 - lr)
    assert msg.twist.twist.linear.y == pytest.approx(0.2 - lr * 0.5)
    odom = read_odom(msg, lr)
    np.testing.assert_allclose(odom.cog, [1.0, 2.0, math.pi / 2], atol=1e-12)
    assert (odom.v_long, odom.v_lat, odom.yaw_rate) == pytest.approx((3.0, 0.2, 0.5))


def test_the_action_maps_onto_the_drive_as_the_task_maps_it():
    env = make("rccar_race", 1, seed=0)
    spec = CarSpec.from_task(PROFILE)
    a = torch.tensor([[0.3, -0.2]])
    np.testing.assert_allclose(
        spec.action_to_command(a[0].numpy()), env.action_to_command(a)[0].numpy(), atol=1e-6
    )
    np.testing.assert_allclose(spec.neutral_action(), env._neutral_action().numpy())
    assert list(spec.state_names) == env.state_names


@pytest.mark.parametrize("track", ["oval", "hairpin"])
def test_the_state_through_messages_is_the_envs_state(track):
    env = make("rccar_race", 1, seed=4, tracks=[track])
    bridge = SimBridgeNode({"task": "rccar_race", "seed": 4}, ManualClock(), env=env)
    node = PolicyNode(
        {"profile": "rccar", "track": track, "inference_budget_s": 60.0},
        ManualClock(),
        policy=car_policy(env),
    )
    gen = torch.Generator().manual_seed(0)
    obs = env.reset(seed=4)["state"]
    follow = env.state_names.index("ahead_2m_y")
    checked, slipping, episodes = 0, 0, 0
    for step in range(120):
        # follow the centreline at speed with a noisy wheel: the car slips, the lidar sees walls
        steer = 1.5 * obs[0, follow] + 0.3 * torch.randn(1, generator=gen)
        a = torch.stack((steer, torch.full((1,), 0.3)), dim=-1).clamp(-1, 1)
        bridge.command = env.action_to_command(a)[0].numpy()  # as if /drive carried it
        obs = env.step(a)[0]["state"]
        if int(env.episode_step[0]) == 0:  # a new episode: the node hears "start"
            node.inputs.clear()
            episodes += 1
            a = env._neutral_action()[None]
        expected = env._observe_state()[0].double().numpy()
        msgs = dict(bridge._observe())
        node.on_scan(msgs["scan"])
        node.on_steering(msgs["steering"])
        node.inputs.update("odom", msgs["odom"])
        node.inputs.acted(a[0].numpy())  # the env's last action: what the policy sent
        ours = node.inputs.state()
        np.testing.assert_allclose(ours, expected, atol=1e-5, err_msg=f"step {step}")
        checked += 1
        slipping += abs(float(env.backend.state[0, D.SLIP])) > 1e-2
    assert checked == 120 and slipping > 20


def car_graph(seed=2, track="oval", safety=None):
    clock = ManualClock(1000.0)
    env = make("rccar_race", 1, seed=seed, tracks=[track])
    bridge = SimBridgeNode({"task": "rccar_race", "seed": seed, "episodes": 2}, clock, env=env)
    params = {**CAR, "track": track, "reset_topic": "/sim/episode", "inference_budget_s": 60.0}
    policy = PolicyNode({k: v for k, v in params.items() if k != "safety"}, clock, car_policy(env))
    safety = SafetyNode(
        {**CAR, "engage": True, "ramp_s": 0.1, "reset_topic": "/sim/episode"} | (safety or {}),
        clock,
    )
    nodes = (bridge, policy, safety)
    for n in nodes:
        n.log = lambda text: None
    graph = LocalGraph([(n, NodeOptions(n.default_name)) for n in nodes], clock)
    return graph, bridge, policy, safety


def test_the_car_graph_drives_and_commands_only_through_the_safety_node():
    graph, bridge, policy, safety = car_graph()
    build, gaps = policy.inputs.state, []

    def state():  # what the policy reads against what the simulator observes at that moment
        ours = build()
        expected = bridge.env._observe_state()[0].double().numpy()
        gaps.append(np.abs(ours[:-2] - expected[:-2]).max())  # the env's last action: the bridge's
        return ours

    policy.inputs.state = state
    graph.start()
    bridge.started = True
    graph.run_until(1003.0)
    assert len(gaps) >= 50 and max(gaps) < 1e-5
    drives = graph.published["/drive"]
    actions = graph.published["/policy_node/action_raw"]
    assert policy.stats["observations"] >= 50 and len(actions) >= 50
    assert len(drives) >= len(actions)
    cmds = np.array([[m.drive.steering_angle, m.drive.speed] for m in drives])
    assert np.isfinite(cmds).all()
    assert np.abs(cmds[:, 0]).max() <= 0.4189 + 1e-6 and cmds[:, 1].max() <= 7.0 + 1e-6
    # the bridge applies what the safety node commands
    last = drives[-1].drive
    np.testing.assert_allclose(bridge.command, [last.steering_angle, last.speed], atol=1e-6)
    assert safety.modes.mode.value == "policy"


def test_the_servo_command_reads_as_the_wheel_angle():
    reader = SteeringReader("servo")
    assert reader.update(Float64(data=SERVO_GAIN * 0.2 + SERVO_OFFSET))
    assert reader.angle == pytest.approx(0.2)
    joints = SteeringReader("joint_states")
    assert not joints.update(JointState(name=["wheel"], position=[1.0]))  # not ours: ignored
    assert joints.update(JointState(name=["wheel", "steering_angle"], position=[1.0, -0.1]))
    assert joints.angle == -0.1


def test_the_policy_node_acts_on_odometry_and_feeds_back_its_last_action():
    env = make("rccar_race", 1, seed=1, tracks=["oval"])
    bridge = SimBridgeNode({"task": "rccar_race", "seed": 1}, ManualClock(), env=env)
    params = {"profile": "rccar", "track": "oval", "inference_budget_s": 60.0}
    node = PolicyNode(params, ManualClock(), policy=car_policy(env))
    msgs = dict(bridge._observe())
    assert node.on_odom(msgs["odom"]) == []  # no scan or steering angle yet: no action
    node.on_scan(msgs["scan"])
    node.on_steering(msgs["steering"])
    ((key, first),) = node.on_odom(msgs["odom"])
    assert key == "action" and len(first.data) == 2
    assert node.on_odom(msgs["odom"]) == []  # the same stamp again: no second action
    bridge.sim_time += env.control_dt
    msgs = dict(bridge._observe())
    node.on_scan(msgs["scan"])
    node.on_steering(msgs["steering"])
    ((_, second),) = node.on_odom(msgs["odom"])  # one control period later: the next action
    # the state the next observation builds reads the last action back, clipped as the env clips
    np.testing.assert_allclose(node.inputs.state()[-2:], np.clip(second.data, -1, 1), atol=1e-6)
    node.on_reset(String(data='{"event": "start", "episode": 1}'))
    np.testing.assert_allclose(node.inputs.state()[-2:], env._neutral_action().numpy())


def test_the_real_car_launch_file_remaps_the_topics_and_its_parameters_resolve():
    root = Path(__file__).resolve().parents[2]
    specs = parse_launch(
        root / "launch/rccar.launch.xml",
        {
            "checkpoint": "/ckpt",
            "track": "oval",
            "odom": "/pf/pose/odom",
            "drive": "/ackermann_cmd",
        },
    )
    by_exec = {s.exec: s for s in specs}
    assert set(by_exec) == {"policy_node", "safety_node"}
    safety = by_exec["safety_node"]
    assert ("/drive", "/ackermann_cmd") in safety.remaps
    assert ("/odom", "/pf/pose/odom") in safety.remaps
    assert safety.params["steering_source"] == "servo"
    for spec in specs:
        opts = parse_ros_args(spec.ros_args()[1:], spec.exec)
        cls = PolicyNode if spec.exec == "policy_node" else SafetyNode
        cls.resolve_params({k: v for k, v in opts.params.items() if k != "autostart"})
    # the sim launch file passes the track to the bridge and the policy alike
    sim = parse_launch(
        root / "launch/rccar_sim.launch.xml", {"checkpoint": "/c", "track": "twisty"}
    )
    assert [s.params.get("track") for s in sim if s.exec != "safety_node"] == ["twisty"] * 2

"""The safety node on the RC car (manual clock): it alone publishes ``/drive``; it brakes a silent
policy within two control periods, brakes on a NaN scan, brakes for a wall ahead (AEB) and lets a
clear road through as the task maps the action."""

import math

import numpy as np

from robot_rl.core import load_profile
from robot_rl.deploy.car import odom_msg
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.msgs import Float64MultiArray, Header, JointState, LaserScan

PROFILE = load_profile("rccar")
PERIOD = 1.0 / PROFILE.control_rate_hz
BEAMS, FOV = 1086, 4.7


def scan(ranges=20.0) -> LaserScan:
    r = np.broadcast_to(np.asarray(ranges, float), (BEAMS,))
    return LaserScan(
        angle_min=-FOV / 2, angle_max=FOV / 2, angle_increment=FOV / (BEAMS - 1),
        range_min=0.06, range_max=30.0, ranges=[float(x) for x in r],
    )  # fmt: skip


def wall_ahead(distance: float) -> LaserScan:
    """A wall across the road ``distance`` m ahead of the lidar."""
    angles = -FOV / 2 + np.arange(BEAMS) * FOV / (BEAMS - 1)
    with np.errstate(divide="ignore"):
        r = np.where(np.cos(angles) > 0.05, distance / np.cos(angles), 30.0)
    return scan(np.minimum(r, 30.0))


def feed(node, speed=0.0, steer=0.0, laser=None) -> None:
    node.on_scan(laser or scan())
    node.on_steering(JointState(name=["steering_angle"], position=[steer]))
    node.on_odom(odom_msg(Header(), "base_link", (0.0, 0.0, 0.0), speed, 0.0, 0.0, 0.17145))


def drive(out) -> list[tuple[float, float]]:
    return [(m.drive.steering_angle, m.drive.speed) for k, m in out or [] if k == "drive"]


def modes(out) -> list[str]:
    return [m.data for k, m in out or [] if k == "mode"]


def engaged(speed=0.0):
    clock = ManualClock(50.0)
    node = SafetyNode({"profile": "rccar", "safety": "rccar", "engage": True, "ramp_s": 0.1}, clock)
    assert set(node.publishers) == {"drive", "diagnostics", "mode"}
    assert node.publishers["drive"].topic == "/drive"
    assert modes(node.activate()) == ["ramp"]
    announced = []
    for _ in range(40):
        clock.advance(PERIOD / 4)
        feed(node, speed)
        announced += modes(node.tick_watch())
    assert announced == ["hold", "policy"]
    return node, clock


def act(node, clock, action, speed=2.0, laser=None):
    clock.advance(PERIOD)
    feed(node, speed, laser=laser)
    return drive(node.on_action(Float64MultiArray(data=list(action))))


def test_a_clear_road_passes_the_action_as_the_task_maps_it():
    node, clock = engaged()
    for _ in range(10):  # the rate limiter lets the speed rise by 0.48 m/s a tick
        ((steer, speed),) = act(node, clock, [0.1, -0.5])
    assert steer == np.float32(0.1 * 0.4189)  # float32 on the wire
    assert speed == np.float32(1.75)  # -0.5 → 1.75 m/s over speed_range [0, 7]


def test_a_silent_policy_brakes_within_two_control_periods():
    node, clock = engaged()
    for _ in range(10):
        act(node, clock, [0.0, 0.0])
    t_last = clock.t
    braked_at = None
    while clock.t < t_last + 3 * PERIOD:
        clock.advance(PERIOD / 4)
        feed(node, 2.0)
        for _, speed in drive(node.tick_watch()):
            if speed <= 0.0 and braked_at is None:
                braked_at = clock.t
    assert braked_at is not None and braked_at - t_last <= 2 * PERIOD + 1e-9
    assert "watchdog" in node.status[0]


def test_a_nan_in_the_scan_brakes():
    node, clock = engaged()
    for _ in range(10):
        act(node, clock, [0.0, 0.0])
    bad = scan()
    bad.ranges[500] = math.nan
    ((_, speed),) = act(node, clock, [0.0, 0.0], laser=bad)
    assert speed == 0.0
    assert any("NaN in ranges" in k for k in node.counts)


def test_a_wall_ahead_brakes_the_car_and_a_far_one_does_not():
    node, clock = engaged()
    for _ in range(10):
        act(node, clock, [0.0, 0.0], speed=3.0, laser=wall_ahead(8.0))
    ((_, speed),) = act(node, clock, [0.0, 0.0], speed=3.0, laser=wall_ahead(8.0))
    assert speed > 3.0  # 3.5 m/s commanded: 8 m is 2 s away
    # 1 m ahead of the lidar (0.82 m past the bumper) at 3.5 m/s: 0.23 s to collision < 0.6 s
    ((_, speed),) = act(node, clock, [0.0, 0.0], speed=3.0, laser=wall_ahead(1.0))
    assert speed == 0.0
    assert any(k.startswith("emergency_brake") for k in node.counts)


def test_a_stale_scan_brakes():
    node, clock = engaged()
    for _ in range(10):
        act(node, clock, [0.0, 0.0])
    for _ in range(4):  # odometry and steering keep coming, the lidar has gone quiet
        clock.advance(PERIOD)
        node.on_steering(JointState(name=["steering_angle"], position=[0.0]))
        node.on_odom(odom_msg(Header(), "base_link", (0.0, 0.0, 0.0), 2.0, 0.0, 0.0, 0.17145))
        out = drive(node.on_action(Float64MultiArray(data=[0.0, 0.0])))
    assert out == [(0.0, 0.0)]

"""The RC car's chain built from hardware/rccar.yaml + configs/safety/rccar.yaml: automatic
emergency braking for the whole chain, a 20 Hz approach to a wall, fail-closed readings, the
watchdog, the command clamps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot_rl.core.errors import ConfigError
from robot_rl.safety import SafetyConfig, SafetyState, build_chain

# the scanner's field of view (hardware/rccar.yaml: 4.7 rad), with a tenth of its 1080 beams
ANGLES = np.linspace(-2.35, 2.35, 108)
FRONT = 0.3302 + 0.12 - 0.27  # lidar to front bumper: wheelbase + front overhang - lidar_x
HALF_WIDTH, TTC, STOP = 0.2, 0.6, 0.2  # configs/safety/rccar.yaml brake
STEER_MAX, SPEED_MAX = 0.4189, 7.0
SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
nasty = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0])


def car_state(speed, ranges, last=None, now=1.0, command_stamp=1.0, pose=None) -> SafetyState:
    """One tick of ``N`` cars at ``speed (N,)`` on straight wheels, in the middle of the fence
    unless ``pose (N, 3)`` says otherwise; readings and command are fresh."""
    speed = np.asarray(speed, float)
    n = len(speed)
    return SafetyState(
        q=np.stack([np.zeros(n), speed], axis=-1),
        now=now,
        stamp=now,
        command_stamp=command_stamp,
        last_command=last,
        extra={
            "ranges": np.asarray(ranges, float),
            "range_angles": ANGLES,
            "speed": speed,
            "pose": np.zeros((n, 3)) if pose is None else pose,
        },
    )


def free_ahead(ranges: np.ndarray) -> np.ndarray:
    """Distance from the front bumper to the nearest return in the body's corridor ``(N,)``."""
    r = np.where(ranges >= 0.06, ranges, np.inf)  # hardware/rccar.yaml lidar range_min
    x, y = r * np.cos(ANGLES), r * np.sin(ANGLES)
    return np.where((np.abs(y) <= HALF_WIDTH) & (x > FRONT), x - FRONT, np.inf).min(axis=-1)


def test_the_car_chain_builds_from_profile_and_config():
    chain = build_chain("rccar", "rccar")
    names = [f.name for f in chain.filters]
    # every filter that stops the car comes after the rate limiter, the AEB last
    assert names[:2] == ["joint_limits", "rate_limiter"]
    assert names[-1] == "emergency_brake"
    aeb = chain.filters[-1]
    assert aeb.front == pytest.approx(FRONT) and aeb.rear == pytest.approx(0.27 + 0.13)


@SETTINGS
@given(
    ranges=arrays(np.float64, (3, 108), elements=st.floats(0.0, 8.0) | st.just(np.inf)),
    speed=arrays(np.float64, (3,), elements=st.floats(-1.5, 7.0)),
    last=arrays(np.float64, (3, 2), elements=st.floats(-1.5, 7.0)),
    cmd=arrays(np.float64, (3, 2), elements=st.floats(-2.0, 10.0) | nasty),
)
# always tried: a wall 1 m ahead at 5 m/s with the policy asking for more, so that a chain
# whose filters do nothing fails on every run (tests/safety/test_identity_swap.py)
@example(
    ranges=np.ones((3, 108)),
    speed=np.full(3, 5.0),
    last=np.tile([0.0, 5.0], (3, 1)),
    cmd=np.tile([0.0, 5.0], (3, 1)),
)
def test_car_chain_brakes_below_the_time_to_collision(under_test, ranges, speed, last, cmd):
    # for random scans, speeds, previous and proposed commands: a time to collision below the
    # threshold (closing at the measured or the applied speed), or an obstacle nearer than the
    # stop distance, always yields a non-positive speed command
    chain = build_chain("rccar", "rccar")
    chain.filters = [under_test(f) for f in chain.filters]
    last[:, 0] = np.clip(last[:, 0], -STEER_MAX, STEER_MAX)
    out, _ = chain.filter(car_state(speed, ranges, last), cmd)
    assert np.isfinite(out).all()
    ahead = free_ahead(ranges)
    closing = np.maximum(np.maximum(speed, out[:, 1]), 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ttc = np.where(closing > 0, ahead / closing, np.inf)
    danger = (ttc < TTC) | (ahead < STOP)
    assert (out[danger, 1] <= 0.0).all(), (ahead[danger], speed[danger], out[danger])


def wall_scan(distance: float) -> np.ndarray:
    """A wall across the road ``distance`` m ahead of the lidar (beyond the field of view's
    side beams nothing returns)."""
    with np.errstate(divide="ignore"):
        r = distance / np.cos(ANGLES)
    return np.where(np.cos(ANGLES) > 0.05, r, np.inf)[None]


def test_a_20_hz_approach_to_a_wall_brakes_in_time():
    # the policy asks for 5 m/s toward a wall 8 m ahead, all the time; the car follows the
    # drive's speed loop (hardware/rccar.yaml: acceleration = 8 (command - speed), clipped to
    # 9.51 m/s²). The AEB cuts the speed with the bumper 2.6 m from the wall at 4.5 m/s, then
    # lets the car creep up to where 0.48 m/s (one tick of the rate limit) is 0.6 s from it
    chain = build_chain("rccar", "rccar")
    dt, wall, v = 0.05, 8.0, 0.0
    speeds, gaps = [], []
    for k in range(200):
        state = car_state([v], wall_scan(wall), now=k * dt, command_stamp=k * dt)
        out, _ = chain.step(state, np.array([[0.0, 5.0]]))
        gap = wall - FRONT
        if v > 0 and gap / v < TTC:
            assert out[0, 1] <= 0.0, (k, gap, v)
        for _ in range(10):  # the drive within the tick
            v += np.clip(8.0 * (out[0, 1] - v), -9.51, 9.51) * dt / 10
            wall -= v * dt / 10
        speeds.append(v)
        gaps.append(wall - FRONT)
    assert max(speeds) > 4.9  # the car got up to speed first
    assert min(gaps) > 0.25  # never nearer than 0.6 s at 0.48 m/s (0.29 m) less the creep
    assert abs(speeds[-1]) < 1e-3 and gaps[-1] < 0.3  # and stands by the wall
    assert chain.stats.interventions["emergency_brake"] > 0


def test_nan_scan_or_pose_brakes():
    chain = build_chain("rccar", "rccar")
    ranges = np.full((2, 108), np.inf)
    ranges[0, 50] = np.nan
    pose = np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    last = np.array([[0.1, 3.0], [0.1, 3.0]])
    out, reports = chain.filter(car_state([3.0, 3.0], ranges, last, pose=pose), last.copy())
    np.testing.assert_array_equal(out, np.zeros((2, 2)))
    assert {r.component for r in reports if r.fail_closed.any()} >= {"observation_guard"}


def test_stale_command_brakes_within_one_tick():
    chain = build_chain("rccar", "rccar")
    dt, timeout = chain.space.dt, 0.085  # configs/safety/rccar.yaml watchdog_timeout_s
    clear = np.full((1, 108), np.inf)
    last_stamp, outputs = 0.0, []
    for k in range(8):
        now = k * dt
        if k < 4:  # the policy publishes for 4 ticks, then goes silent
            last_stamp = now
        out, reports = chain.step(
            car_state([1.0], clear, now=now, command_stamp=last_stamp), np.array([[0.2, 2.0]])
        )
        outputs.append((now, out[0]))
    for now, out in outputs:
        stale = now - last_stamp > timeout + 1e-9
        assert (out[1] == 0.0 and out[0] == 0.0) if stale else out[1] > 0, (now, out)
    # the last command came at 0.15 s: 0.2 s (age 0.05) drives, 0.25 s (age 0.1) brakes
    assert [now for now, out in outputs if out[1] == 0.0][0] == pytest.approx(0.25)


def test_speed_and_steering_are_clamped_to_the_profile():
    chain = build_chain("rccar", "rccar")
    clear = np.full((2, 108), np.inf)
    last = np.array([[0.4, 6.9], [-0.4, -1.4]])
    out, reports = chain.filter(
        car_state([6.9, -1.4], clear, last), np.array([[1.0, 20], [-1, -9]])
    )
    np.testing.assert_allclose(out, [[STEER_MAX, SPEED_MAX], [-STEER_MAX, -1.5]])
    # a tighter band from the config, never a wider one
    cfg = replace(SafetyConfig.load("rccar"), command_limits={"speed": [-1.0, 3.0]})
    out, _ = build_chain("rccar", cfg).filter(
        car_state([3.0, 0.0], clear, np.array([[0.0, 3.0], [0.0, -1.0]])),
        np.array([[0.0, 7.0], [0.0, -1.5]]),
    )
    np.testing.assert_allclose(out[:, 1], [3.0, -1.0])
    with pytest.raises(ConfigError, match="inside the profile"):
        build_chain("rccar", replace(cfg, command_limits={"speed": [-1.0, 9.0]}))


def test_the_rate_limiter_cannot_undo_a_brake():
    # 5 m/s on the previous tick, a wall 0.9 m ahead: the AEB's 0 stands (a rate limiter after
    # it would have made 4.52 m/s of it)
    chain = build_chain("rccar", "rccar")
    last = np.array([[0.0, 5.0]])
    out, _ = chain.filter(car_state([5.0], wall_scan(0.9 + FRONT), last), last.copy())
    np.testing.assert_array_equal(out, [[0.0, 0.0]])


@pytest.mark.parametrize(
    "geofence, message",
    [
        ({"margin": 0.3}, "polygon"),
        ({"low": [0, 0], "high": [0, 5]}, "encloses no area"),
        ({"low": [0, 0], "high": [5, 5], "radius": 1}, "unknown keys ['radius']"),
    ],
)
def test_bad_geofence_configs_get_one_line_errors(geofence, message):
    cfg = replace(SafetyConfig.load("rccar"), geofence=geofence)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_chain("rccar", cfg)

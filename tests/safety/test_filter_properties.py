"""Property-based tests of every safety filter: for any input, including NaN, ±inf and ±1e30 in
the action and in the state, the output is finite and inside what the filter guarantees; safe
inputs pass unchanged; filtering twice equals filtering once.

Run ``pytest tests/safety --identity-filters`` to see the guarantees fail when each filter is
replaced by the identity (``test_identity_swap.py`` checks that automatically).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot_rl.core.profile import load_profile
from robot_rl.safety.base import Fallback, SafetyState
from robot_rl.safety.chain import CommandSpace, build_chain
from robot_rl.safety.energy import EnergyTank
from robot_rl.safety.kinematics import chain_from_profile
from robot_rl.safety.limits import JointLimits, ObservationGuard, RateLimiter
from robot_rl.safety.mobile import EmergencyBrake, FallDetector, Geofence
from robot_rl.safety.watchdog import Watchdog
from robot_rl.safety.workspace import WorkspaceBox

PROFILE = load_profile("arm")
SPACE = CommandSpace.of(PROFILE)
A = len(SPACE.lower)
HOLD = Fallback("hold", SPACE.lower, SPACE.upper, SPACE.default)
MARGIN = np.where(SPACE.gripper, 0.0, 0.02)  # rad for the joints
KIN = chain_from_profile(PROFILE.extra)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# any float, with the nasty ones over-represented
nasty = st.one_of(
    st.floats(-4.0, 4.0),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def anything(n: int = 2, a: int = A):
    return arrays(np.float64, (n, a), elements=nasty)


def inside(n: int = 2):
    """Poses inside the joint limits, 10% of each range away from them."""
    lo, span = SPACE.lower, SPACE.upper - SPACE.lower
    return arrays(np.float64, (n, A), elements=st.floats(0, 1)).map(
        lambda u: lo + (0.1 + 0.8 * u) * span
    )


def state_at(q, **kw) -> SafetyState:
    return SafetyState(q=q, dq=np.zeros_like(q), now=1.0, stamp=1.0, command_stamp=1.0, **kw)


def within(x, lo, hi, tol=1e-9) -> bool:
    return bool(np.isfinite(x).all() and (x >= lo - tol).all() and (x <= hi + tol).all())


# --- joint limits --------------------------------------------------------------------------


@SETTINGS
@given(action=anything(), q=anything())
def test_joint_limits_output_finite_and_inside(under_test, action, q):
    f = under_test(JointLimits(HOLD, SPACE.lower, SPACE.upper, MARGIN))
    out, report = f.filter(state_at(q), action)
    assert within(out, SPACE.lower + MARGIN, SPACE.upper - MARGIN)
    assert report.fail_closed[~np.isfinite(action).all(axis=1)].all()


@SETTINGS
@given(action=inside(), q=inside())
def test_joint_limits_pass_safe_and_idempotent(under_test, action, q):
    f = under_test(JointLimits(HOLD, SPACE.lower, SPACE.upper, MARGIN))
    out, report = f.filter(state_at(q), action)
    np.testing.assert_array_equal(out, action)
    assert not report.any
    wild = action * 3
    once, _ = f.filter(state_at(q), wild)
    twice, _ = f.filter(state_at(q), once)
    np.testing.assert_array_equal(once, twice)


@SETTINGS
@given(action=anything(), q=anything(), gain=st.floats(0.5, 5.0))
def test_joint_limits_push_a_bent_joint_back(under_test, action, q, gain):
    """A joint read beyond the band (bent by contact) gets a command at least ``gain`` times its
    excess inside the band (never past the middle), so its servo pushes back."""
    f = under_test(JointLimits(HOLD, SPACE.lower, SPACE.upper, MARGIN, deflection_gain=gain))
    out, _ = f.filter(state_at(q), action)
    lo, hi = SPACE.lower + MARGIN, SPACE.upper - MARGIN
    middle = (lo + hi) / 2
    with np.errstate(invalid="ignore", over="ignore"):
        q_ok = np.where(np.isfinite(q), q, middle)
        eps = JointLimits.ON_THE_BAND
        top = np.maximum(hi - gain * np.maximum(q_ok - hi - eps, 0), middle)
        bottom = np.minimum(lo + gain * np.maximum(lo - q_ok - eps, 0), middle)
    assert np.isfinite(out).all()
    assert (out <= top + 1e-9).all() and (out >= bottom - 1e-9).all()


def test_joint_limits_deflection_numbers():
    """Hand-computed: a joint 0.03 rad past the band's top with gain 2 may be commanded at most
    0.06 rad inside it; the joints inside the band keep their commands at its edge."""
    f = JointLimits(HOLD, SPACE.lower, SPACE.upper, MARGIN, deflection_gain=2.0)
    hi = SPACE.upper - MARGIN
    q = SPACE.default.copy()
    q[4] = hi[4] + 0.03
    out, report = f.filter(state_at(q[None]), hi[None])
    assert out[0, 4] == pytest.approx(hi[4] - 0.06, abs=1e-5)
    np.testing.assert_array_equal(np.delete(out[0], 4), np.delete(hi, 4))
    assert report.any
    q[4] = hi[4] + 1e-12  # resting on the band's edge (a finger on its stop): no change
    out, report = f.filter(state_at(q[None]), hi[None])
    np.testing.assert_array_equal(out[0], hi)
    assert not report.any


# --- rate limiter --------------------------------------------------------------------------


def rate():
    return RateLimiter(HOLD, SPACE.lower, SPACE.upper, SPACE.velocity, SPACE.dt, SPACE.acceleration)


@SETTINGS
@given(action=anything(), last=inside(), v=anything())
def test_rate_limiter_bounds_the_step(under_test, action, last, v):
    f = under_test(rate())
    st_ = state_at(last.copy(), last_command=last, last_velocity=v)
    out, _ = f.filter(st_, action)
    step = SPACE.velocity * SPACE.dt
    assert within(out, SPACE.lower, SPACE.upper)
    assert (np.abs(out - last) <= step + 1e-9).all()


@SETTINGS
@given(action=anything(), last=inside(), v=anything())
def test_rate_limiter_idempotent_and_passes_slow_commands(under_test, action, last, v):
    f = under_test(rate())
    st_ = state_at(last.copy(), last_command=last, last_velocity=v)
    once, _ = f.filter(st_, action)
    twice, _ = f.filter(st_, once)
    np.testing.assert_allclose(twice, once, atol=1e-12)
    # holding still is always allowed, whatever the last velocity was
    held, report = f.filter(st_, last.copy())
    np.testing.assert_array_equal(held, last)


@SETTINGS
@given(action=anything(), last=inside(), elapsed=st.floats(-1.0, 1.0) | st.just(float("nan")))
def test_rate_limiter_bounds_the_speed_when_commands_come_faster(under_test, action, last, elapsed):
    # a node commanding on every input: the step shrinks to the time since the last command
    f = under_test(rate())
    st_ = state_at(last.copy(), last_command=last)
    st_.elapsed = elapsed
    out, _ = f.filter(st_, action)
    allowed = min(elapsed, SPACE.dt) if elapsed >= 0 else 0.0  # NaN: nothing may move
    assert within(out, SPACE.lower, SPACE.upper)
    assert (np.abs(out - last) <= SPACE.velocity * allowed + 1e-9).all()


def test_rate_limiter_reference_is_measured_pose_on_the_first_tick():
    q = SPACE.default[None]
    out, _ = rate().filter(state_at(q.copy()), q + 1.0)
    np.testing.assert_allclose(out - q, np.minimum(SPACE.velocity * SPACE.dt, SPACE.upper - q))


# --- observation guard ---------------------------------------------------------------------


def guard():
    return ObservationGuard(HOLD, SPACE.lower, SPACE.upper, SPACE.velocity, stale_s=0.1)


@SETTINGS
@given(q=anything(), dq=anything(), age=nasty, action=inside())
def test_guard_fails_closed_on_untrusted_readings(under_test, q, dq, age, action):
    f = under_test(guard())
    st_ = SafetyState(q=q, dq=dq, now=1.0, stamp=1.0 - age, command_stamp=1.0)
    out, _ = f.filter(st_, action)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(q).all(1) | ~np.isfinite(dq).all(1) | (not abs(age) <= 0.1)
        bad |= ((q < SPACE.lower - 0.05) | (q > SPACE.upper + 0.05)).any(1)
        bad |= (np.abs(dq) > 2 * SPACE.velocity).any(1)
    np.testing.assert_array_equal(out[bad], HOLD(st_)[bad])
    assert within(out[bad], SPACE.lower, SPACE.upper)


@SETTINGS
@given(q=inside(), action=inside())
def test_guard_passes_good_readings(under_test, q, action):
    out, report = under_test(guard()).filter(state_at(q), action)
    np.testing.assert_array_equal(out, action)
    assert not report.any


# --- workspace box -------------------------------------------------------------------------


def box():
    ws = PROFILE.workspace
    return WorkspaceBox(
        HOLD, KIN, np.array(ws.low), np.array(ws.high), SPACE.lower, SPACE.upper, margin=0.01
    )


def ref_in_box():
    """Poses near the default whose tool point is inside the (shrunk) box."""
    f = box()

    def pick(u):
        q = SPACE.default + (u - 0.5) * 0.6
        q = np.clip(q, SPACE.lower, SPACE.upper)
        keep = f.violation(KIN.fk(q)) <= 0
        return np.where(keep[:, None], q, SPACE.default)

    return arrays(np.float64, (2, A), elements=st.floats(0, 1)).map(pick)


@SETTINGS
@given(ref=ref_in_box(), action=anything())
def test_workspace_box_keeps_the_tool_inside(under_test, ref, action):
    f = under_test(box())
    out, _ = f.filter(state_at(ref.copy(), last_command=ref), action)
    assert np.isfinite(out).all()
    assert (box().violation(KIN.fk(out)) <= 1e-9).all()


@SETTINGS
@given(ref=ref_in_box(), u=arrays(np.float64, (2, A), elements=st.floats(-2, 2)))
def test_workspace_box_idempotent_and_passes_inside(under_test, ref, u):
    f = under_test(box())
    st_ = state_at(ref.copy(), last_command=ref)
    out, report = f.filter(st_, ref.copy())
    np.testing.assert_array_equal(out, ref)
    once, _ = f.filter(st_, ref + u)
    twice, _ = f.filter(st_, once)
    np.testing.assert_allclose(twice, once, atol=1e-12)


def one_joint_box(lower, upper, yaw_range=None):
    """A one-joint arm whose tool sweeps the unit circle; the box excludes x < -0.5, i.e. the
    arc |angle| > 2.094 around pi."""
    from robot_rl.safety.kinematics import SerialChain

    kin = SerialChain([{"joint": "yaw", "xyz": [0, 0, 0], "axis": [0, 0, 1]}], [1.0, 0, 0])
    fb = Fallback("hold", np.array([lower]), np.array([upper]), np.array([0.0]))
    low, high = np.array([-0.5, -2, -1]), np.array([2, 2, 1])
    return WorkspaceBox(
        fb, kin, low, high, np.array([lower]), np.array([upper]), yaw_range=yaw_range
    )


def test_workspace_box_pulls_back_the_short_way_for_continuous_joints():
    ref = np.array([[2.0]])
    st_ = state_at(ref.copy(), last_command=ref)
    # -3.0 is outside; a continuous joint (range > one turn) gets there the short way, +1.28
    # rad through pi: the pull-back stays near 2.0 instead of swinging 4 rad through 0
    out = one_joint_box(-4.0, 4.0).filter(st_, np.array([[-3.0]]))[0][0, 0]
    assert 2.0 <= out <= 2.095
    # a bounded joint really travels through 0: the pull-back lands near -2.09
    out = one_joint_box(-2.9, 2.9).filter(st_, np.array([[-3.0]]))[0][0, 0]
    assert -2.1 <= out <= -2.0


def test_workspace_yaw_range_across_pi():
    # the tool's yaw equals the joint angle; allowed: the arc from 1.5 counter-clockwise to
    # -2.9 (through pi); the position box is made large enough not to matter
    f = one_joint_box(-4.0, 4.0, yaw_range=(1.5, -2.9))
    f.low, f.high = np.full(3, -5.0), np.full(3, 5.0)
    for angle, inside_arc in [(2.0, True), (3.1, True), (-3.1, True), (-2.5, False), (0.0, False)]:
        assert (f._violation_of(np.array([[angle]]))[0] == 0) == inside_arc, angle
    ref = np.array([[3.0]])
    out = f.filter(state_at(ref.copy(), last_command=ref), np.array([[-2.0]]))[0][0, 0]
    # the short way from 3.0 to -2.0 (= 4.28) crosses pi and leaves the arc at -2.9 (= 3.38)
    assert 3.0 <= out <= 3.39


# --- energy tank ---------------------------------------------------------------------------


@SETTINGS
@given(
    actions=arrays(np.float64, (25, 1, A), elements=nasty),
    dq=arrays(np.float64, (25, 1, A), elements=st.floats(-2, 2)),
)
def test_energy_tank_bounds_the_injected_energy(under_test, actions, dq):
    k = np.full(A, 200.0)
    tank = EnergyTank(HOLD, k, SPACE.dt, capacity_j=0.5, initial_j=0.5, refill_w=0.2)
    f = under_test(tank)
    q = SPACE.default[None].copy()
    injected = 0.0
    for t in range(len(actions)):
        st_ = SafetyState(q=q, dq=dq[t])
        out, _ = f.filter(st_, actions[t])
        assert np.isfinite(out).all()
        injected += float((k * (out - q) * dq[t]).sum() * SPACE.dt)
        f.commit(st_, out)
        # passivity: the work done never exceeds the initial energy plus what was refilled
        assert injected <= 0.5 + 0.2 * SPACE.dt * (t + 1) + 1e-9


@SETTINGS
@given(action=inside(1), dq=arrays(np.float64, (1, A), elements=st.floats(-2, 2)))
def test_energy_tank_idempotent_and_passes_with_energy_left(under_test, action, dq):
    tank = under_test(EnergyTank(HOLD, np.full(A, 1.0), SPACE.dt, capacity_j=1e3))
    st_ = SafetyState(q=SPACE.default[None].copy(), dq=dq)
    out, _ = tank.filter(st_, action)
    np.testing.assert_array_equal(out, action)  # 1 N·m/rad cannot use up 1 kJ in a tick
    small = under_test(EnergyTank(HOLD, np.full(A, 500.0), SPACE.dt, capacity_j=1e-3))
    once, _ = small.filter(st_, action)
    twice, _ = small.filter(st_, once)
    np.testing.assert_allclose(twice, once, atol=1e-12)


# --- watchdog ------------------------------------------------------------------------------


@SETTINGS
@given(age=nasty, action=inside(1), last=inside(1))
def test_watchdog_replaces_old_commands(under_test, age, action, last):
    f = under_test(Watchdog(HOLD, 0.2, A))
    st_ = SafetyState(q=last.copy(), now=10.0, command_stamp=10.0 - age, last_command=last)
    out, _ = f.filter(st_, action)
    if abs(age) <= 0.2:
        np.testing.assert_array_equal(out, action)
    else:
        np.testing.assert_array_equal(out, last)


# --- humanoid fall, car braking ------------------------------------------------------------


@SETTINGS
@given(rpy=arrays(np.float64, (2, 3), elements=nasty), action=inside())
def test_fall_detector_damps_when_tilted(under_test, rpy, action):
    damp = Fallback("damp", SPACE.lower, SPACE.upper, SPACE.default)
    f = under_test(FallDetector(damp, 0.6, 0.6, A))
    q = SPACE.default[None].repeat(2, 0)
    st_ = SafetyState(q=q, extra={"rpy": rpy})
    out, _ = f.filter(st_, action)
    with np.errstate(invalid="ignore"):
        fallen = ~np.isfinite(rpy).all(1) | (np.abs(rpy[:, :2]) > 0.6).any(1)
    np.testing.assert_array_equal(out[fallen], q[fallen])
    np.testing.assert_array_equal(out[~fallen], action[~fallen])


CAR = Fallback("brake", np.array([-0.5, -3.0]), np.array([0.5, 3.0]), np.zeros(2), np.zeros(2))
ANGLES = np.linspace(-np.pi, np.pi, 72, endpoint=False)


@SETTINGS
@given(
    ranges=arrays(np.float64, (2, 72), elements=st.one_of(st.floats(0, 10), nasty)),
    speed=arrays(np.float64, (2,), elements=st.floats(-3, 3)),
    cmd=arrays(np.float64, (2, 2), elements=nasty),
)
def test_emergency_brake_never_drives_into_an_obstacle(under_test, ranges, speed, cmd):
    aeb = EmergencyBrake(CAR, 2, ttc_s=0.8, stop_distance=0.25)
    f = under_test(aeb)
    st_ = SafetyState(
        q=np.zeros((2, 2)), extra={"ranges": ranges, "range_angles": ANGLES, "speed": speed}
    )
    out, _ = f.filter(st_, cmd)
    assert np.isfinite(out).all()
    ok = ~np.isnan(ranges).any(1) & np.isfinite(cmd).all(1)
    ahead, behind = aeb.free_distance(np.where(np.isnan(ranges), np.inf, ranges), ANGLES)
    for i in range(2):
        if not ok[i]:
            np.testing.assert_array_equal(out[i], [0.0, 0.0])  # braking
            continue
        if ahead[i] < 0.25 or ahead[i] < 0.8 * max(speed[i], cmd[i, 1], 0.0):
            assert out[i, 1] <= 0.0
        if behind[i] < 0.25 or behind[i] < 0.8 * max(-min(speed[i], cmd[i, 1]), 0.0):
            assert out[i, 1] >= 0.0


def test_emergency_brake_passes_a_clear_road():
    aeb = EmergencyBrake(CAR, 2)
    ranges = np.full((1, 72), np.inf)
    st_ = SafetyState(
        q=np.zeros((1, 2)),
        extra={"ranges": ranges, "range_angles": ANGLES, "speed": np.array([2.0])},
    )
    out, report = aeb.filter(st_, np.array([[0.2, 2.5]]))
    np.testing.assert_array_equal(out, [[0.2, 2.5]])
    ranges[0, 36] = 1.0  # a wall 1 m ahead at 2 m/s: 0.4 s to collision
    out, report = aeb.filter(st_, np.array([[0.2, 2.5]]))
    np.testing.assert_array_equal(out, [[0.2, 0.0]])
    assert "braking" in report.reason


# a fence with a notch (not convex), the car's body disk (hardware/rccar.yaml geometry)
FENCE = np.array([[-2.0, -1.0], [3.0, -1.0], [3.0, 2.0], [0.5, 0.5], [-2.0, 2.0]])
BODY_OFFSET, BODY_RADIUS, FENCE_MARGIN, DECEL = 0.16, 0.33, 0.1, 7.0


def geofence():
    return Geofence(CAR, 2, FENCE, FENCE_MARGIN, DECEL, BODY_OFFSET, BODY_RADIUS)


def fence_points(per_edge: int = 500) -> np.ndarray:
    """The fence's boundary, sampled every 1 cm or closer ``(P, 2)``."""
    ends = np.roll(FENCE, -1, axis=0)
    t = np.linspace(0, 1, per_edge)[:, None, None]
    return (FENCE + t * (ends - FENCE)).reshape(-1, 2)


def winding(c: np.ndarray) -> float:
    """Turns of the fence around ``c`` (1 inside, 0 outside), independent of the filter's test."""
    rel = FENCE - c
    ang = np.arctan2(rel[:, 1], rel[:, 0])
    return float(np.abs(np.angle(np.exp(1j * (np.roll(ang, -1) - ang))).sum()) / (2 * np.pi))


@SETTINGS
@given(
    pose=arrays(np.float64, (2, 3), elements=st.one_of(st.floats(-3, 4), nasty)),
    speed=arrays(np.float64, (2,), elements=st.one_of(st.floats(-3, 7), nasty)),
    cmd=arrays(np.float64, (2, 2), elements=st.one_of(st.floats(-3, 7), nasty)),
)
def test_geofence_never_drives_toward_a_fence_within_the_stopping_distance(
    under_test, pose, speed, cmd
):
    f = under_test(geofence())
    st_ = SafetyState(q=np.zeros((2, 2)), extra={"pose": pose, "speed": speed})
    out, _ = f.filter(st_, cmd)
    assert np.isfinite(out).all()
    points = fence_points()
    for i in range(2):
        if not (np.isfinite(pose[i]).all() and np.isfinite(speed[i]) and np.isfinite(cmd[i]).all()):
            np.testing.assert_array_equal(out[i], [0.0, 0.0])  # braking
            continue
        assert out[i, 0] == cmd[i, 0]  # the steering is kept
        heading = np.array([np.cos(pose[i, 2]), np.sin(pose[i, 2])])
        c = pose[i, :2] + BODY_OFFSET * heading
        rel = points - c
        dist = np.hypot(rel[:, 0], rel[:, 1])
        if dist.min() > 1e-6 and winding(c) < 0.5:  # outside: stopped
            assert out[i, 1] == 0.0
        for sign in (1.0, -1.0):
            # closing speed in this direction: measured or applied, whichever is larger
            v = min(max(sign * speed[i], sign * out[i, 1], 0.0), 1e100)  # no overflow
            reach = BODY_RADIUS + FENCE_MARGIN + v * v / (2 * DECEL)
            toward = (dist < reach - 1e-9) & (rel @ (sign * heading) > 1e-9)
            if toward.any():
                assert sign * out[i, 1] <= 0.0, (sign, points[toward][0])


def test_geofence_brakes_toward_the_wall_and_lets_the_car_leave_it():
    box = np.array([[-5.0, -5.0], [3.0, -5.0], [3.0, 5.0], [-5.0, 5.0]])
    f = Geofence(CAR, 2, box, FENCE_MARGIN, DECEL, BODY_OFFSET, BODY_RADIUS)
    # 1 m (body centre 0.16 m further) from the right wall x = 3, heading at it / away from it
    pose = np.array([[2.0 - BODY_OFFSET, 0.0, 0.0], [2.0 + BODY_OFFSET, 0.0, np.pi]])
    st_ = SafetyState(q=np.zeros((2, 2)), extra={"pose": pose, "speed": np.array([0.0, 0.0])})
    # 2 m/s: 0.29 m to stop + 0.33 body + 0.1 margin = 0.72 < 1 m: both pass
    out, report = f.filter(st_, np.array([[0.1, 2.0], [0.1, 2.0]]))
    np.testing.assert_array_equal(out, [[0.1, 2.0], [0.1, 2.0]])
    assert not report.any
    # 3 m/s: 0.64 + 0.43 = 1.07 > 1 m: the car heading at the wall stops; reversing is allowed
    out, report = f.filter(st_, np.array([[0.1, 3.0], [0.1, 3.0]]))
    np.testing.assert_array_equal(out, [[0.1, 0.0], [0.1, 3.0]])
    assert "stopping distance" in report.reason
    out, _ = f.filter(st_, np.array([[0.1, -3.0], [0.1, -3.0]]))
    np.testing.assert_array_equal(out, [[0.1, -3.0], [0.1, 0.0]])
    # outside (beyond x = 3): stopped both ways; no pose: the brake action
    st_.extra["pose"] = np.array([[3.5, 0.0, np.pi], [np.nan, 0.0, 0.0]])
    out, report = f.filter(st_, np.array([[0.1, 1.0], [0.1, 1.0]]))
    np.testing.assert_array_equal(out, [[0.1, 0.0], [0.0, 0.0]])
    assert report.fail_closed.tolist() == [False, True]


# --- the whole arm chain -------------------------------------------------------------------


@SETTINGS
@given(action=anything(), q=anything(), dq=anything())
def test_arm_chain_output_finite_and_inside_limits(under_test, action, q, dq):
    chain = build_chain("arm", "arm")
    chain.filters = [under_test(f) for f in chain.filters]
    state = SafetyState(q=q, dq=dq, now=1.0, stamp=1.0, command_stamp=1.0)
    out, reports = chain.filter(state, action)
    assert within(out, SPACE.lower, SPACE.upper)


@SETTINGS
@given(ref=ref_in_box(), action=anything())
def test_arm_chain_keeps_rate_box_and_keep_out(under_test, ref, action):
    # a robot at rest at a pose in its box, any command: what the whole chain lets through
    # stays in the kept joint limits, the rate band, the (shrunk) box and out of the regions
    chain = build_chain("arm", "arm")
    chain.filters = [under_test(f) for f in chain.filters]
    # the real CBF (the identity wrapper keeps it as .inner), to measure clearances with
    cbf = next(f for f in chain.filters if f.name == "cbf")
    cbf = getattr(cbf, "inner", cbf)
    state = SafetyState(
        q=ref.copy(), dq=np.zeros_like(ref), now=1.0, stamp=1.0, command_stamp=1.0, last_command=ref
    )
    out, _ = chain.filter(state, action)
    rate = 0.7 * SPACE.velocity * SPACE.dt  # configs/safety/arm.yaml velocity_scale
    assert (np.abs(out - ref) <= rate + 1e-9).all()
    ws = PROFILE.workspace
    assert (box().violation(KIN.fk(out)) <= 1e-9).all() or not np.array_equal(ws.low, ws.low)
    inner = WorkspaceBox(
        HOLD, KIN, np.array(ws.low), np.array(ws.high), SPACE.lower, SPACE.upper, 0.02
    )
    assert (inner.violation(KIN.fk(out)) <= 1e-9).all()
    clear = cbf.inner.clearance(ref[:, :6]) if hasattr(cbf, "inner") else cbf.clearance(ref[:, :6])
    if (clear >= 0).all():
        assert (getattr(cbf, "inner", cbf).clearance(out[:, :6]) >= -1e-9).all()

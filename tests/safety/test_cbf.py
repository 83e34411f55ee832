"""The CBF-QP filter: the safe set stays invariant on an integrator, for any requested steps."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from robot_rl.core.profile import load_profile
from robot_rl.safety.base import Fallback, SafetyState
from robot_rl.safety.cbf import ArmCBF, Obstacles, PointCBF, cbf_step
from robot_rl.safety.chain import CommandSpace
from robot_rl.safety.kinematics import chain_from_profile

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
OBSTACLES = Obstacles.build(
    halfspaces=[{"normal": [0, 0, 1], "offset": 0.0}],  # stay above z = 0
    spheres=[
        {"center": [0.5, 0.0, 0.3], "radius": 0.2},
        {"center": [-0.4, 0.3, 0.2], "radius": 0.15},
    ],
)
BOX = 2.0  # the point lives in [-2, 2]^3
MAX_STEP = np.full(3, 0.1)
# the command is a step: its safe value is no step at all
POINT = Fallback("brake", -MAX_STEP, MAX_STEP, np.zeros(3), brake_action=np.zeros(3))


def safe_start():
    def fix(x):
        h, _ = OBSTACLES.barriers(x)
        return x if (h > 0).all() else np.array([0.0, -1.0, 1.0])

    return arrays(np.float64, (3,), elements=st.floats(-1, 1)).map(fix)


steps = arrays(
    np.float64,
    (40, 3),
    elements=st.one_of(st.floats(-0.3, 0.3), st.sampled_from([np.nan, np.inf, -1e30, 1e30])),
)


@SETTINGS
@given(x0=safe_start(), wanted=steps)
def test_cbf_keeps_the_safe_set_invariant_on_an_integrator(under_test, x0, wanted):
    f = under_test(PointCBF(POINT, OBSTACLES, gamma=0.5, max_step=MAX_STEP))
    x = x0.copy()
    for u_des in wanted:
        state = SafetyState(q=x[None].copy())
        u, _ = f.filter(state, u_des[None])
        assert np.isfinite(u).all() and (np.abs(u) <= MAX_STEP + 1e-9).all()
        x = x + u[0]
        h, _ = OBSTACLES.barriers(x)
        assert (h >= -1e-7).all(), (x, h)


@SETTINGS
@given(x0=safe_start(), u=arrays(np.float64, (3,), elements=st.floats(-0.1, 0.1)))
def test_cbf_idempotent_and_passes_safe_steps(under_test, x0, u):
    f = under_test(PointCBF(POINT, OBSTACLES, gamma=0.5, max_step=MAX_STEP))
    state = SafetyState(q=x0[None].copy())
    once, _ = f.filter(state, u[None])
    twice, _ = f.filter(state, once)
    np.testing.assert_allclose(twice, once, atol=1e-6)
    h, g = OBSTACLES.barriers(x0)
    if (g @ u >= -0.5 * h).all():
        np.testing.assert_array_equal(once[0], u)


def test_cbf_step_matches_the_closed_form_projection():
    # one half-space z >= 0 at height 0.1, gamma 0.5: the step may go down 0.05 at most; the
    # QP answer is the requested step with its z clipped (the projection onto the half-space)
    h, g = np.array([0.1]), np.array([[0.0, 0.0, 1.0]])
    u = cbf_step(np.array([0.2, -0.1, -0.3]), h, g, 0.5, -np.ones(3), np.ones(3))
    np.testing.assert_allclose(u, [0.2, -0.1, -0.05], atol=1e-9)


def test_cbf_fails_closed_when_degenerate_or_infeasible():
    f = PointCBF(POINT, OBSTACLES, gamma=0.5, max_step=MAX_STEP)
    # at a sphere's centre the barrier has no gradient
    centre = np.array([[0.5, 0.0, 0.3]])
    out, report = f.filter(SafetyState(q=centre, last_command=centre), np.array([[0.05, 0, 0]]))
    assert report.fail_closed.all()
    np.testing.assert_array_equal(out, np.zeros((1, 3)))  # stand still
    # 1 m below the table the condition z' >= 0.5 z asks for a step up of at least 0.5 m,
    # more than the 0.1 m bound: infeasible
    deep = np.array([[0.0, -1.0, -1.0]])
    out, report = f.filter(SafetyState(q=deep, last_command=deep), np.array([[0.0, 0.0, 0.0]]))
    assert report.fail_closed.all()
    assert f.filter(SafetyState(q=deep), np.array([[np.nan, 0, 0]]))[1].fail_closed.all()


def test_arm_cbf_keeps_the_tool_above_the_table():
    profile = load_profile("arm")
    space = CommandSpace.of(profile)
    kin = chain_from_profile(profile.extra)
    hold = Fallback("hold", space.lower, space.upper, space.default)
    table = Obstacles.build(halfspaces=[{"normal": [0, 0, 1], "offset": 0.02}])
    f = ArmCBF(hold, kin, table, 0.5, space.lower, space.upper, space.velocity, space.dt)
    q = space.default[None].copy()
    rng = np.random.default_rng(0)
    lowest = np.inf
    for _ in range(200):  # a policy that keeps pushing the tool down
        push = q.copy()
        push[0, 1] += 0.3  # shoulder forward/down
        push[0, 2] += 0.3 * rng.random()
        out, _ = f.filter(SafetyState(q=q), push)
        q = out  # a perfect position controller
        lowest = min(lowest, float(kin.fk(q)[0, 2]))
    assert lowest >= 0.02 - 2e-3  # the linearization's error over one step, at most
    assert lowest < 0.05  # and it did get close: the filter is not simply freezing the arm


def test_guarded_points_jacobians_and_fast_path_agree():
    profile = load_profile("arm")
    space = CommandSpace.of(profile)
    kin = chain_from_profile(profile.extra)
    hold = Fallback("hold", space.lower, space.upper, space.default)
    points = np.array([[0, 0, 0], [0, 0.05, 0.015], [0, -0.05, 0.015]])
    table = Obstacles.build(
        halfspaces=[{"normal": [0, 0, 1], "offset": 0.0}],
        spheres=[{"center": [0.3, 0.3, 0.1], "radius": 0.06}],
    )
    f = ArmCBF(hold, kin, table, 0.5, space.lower, space.upper, space.velocity, space.dt, points)
    rng = np.random.default_rng(3)
    q = space.default[None, :6] + rng.normal(0, 0.3, (5, 6))
    pts, jac = f.guarded(q)
    eps = 1e-6
    for k in range(6):
        dq = np.zeros(6)
        dq[k] = eps
        moved, _ = f.guarded(q + dq)
        np.testing.assert_allclose((moved - pts) / eps, jac[..., k], atol=1e-5)
    # the fingertip points sit 15 mm past the tool point along the tool's z axis
    tool, rot = kin.pose(q)
    np.testing.assert_allclose(pts[:, 1], tool + rot @ points[1], atol=1e-12)
    # the Python fast path and the numpy path decide alike on random commands
    for _ in range(200):
        qi = space.default + np.concatenate([rng.normal(0, 0.3, 6), [0.0]])
        a = qi + np.concatenate([rng.normal(0, 0.08, 6), [0.0]])
        fast = f.passes_one(qi[:6].tolist(), a[:6].tolist())
        out, _ = f.filter(SafetyState(q=np.stack([qi, qi])), np.stack([a, a]))  # N=2: no fast path
        assert fast == bool((out == a).all())


def test_cbf_does_not_clip_a_passing_step_into_a_collision():
    # found in review: the step (0.3, -0.12, 0) meets the barrier of a unit sphere 1 cm away,
    # but clipped to the ±0.1 bounds it would enter the sphere; the QP must be solved instead
    sphere = Obstacles.build(spheres=[{"center": [0, 0, 0], "radius": 1.0}])
    g = np.array([1.0, 2.0, 0.0]) / np.sqrt(5)
    x = g * 1.01
    f = PointCBF(POINT, sphere, gamma=0.5, max_step=MAX_STEP)
    u, _ = f.filter(SafetyState(q=x[None]), np.array([[0.3, -0.12, 0.0]]))
    h, _ = sphere.barriers(x + u[0])
    assert h[0] >= 0.0 and (np.abs(u) <= 0.1 + 1e-9).all()

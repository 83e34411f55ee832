"""The deploy mode machine, driven by random event sequences on a simulated clock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from robot_rl.safety.base import Fallback, SafetyState
from robot_rl.safety.modes import Mode, ModeMachine

LOWER, UPPER, DEFAULT = -np.ones(3), np.ones(3), np.array([0.1, 0.2, 0.3])


def machine() -> ModeMachine:
    return ModeMachine(Fallback("damp", LOWER, UPPER, DEFAULT), DEFAULT, ramp_s=1.0)


class DeploySequence(RuleBasedStateMachine):
    """Random operator events, ticks that advance a simulated clock, injected exceptions."""

    def __init__(self):
        super().__init__()
        self.m = machine()
        self.now = 0.0
        self.q = np.array([[0.5, -0.5, 0.0]])
        self.expect_damping = False

    def tick(self, policy):
        state = SafetyState(q=self.q.copy(), now=self.now)
        out, report = self.m.tick(state, policy)
        assert np.isfinite(out).all()
        if self.m.mode is Mode.POLICY:
            np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0]])
        if self.m.mode in (Mode.IDLE, Mode.DAMPING, Mode.ESTOP):
            np.testing.assert_array_equal(out, self.q)  # damped at the measured pose
        self.q = out  # the joints follow the command

    @rule(dt=st.floats(0.0, 0.6))
    def tick_ok(self, dt):
        self.now += dt
        self.tick(lambda: np.zeros((1, 3)))

    @rule(
        exc=st.sampled_from(
            [RuntimeError("policy crashed"), ValueError("bad tensor"), ZeroDivisionError()]
        )
    )
    def tick_raises(self, exc):
        was_estop = self.m.mode is Mode.ESTOP
        was_policy = self.m.mode is Mode.POLICY

        def policy():
            raise exc

        self.tick(policy)
        if was_policy:  # the exception surfaced: damping
            assert self.m.mode is Mode.DAMPING
        if was_estop:
            assert self.m.mode is Mode.ESTOP

    @rule()
    def tick_nan(self):
        was_policy = self.m.mode is Mode.POLICY
        self.tick(lambda: np.full((1, 3), np.nan))
        if was_policy:
            assert self.m.mode is Mode.DAMPING

    @rule()
    def start(self):
        self.m.start()

    @rule()
    def engage(self):
        self.m.engage()

    @rule()
    def disengage(self):
        self.m.disengage()

    @rule()
    def stop(self):
        self.m.stop()

    @rule()
    def estop(self):
        self.m.estop()
        assert self.m.mode is Mode.ESTOP

    @rule()
    def reset(self):
        self.m.reset()

    @precondition(lambda self: self.m.mode is Mode.ESTOP)
    @rule()
    def estop_is_latched(self):
        for event in (self.m.start, self.m.engage, self.m.disengage, self.m.stop):
            event()
        self.m.fault("anything")
        assert self.m.mode is Mode.ESTOP

    @invariant()
    def policy_only_after_ramp_and_hold(self):
        h = self.m.history
        for i, mode in enumerate(h):
            if mode is Mode.POLICY:
                assert h[i - 1] is Mode.HOLD
                # the last idle before it was followed by a ramp that completed into hold
                last_idle = max(j for j in range(i) if h[j] is Mode.IDLE)
                assert h[last_idle + 1] is Mode.RAMP and Mode.HOLD in h[last_idle + 2 : i]
            if mode is Mode.HOLD:
                assert h[i - 1] in (Mode.RAMP, Mode.POLICY)
            if i and h[i - 1] is Mode.ESTOP:
                assert mode is Mode.IDLE  # only reset() leaves the e-stop


DeploySequence.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_deploy_sequence = DeploySequence.TestCase


def test_ramp_reaches_the_default_pose_smoothly_then_holds():
    m = machine()
    q = np.array([[0.5, -0.5, 0.0]])
    m.start()
    poses = []
    for k in range(12):
        out, _ = m.tick(SafetyState(q=q, now=0.1 * k), lambda: pytest.fail("policy ran in ramp"))
        poses.append(out[0])
    assert m.mode is Mode.HOLD
    np.testing.assert_allclose(poses[0], q[0])  # starts where the robot is
    np.testing.assert_allclose(poses[-1], DEFAULT)
    steps = np.abs(np.diff(poses, axis=0)).max(axis=1)
    assert steps.max() < 0.15  # no jump: at most 1.5x the mean speed of the 1 s ramp
    assert m.engage() and m.mode is Mode.POLICY


def test_policy_cannot_start_without_ramp():
    m = machine()
    assert not m.engage()  # from idle
    m.start()
    assert not m.engage()  # ramp not finished
    assert m.mode is Mode.RAMP

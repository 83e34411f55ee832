"""The safety node on a manual clock: it alone commands the arm, holds when the policy goes
silent, fails closed on broken joint readings, latches the e-stop."""

import math

import numpy as np
import pytest

from robot_rl.core import load_profile
from robot_rl.deploy.msgs import Bool, DiagnosticStatus, Float64MultiArray, JointState, String
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.safety import SafetyNode

PROFILE = load_profile("arm")
NAMES = [*PROFILE.joint_names, "finger_left", "finger_right"]
HOME = np.array(PROFILE.limits("default"))
PERIOD = 1.0 / PROFILE.control_rate_hz


def joints(q=HOME, finger=0.04) -> JointState:
    q = list(map(float, q))
    return JointState(name=NAMES, position=q + [finger, finger], velocity=[0.0] * 8)


def engaged(**params) -> tuple[SafetyNode, ManualClock]:
    clock = ManualClock(100.0)
    node = SafetyNode({"engage": True, "ramp_s": 0.1, "watchdog_timeout_s": 0.085} | params, clock)
    node.activate()
    node.on_joints(joints())
    for _ in range(40):  # ramp (0.1 s), then hold, then engage
        clock.advance(PERIOD / 4)
        node.on_joints(joints())
        node.tick_watch()
    assert node.modes.mode.value == "policy"
    return node, clock


def commands(out) -> list[np.ndarray]:
    return [np.asarray(m.data) for k, m in out if k == "arm"]


def act(node, clock, action=(0.5, 0, 0, 0, 0, 0, -1)) -> np.ndarray:
    clock.advance(PERIOD)
    node.on_joints(joints())
    out = node.on_action(Float64MultiArray(data=list(action)))
    (cmd,) = commands(out)
    return cmd


def test_an_action_is_commanded_at_once_and_moves_the_tool():
    node, clock = engaged()
    cmd = act(node, clock)
    assert cmd.shape == (6,) and not np.allclose(cmd, HOME)
    assert np.all(np.abs(cmd - HOME) <= np.array(PROFILE.limits("velocity")) * PERIOD + 1e-9)


def test_a_silent_policy_is_held_within_two_control_periods():
    node, clock = engaged()
    last = act(node, clock)
    t_last = clock.t
    held_at = None
    while clock.t < t_last + 5 * PERIOD:
        clock.advance(PERIOD / 4)
        out = node.tick_watch()
        if commands(out) and held_at is None:
            held_at = clock.t
            (hold,) = commands(out)
    assert held_at is not None and held_at - t_last <= 2 * PERIOD
    np.testing.assert_allclose(hold, last)  # hold = the last applied command
    diag = node._diagnostics().status[0]
    assert diag.level == DiagnosticStatus.ERROR and "watchdog" in diag.message


def test_without_the_watchdog_the_node_refuses_to_start(tmp_path):
    cfg = tmp_path / "nowatch.yaml"
    cfg.write_text("profile: arm\nchain: [observation_guard, joint_limits]\n")
    with pytest.raises(Exception, match="no watchdog"):
        SafetyNode({"safety": str(cfg)}, ManualClock())


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_broken_joint_reading_faults_to_the_safe_action(bad):
    node, clock = engaged()
    last = act(node, clock)
    clock.advance(PERIOD)
    q = HOME.copy()
    q[2] = bad
    node.on_joints(joints(q))
    out = node.on_action(Float64MultiArray(data=[1.0, 0, 0, 0, 0, 0, -1]))
    (cmd,) = commands(out)
    np.testing.assert_allclose(cmd, last)
    assert node._diagnostics().status[0].level == DiagnosticStatus.ERROR


def test_a_malformed_joint_state_is_no_reading():
    node, clock = engaged()
    act(node, clock)
    node.on_joints(JointState(name=["shoulder_pan"], position=[0.0]))
    assert any("bad joint_states" in k for k in node.counts)
    clock.advance(0.2)  # the last good reading goes stale: the chain holds
    (cmd,) = commands(node.on_action(Float64MultiArray(data=[1.0, 0, 0, 0, 0, 0, -1])))
    np.testing.assert_allclose(cmd, node.chain.last_command[0, :6])


def test_estop_latches_until_reset():
    node, clock = engaged()
    act(node, clock)
    node.on_estop(Bool(data=True))
    assert node.modes.mode.value == "estop"
    for _ in range(5):  # actions keep coming: none is commanded
        clock.advance(PERIOD)
        node.on_joints(joints())
        assert node.on_action(Float64MultiArray(data=[1.0, 0, 0, 0, 0, 0, -1])) in (None, [])
        (cmd,) = commands(node.tick_watch()) or [np.asarray(HOME)]
        np.testing.assert_allclose(cmd, HOME, atol=1e-9)  # damped: the measured pose
    node.on_estop(Bool(data=False))  # releasing the button does not clear it
    assert node.modes.mode.value == "estop"
    assert "e-stop" in node._diagnostics().status[0].message
    node.on_reset(Bool(data=True))
    assert node.modes.mode.value == "ramp"


def test_the_mode_is_announced_and_an_episode_reset_reseeds_the_chain():
    node, clock = engaged()
    for _ in range(5):
        act(node, clock)
    moved = node.chain.last_command.copy()
    node.on_reset_event(String(data='{"event": "start", "episode": 1}'))
    node.on_joints(joints())
    np.testing.assert_allclose(node.chain.last_command[0, :6], HOME)
    assert not np.allclose(moved[0, :6], HOME)

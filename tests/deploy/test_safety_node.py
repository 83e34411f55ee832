"""The safety node on a manual clock: it alone commands the arm, holds when the policy goes
silent, fails closed on broken readings without ever making a command up, steps at most once per
control period, latches the e-stop, and survives its own exceptions."""

import math

import numpy as np
import pytest

from robot_rl.core import ConfigError, load_profile
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.msgs import Bool, DiagnosticStatus, Float64MultiArray, JointState, String

PROFILE = load_profile("arm")
NAMES = [*PROFILE.joint_names, "finger_left", "finger_right"]
HOME = np.array(PROFILE.limits("default"))
PERIOD = 1.0 / PROFILE.control_rate_hz
SPEED = np.array(PROFILE.limits("velocity"))
PUSH = [1.0, 0, 0, 0, 0, 0, -1.0]  # full speed along x, gripper open


def joints(q=HOME, finger=0.04, velocity=True) -> JointState:
    q = list(map(float, q))
    return JointState(
        name=NAMES, position=q + [finger, finger], velocity=[0.0] * 8 if velocity else []
    )


def arm(out) -> list[np.ndarray]:
    return [np.asarray(m.data) for k, m in out or [] if k == "arm"]


def modes(out) -> list[str]:
    return [m.data for k, m in out or [] if k == "mode"]


def engaged(**params) -> tuple[SafetyNode, ManualClock]:
    clock = ManualClock(100.0)
    node = SafetyNode({"engage": True, "ramp_s": 0.1} | params, clock)
    assert modes(node.activate()) == ["ramp"]
    node.on_joints(joints())
    announced = []
    for _ in range(40):  # ramp (0.1 s), then hold, then engage
        clock.advance(PERIOD / 4)
        node.on_joints(joints())
        announced += modes(node.tick_watch())
    assert announced == ["hold", "policy"]
    return node, clock


def act(node, clock, action=(0.5, 0, 0, 0, 0, 0, -1)) -> np.ndarray:
    clock.advance(PERIOD)
    node.on_joints(joints())
    (cmd,) = arm(node.on_action(Float64MultiArray(data=list(action))))
    return cmd


def test_an_action_is_commanded_at_once_within_the_speed_limits():
    node, clock = engaged()
    cmd = act(node, clock)
    assert cmd.shape == (6,) and not np.allclose(cmd, HOME)
    assert np.all(np.abs(cmd - HOME) <= SPEED * PERIOD + 1e-9)


def test_actions_faster_than_the_control_rate_do_not_command_faster():
    node, clock = engaged()
    last = act(node, clock, PUSH)
    commands = [(clock.t, last)]
    for _ in range(40):  # actions at 4x the control rate, the arm tracking perfectly
        clock.advance(PERIOD / 4)
        node.on_joints(joints(last))
        for cmd in arm(node.on_action(Float64MultiArray(data=PUSH))):
            commands.append((clock.t, cmd))
            last = cmd
    assert len(commands) == 41  # every action is commanded at once ...
    for (t0, a), (t1, b) in zip(commands, commands[1:]):
        # ... but no faster than the speed limits allow, per unit of time
        assert np.all(np.abs(b - a) <= SPEED * (t1 - t0) + 1e-9)
    moved = np.abs(commands[-1][1] - commands[0][1]).max()
    assert moved > 0.5 * SPEED.min() * (commands[-1][0] - commands[0][0])  # and it does move


def test_a_silent_policy_is_held_within_two_control_periods():
    node, clock = engaged()
    last = act(node, clock)
    t_last, held = clock.t, None
    while clock.t < t_last + 5 * PERIOD:
        clock.advance(PERIOD / 4)
        cmds = arm(node.tick_watch())
        if cmds and held is None:
            held = (clock.t, cmds[0])
    assert held is not None and held[0] - t_last <= 2 * PERIOD + 1e-9
    np.testing.assert_allclose(held[1], last)  # the hold is the last applied command
    diag = node._diagnostics().status[0]
    assert diag.level == DiagnosticStatus.ERROR and "watchdog" in diag.message


def test_configs_that_cannot_hold_in_time_or_lack_a_watchdog_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="two control periods"):
        SafetyNode({"watchdog_timeout_s": 0.2}, ManualClock())
    cfg = tmp_path / "nowatch.yaml"
    cfg.write_text("profile: arm\nchain: [observation_guard, joint_limits]\n")
    with pytest.raises(ConfigError, match="no watchdog"):
        SafetyNode({"safety": str(cfg)}, ManualClock())


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_broken_joint_reading_faults_to_the_safe_action(bad):
    node, clock = engaged()
    last = act(node, clock)
    clock.advance(PERIOD)
    q = HOME.copy()
    q[2] = bad
    node.on_joints(joints(q))
    (cmd,) = arm(node.on_action(Float64MultiArray(data=PUSH)))
    np.testing.assert_allclose(cmd, last)
    assert node._diagnostics().status[0].level == DiagnosticStatus.ERROR


def test_no_command_is_made_up_from_a_broken_first_reading():
    clock = ManualClock(0.0)
    node = SafetyNode({"engage": True, "ramp_s": 0.1}, clock)
    node.activate()
    start = HOME + 0.8
    bad = start.copy()
    bad[3] = math.nan
    published = []
    for _ in range(20):
        clock.advance(PERIOD / 4)
        node.on_joints(joints(bad))
        published += arm(node.tick_watch())
    assert published == []  # neither the default pose nor anything else
    node.on_joints(joints(start))
    clock.advance(PERIOD)
    (cmd,) = arm(node.tick_watch()) or [None]
    assert cmd is not None and np.allclose(cmd, start, atol=SPEED.max() * PERIOD)


def test_a_wrong_length_message_changes_nothing_and_a_gripper_driver_may_publish_apart():
    node, clock = engaged()
    act(node, clock)
    node.on_joints(JointState(name=["shoulder_pan", "elbow"], position=[0.0]))
    assert any("bad joint_states" in k for k in node.counts)
    np.testing.assert_allclose(node.q[0, :6], HOME)
    node.on_joints(JointState(name=["finger_left"], position=[0.03], velocity=[0.0]))
    assert node.q[0, 6] == pytest.approx(0.03)
    node.on_joints(JointState(name=NAMES[:6], position=list(HOME + 0.01)))  # no velocities
    assert node.dq is None and node.q[0, 0] == pytest.approx(HOME[0] + 0.01)


def test_estop_latches_holds_the_last_command_and_resets_only_when_released():
    node, clock = engaged()
    for _ in range(3):
        last = act(node, clock, PUSH)
    (cmd,) = arm(node.on_estop(Bool(data=True)))
    np.testing.assert_allclose(cmd, last)  # held where it was, not the default pose
    assert node.modes.mode.value == "estop"
    for k in range(8):  # actions keep coming, one reading is broken: none moves the arm
        clock.advance(PERIOD)
        node.on_joints(joints(HOME if k != 3 else HOME * math.nan))
        assert arm(node.on_action(Float64MultiArray(data=PUSH))) == []
        for c in arm(node.tick_watch()):
            np.testing.assert_allclose(c, last)
    node.on_reset(Bool(data=True))  # /estop still asserted: refused
    assert node.modes.mode.value == "estop" and "refused" in node.status[0]
    node.on_estop(Bool(data=False))  # releasing the button does not clear it either
    assert node.modes.mode.value == "estop"
    assert "e-stop" in node._diagnostics().status[0].message
    assert modes(node.on_reset(Bool(data=True))) == ["ramp"]


def test_an_exception_in_a_handler_is_a_fault_not_a_crash():
    node, clock = engaged()
    last = act(node, clock)

    def broken(state):
        raise RuntimeError("kinematics exploded")

    node._proposal = broken
    clock.advance(PERIOD)
    node.on_joints(joints())
    out = node.handle("action", Float64MultiArray(data=PUSH))  # as a host calls it
    assert node.modes.mode.value == "damping"
    (cmd,) = arm(out)
    np.testing.assert_allclose(cmd, last)


def test_engage_is_automatic_once_and_a_disengage_is_respected():
    node, clock = engaged()
    assert modes(node.on_engage(Bool(data=False))) == ["hold"]
    for _ in range(20):
        clock.advance(PERIOD / 4)
        node.on_joints(joints())
        node.tick_watch()
    assert node.modes.mode.value == "hold"


def test_deactivate_holds_and_returns_to_idle_and_activate_ramps_again():
    node, clock = engaged()
    last = act(node, clock)
    out = node.deactivate()
    np.testing.assert_allclose(arm(out)[0], last)
    assert modes(out) == ["idle"] and node.chain.last_command is None
    assert modes(node.activate()) == ["ramp"]


def test_an_episode_reset_reseeds_the_chain():
    node, clock = engaged()
    for _ in range(5):
        act(node, clock, PUSH)
    assert not np.allclose(node.chain.last_command[0, :6], HOME)
    node.on_reset_event(String(data='{"event": "start", "episode": 1}'))
    node.on_joints(joints())
    np.testing.assert_allclose(node.chain.last_command[0, :6], HOME)


def test_a_joint_trajectory_controller_gets_one_point_per_command():
    node, clock = engaged(command_interface="trajectory")
    clock.advance(PERIOD)
    node.on_joints(joints())
    out = node.on_action(Float64MultiArray(data=PUSH))
    assert not [k for k, _ in out if k in ("arm", "gripper")]
    (msg,) = [m for k, m in out if k == "trajectory"]
    assert msg.joint_names == [*NAMES[:6], "finger_left"]
    (point,) = msg.points
    assert len(point.positions) == 7 and not np.allclose(point.positions[:6], HOME)
    assert point.time_from_start.nanosec == int(PERIOD * 1e9)
    with pytest.raises(ConfigError, match="command_interface"):
        SafetyNode({"command_interface": "torque"}, ManualClock())

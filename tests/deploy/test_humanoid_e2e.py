"""End to end, no ROS: ``robot-rl launch launch/humanoid_sim.launch.xml`` starts the humanoid's
simulator bridge, the policy node (a small PPO policy) and the safety node as separate processes
talking DDS; this test joins the domain like any ROS 2 / Unitree SDK tool and checks that the
safety node ramps and holds before the policy, that in policy mode its ``LowCmd_`` carries the
policy's targets with the profile's gains (and a valid CRC), and that a fall (the robot pushed
hard) switches it to damping (kp 0, kd 8), latched."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from robot_rl.core.profile import load_profile
from robot_rl.deploy.humanoid_io import HumanoidSpec
from robot_rl.deploy.qos import COMMAND, LATCHED, SENSOR
from robot_rl.msgs import Float64MultiArray, LowCmd_, LowState_, String, low_cmd_crc
from robot_rl.msgs.unitree_hg import quat_rpy
from tests.deploy.test_e2e import Tap, launched, wait

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests/assets/policies/humanoid_balance_ppo_small"
BUDGET_S = 90.0


@pytest.fixture
def humanoid_graph():
    """The launched humanoid graph on a private DDS domain; yields (process, participant, lines)."""
    args = [f"checkpoint:={CHECKPOINT}", "ramp_s:=0.5", "push:=3.0", "push_interval:=2.0"]
    with launched("launch/humanoid_sim.launch.xml", [*args, "seed:=1"], domain_salt=53) as g:
        yield g


def test_humanoid_sim_graph_ramps_runs_the_policy_and_damps_a_fall(humanoid_graph):
    proc, dp, lines = humanoid_graph
    spec = HumanoidSpec.of(load_profile("humanoid"))
    slots = spec.motors
    modes = Tap(dp, "/safety_node/mode", String, LATCHED)
    cmds = Tap(dp, "/lowcmd", LowCmd_, COMMAND)
    states = Tap(dp, "/lowstate", LowState_, SENSOR)
    actions = Tap(dp, "/policy_node/action_raw", Float64MultiArray, COMMAND)
    taps = (modes, cmds, states, actions)

    def seen(mode: str) -> list[float]:
        return [t for t, m in modes.items if m.data == mode]

    ok = wait(lambda: seen("damping"), BUDGET_S, taps)
    assert ok, f"modes {[m.data for _, m in modes.items]}; output:\n" + "".join(lines[-30:])
    wait(lambda: False, 1.0, taps)  # a second of damping
    assert proc.poll() is None

    # 1. the mode machine: ramp, hold, then the policy; never the policy before the hold
    # (the mode topic keeps one sample: the hold and the hand-over in one tick may show as one)
    order = [m.data for _, m in modes.items]
    assert order.index("ramp") < order.index("policy") < order.index("damping"), order
    assert "hold" not in order or order.index("ramp") < order.index("hold") < order.index("policy")
    before = [t for t, _ in actions.items if t < seen("policy")[0]]
    ramp = [m for t, m in cmds.items if t < seen("policy")[0]]
    assert ramp and not before  # the bridge steps, and the policy acts, only from the hand-over

    def gains(m: LowCmd_) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([m.motor_cmd[i].kp for i in slots]),
            np.array([m.motor_cmd[i].kd for i in slots]),
        )

    assert all(low_cmd_crc(m) == m.crc for _, m in cmds.items)
    assert all(m.motor_cmd[20].mode == 0 for _, m in cmds.items)  # not a profile motor

    # 2. in policy mode the LowCmd_ carries the policy's targets with the profile's gains
    t_policy, t_damp = seen("policy")[0], seen("damping")[0]
    policy_cmds = [m for t, m in cmds.items if t_policy + 0.1 < t < t_damp - 0.1]
    assert len(policy_cmds) > 10
    for m in policy_cmds:
        kp, kd = gains(m)
        np.testing.assert_allclose(kp, spec.kp)
        np.testing.assert_allclose(kd, spec.kd)
    targets = [spec.target(np.asarray(m.data)) for t, m in actions.items if t_policy < t < t_damp]
    sent = np.array([[m.motor_cmd[i].q for i in slots] for m in policy_cmds])
    # the actions' targets are what is commanded (float32 on the wire). The rate limiter and the
    # joint margin may move some, and on a loaded machine an action can arrive after the watchdog
    # began holding (about 20% of them on 2 busy cores): most, not all, must match exactly, while
    # a node that did not send the policy's targets would match none
    matched = sum(np.abs(sent - tgt).max(axis=1).min() < 1e-5 for tgt in targets)
    assert matched >= 0.5 * len(targets), (matched, len(targets))

    # 3. the fall: the robot is beyond the fall limits, and from the damping on every LowCmd_
    # damps (kp 0, kd 8): latched while the robot lies there
    tilts = [np.abs(quat_rpy(m.imu_state.quaternion)[:2]) for _, m in states.items]
    assert any(r > 0.8 or p > 1.0 for r, p in tilts)
    damped = [m for t, m in cmds.items if t > t_damp + 0.05]
    assert len(damped) > 20  # commanded every period while damped
    for m in damped:
        kp, kd = gains(m)
        assert (kp == 0).all() and (kd == spec.damping_kd).all()
    assert seen("policy")[-1] < t_damp  # no policy mode after the fall

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0

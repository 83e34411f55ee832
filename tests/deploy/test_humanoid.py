"""The humanoid on the wire: unitree_hg ``LowCmd_``/``LowState_`` (layout, CRC), the observation
rebuilt from ``LowState_`` (equal to the task's), the safety node's mode machine on ``LowCmd_``
(no policy before ramp and hold; the mode's gains), a fall ⇒ damping within one tick, latched;
the policy node running a PPO checkpoint one action per tick."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.core import load_profile
from robot_rl.core.layouts import humanoid_state_names as state_names
from robot_rl.deploy.humanoid_io import HumanoidSpec, PolicyInputs
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.policy import PolicyNode
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.msgs import (
    Bool,
    Float64MultiArray,
    LowCmd_,
    LowState_,
    MotorState_,
    dds_type_name,
    low_cmd_crc,
    low_state_crc,
)
from robot_rl.msgs.unitree_hg import _LOW_CMD, _LOW_STATE, crc32_mpeg2, crc32_words

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests/assets/policies/humanoid_balance_ppo_small"
PROFILE = load_profile("humanoid")
SPEC = HumanoidSpec.of(PROFILE)
PERIOD = 1.0 / PROFILE.control_rate_hz  # 0.02 s


def crc32_core(words) -> int:
    """unitree_sdk2's crc32_core, bit by bit as its C source loops (the reference)."""
    crc, poly = 0xFFFFFFFF, 0x04C11DB7
    for data in words:
        for bit in range(31, -1, -1):
            crc = ((crc << 1) ^ poly) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
            if (int(data) >> bit) & 1:
                crc ^= poly
    return crc


# --- messages -----------------------------------------------------------------------------------


def test_crc_is_crc32_mpeg2_of_the_words_as_unitree_sdk2_computes_it():
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the CRC catalogue's check value
    words = np.random.default_rng(0).integers(0, 2**32, 40, dtype=np.uint64)
    assert crc32_words(words) == crc32_core(words)
    # the C structs' sizes (unitree_sdk2_python utils/crc.py: 1004 and 2092 bytes)
    assert _LOW_CMD.size == 1004 and _LOW_STATE.size == 2092


def test_low_cmd_crc_covers_every_field_but_itself():
    msg = LowCmd_()
    base = low_cmd_crc(msg)
    assert base == crc32_core([0] * 250)  # an all-zero command: 250 zero words
    msg.crc = 123
    assert low_cmd_crc(msg) == base  # the crc word is not covered
    msg.motor_cmd[34].kd = 8.0
    assert low_cmd_crc(msg) != base
    state = LowState_()
    assert low_state_crc(state) != low_state_crc(LowState_(tick=1))


def test_unitree_types_round_trip_as_final_xcdr1_structs():
    assert dds_type_name(LowCmd_) == "unitree_hg::msg::dds_::LowCmd_"
    assert dds_type_name(LowState_) == "unitree_hg::msg::dds_::LowState_"
    msg = LowCmd_(mode_machine=5)
    msg.motor_cmd[3].q, msg.motor_cmd[3].kp = 0.5, 300.0
    msg.crc = low_cmd_crc(msg)
    raw = msg.serialize()
    assert raw[:2] == b"\x00\x01"  # CDR_LE: XCDR1, plain (final)
    assert LowCmd_.deserialize(raw) == msg
    state = LowState_(tick=7)
    state.motor_state[2] = MotorState_(q=0.25, temperature=[30, 31])
    assert LowState_.deserialize(state.serialize()) == state


# --- observation ---------------------------------------------------------------------------------


def test_low_state_gives_the_tasks_observation():
    from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
    from robot_rl.envs import make

    env = make(
        "humanoid_balance", 1, seed=0, terminate_on_fall=False,
        randomization={"action_delay": 0, "obs_noise_std": 0.0},
    )  # fmt: skip
    # the layout the adapter builds: 45 entries, joint blocks in the profile's order
    names = state_names(PROFILE.joint_names)
    assert len(names) == 45 and names[9] == f"joint_pos.{PROFILE.joint_names[0]}"
    bridge = SimBridgeNode({"task": "humanoid_balance"}, env=env)
    sim = bridge.robot
    inputs = PolicyInputs(PROFILE, {}, env)  # any config: no state_names, the 45 entries
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for i in range(40):
        action = (torch.rand(1, 12, generator=gen) * 2 - 1) * 0.5
        command = sim.initial_command()
        command[0] = SPEC.target(action[0].numpy())
        sim.command = command  # what the safety node would have sent for this action
        env.step(action)
        msg = LowState_.deserialize(sim.low_state(1000 + 20 * i).serialize())
        inputs.update("state", msg)
        inputs.acted(action[0].numpy())
        ours, theirs = inputs.state(), env._observe_state()[0].double().numpy()
        worst = max(worst, float(np.abs(ours - theirs).max()))
    assert worst < 1e-5
    assert inputs.stamp(msg) == pytest.approx((1000 + 20 * 39) / 1000)


# --- the safety node -----------------------------------------------------------------------------


def low_state(roll: float = 0.0, q=None) -> LowState_:
    msg = LowState_()
    q = SPEC.default if q is None else q
    for j, slot in enumerate(SPEC.motors):
        msg.motor_state[slot] = MotorState_(mode=1, q=float(q[j]))
    msg.imu_state.quaternion = [math.cos(roll / 2), math.sin(roll / 2), 0.0, 0.0]
    return msg


def commands(out) -> list[LowCmd_]:
    return [m for k, m in out or [] if k == "low_cmd"]


def modes(out) -> list[str]:
    return [m.data for k, m in out or [] if k == "mode"]


def unpack(msg: LowCmd_):
    """(q, kp, kd) ``(12,)`` of the profile's motors; checks the CRC and the unused slots."""
    assert msg.crc == low_cmd_crc(msg)
    m = [msg.motor_cmd[i] for i in SPEC.motors]
    others = [msg.motor_cmd[i] for i in range(35) if i not in set(SPEC.motors.tolist())]
    assert all(c.mode == 0 and c.kp == 0 and c.kd == 0 for c in others)
    return tuple(np.array([getattr(c, f) for c in m], float) for f in ("q", "kp", "kd"))


def safety(engage: bool = False, ramp_s: float = 0.2):
    clock = ManualClock(100.0)
    node = SafetyNode({"profile": "humanoid", "safety": "humanoid", "engage": engage,
                       "ramp_s": ramp_s}, clock)  # fmt: skip
    assert set(node.publishers) == {"low_cmd", "diagnostics", "mode"}
    assert node.publishers["low_cmd"].topic == "/lowcmd"
    return node, clock


def run(node, clock, seconds: float, action=None, state=None):
    """Advance the clock by quarter periods: a lowstate each, an action each period."""
    out = []
    for i in range(round(seconds / (PERIOD / 4))):
        clock.advance(PERIOD / 4)
        node.on_state(state or low_state())
        if action is not None and i % 4 == 0:
            out += node.on_action(Float64MultiArray(data=list(action))) or []
        out += node.tick_watch() or []
    return out


def test_the_policy_is_refused_before_ramp_and_hold():
    start = SPEC.default + 0.2  # the robot hangs away from its default pose
    node, clock = safety(ramp_s=0.2)
    assert modes(node.activate()) == ["ramp"]
    action = np.full(12, -0.8)  # targets 0.2 rad on the other side of the default pose
    assert not node.on_engage(Bool(data=True))  # refused while ramping
    out = run(node, clock, 0.1, action, low_state(q=start))
    sent = [unpack(m) for m in commands(out)]
    assert sent, "nothing commanded during the ramp"
    for q, kp, kd in sent:  # the ramp: between where the robot stands and the default pose
        assert not np.allclose(q, SPEC.target(action), atol=1e-3)
        assert (np.minimum(start, SPEC.default) - 1e-6 <= q).all()
        assert (q <= np.maximum(start, SPEC.default) + 1e-6).all()
        np.testing.assert_allclose(kp, SPEC.kp)
        np.testing.assert_allclose(kd, SPEC.kd)
    out = run(node, clock, 0.3, action, low_state(q=start))
    assert modes(out) == ["hold"]  # engage is false: it holds, whatever the policy sends
    q, _, _ = unpack(commands(out)[-1])
    np.testing.assert_allclose(q, SPEC.default, atol=1e-6)
    assert modes(node.on_engage(Bool(data=True))) == ["policy"]
    out = run(node, clock, 0.04, action, low_state())
    q, kp, _ = unpack(commands(out)[-1])
    np.testing.assert_allclose(q, SPEC.target(action), atol=1e-5)  # float32 on the wire
    np.testing.assert_allclose(kp, SPEC.kp)


def engaged():
    node, clock = safety(engage=True, ramp_s=0.1)
    node.activate()
    assert modes(run(node, clock, 0.2)) == ["hold", "policy"]
    return node, clock


def test_a_fall_damps_within_the_tick_and_stays_damped():
    node, clock = engaged()
    action = np.full(12, 0.1)
    run(node, clock, 0.1, action)
    clock.advance(PERIOD)
    node.on_state(low_state(roll=0.9))  # beyond max_roll 0.8
    out = node.on_action(Float64MultiArray(data=list(action)))
    assert modes(out) == ["damping"]
    ((q, kp, kd),) = [unpack(m) for m in commands(out)]
    assert (kp == 0).all() and (kd == 8.0).all()  # the profile's damping_mode
    # upright again, the policy still sending: latched
    out = run(node, clock, 0.2, action, low_state())
    assert modes(out) == [] and node.modes.mode.value == "damping"
    damped = [unpack(m) for m in commands(out)]
    assert len(damped) >= 9  # commanded every period (the watchdog timer)
    assert all((kp == 0).all() and (kd == 8.0).all() for _, kp, kd in damped)
    # the operator's reset ramps again (position gains)
    assert modes(node.on_reset(Bool(data=True))) == ["ramp"]
    _, kp, _ = unpack(commands(run(node, clock, 0.05))[-1])
    np.testing.assert_allclose(kp, SPEC.kp)


def test_a_fall_during_the_ramp_damps_and_idle_is_zero_torque():
    node, clock = safety(ramp_s=0.5)
    node.activate()
    out = run(node, clock, 0.05, state=low_state(roll=-1.2))
    assert "damping" in modes(out)
    _, kp, kd = unpack(commands(out)[-1])
    assert (kp == 0).all() and (kd == 8.0).all()
    _, kp, kd = unpack(node.io.command(SPEC.default, None, "idle")[0][1])
    assert (kp == 0).all() and (kd == 0).all()


# --- the policy node -----------------------------------------------------------------------------


def test_policy_node_runs_a_ppo_checkpoint_one_action_per_tick():
    from robot_rl.algos.ppo_job import load_ppo

    clock = ManualClock(0.0)
    node = PolicyNode({"checkpoint": str(CHECKPOINT), "profile": "humanoid"}, clock)
    assert node.action_steps == 1 and node.inputs.dim == 45
    reference = load_ppo(CHECKPOINT)
    for i in range(3):
        msg = low_state(roll=0.05 * i)
        msg.tick = 1000 + 20 * i
        before = node.inputs.last.copy()
        ((key, out),) = node.on_state(msg)
        assert key == "action"
        node.inputs.last = before  # the observation the action was computed from
        state = torch.from_numpy(node.inputs.state()).float()[None]
        expected = reference({"state": state, "privileged": torch.zeros(1, 10)})[0]
        np.testing.assert_allclose(out.data, expected.numpy(), atol=1e-6)
        node.inputs.acted(np.asarray(out.data))
    # the same tick again (no newer stamp): no second action
    assert node.on_state(msg) == []

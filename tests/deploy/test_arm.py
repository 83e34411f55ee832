"""The arm through ROS messages computes what the simulated arm task computes: the observation
from ``/joint_states`` + poses equals ``obs["state"]``, the ``ee_delta`` → joint command mapping
equals the task's own IK."""

import numpy as np
import pytest
import torch

from robot_rl.core import load_profile
from robot_rl.deploy.arm import (
    STATE_NAMES,
    ArmObservation,
    EeDeltaCommand,
    JointCache,
    joint_arrays,
    quat_matrix,
)
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode, matrix_quat
from robot_rl.envs import make
from robot_rl.envs.tasks.arm.base import ArmEnv
from robot_rl.msgs import JointState


def test_state_names_match_the_arm_tasks():
    assert ArmEnv.state_names == STATE_NAMES


def _messages(bridge: SimBridgeNode) -> dict:
    return dict(bridge._observe())


@pytest.mark.parametrize("task", ["arm_reach", "arm_push"])
def test_observation_from_messages_equals_the_simulated_state(task):
    env = make(task, 1, seed=4)
    bridge = SimBridgeNode({"task": task}, ManualClock(), env=env)
    observe = ArmObservation(load_profile("arm"))
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        msgs = _messages(bridge)
        q, dq = joint_arrays(msgs["joints"], observe.joint_names)
        state = observe(q, dq, msgs["cube"].pose, msgs["goal"].pose)
        expected = env._observe()["state"][0].double().numpy()
        # float32 in the env; the tool pose from the profile's chain instead of MuJoCo
        np.testing.assert_allclose(state, expected, atol=2e-5)
        bridge.command = (
            np.asarray(env._q_des[0].tolist() + [0.02], float)
            + 0.05 * torch.rand(7, generator=gen).double().numpy()
        )
        env.step(env._neutral_action()[None])


def test_ee_delta_command_reproduces_the_task_ik():
    env = make("arm_reach", 1, seed=1)
    env.reset(seed=1)
    mapper = EeDeltaCommand(env.profile, env.control_dt, env.cfg.ik_damping)
    seen = {}

    def capture(e, command):
        seen["command"] = command[0].double().numpy().copy()
        return command

    env.command_filter = capture
    gen = torch.Generator().manual_seed(3)
    last = None
    for _ in range(40):
        q, _ = env.command_joints
        action = torch.rand(1, 7, generator=gen) * 2 - 1
        expected = mapper(q[0, :6].numpy(), action[0].numpy(), last)
        env.step(action)
        np.testing.assert_allclose(expected, seen["command"], atol=1e-6)
        last = seen["command"]


def test_the_mapping_stays_inside_the_joint_limits_and_the_band():
    profile = load_profile("arm")
    mapper = EeDeltaCommand(profile, 0.05)
    rng = np.random.default_rng(0)
    low, high = np.array(profile.limits("lower")), np.array(profile.limits("upper"))
    for _ in range(200):
        q = rng.uniform(low, high)
        last = np.concatenate([rng.uniform(low, high), [0.02]])
        cmd = mapper(q, rng.uniform(-3, 3, 7), last)
        assert np.all(cmd[:6] >= low - 1e-12) and np.all(cmd[:6] <= high + 1e-12)
        assert np.all(np.abs(cmd[:6] - q) <= 2 * mapper.step_max + 1e-12)
        assert 0.0 <= cmd[6] <= profile.gripper.upper


def test_joint_arrays_reads_by_name_and_rejects_missing_joints():
    msg = JointState(name=["b", "a"], position=[2.0, 1.0], velocity=[0.2, 0.1])
    q, dq = joint_arrays(msg, ["a", "b"])
    assert q.tolist() == [1.0, 2.0] and dq.tolist() == [0.1, 0.2]
    q, dq = joint_arrays(JointState(name=["a"], position=[1.0]), ["a"])
    assert np.isnan(dq).all()
    with pytest.raises(ValueError, match="lacks joints"):
        joint_arrays(msg, ["a", "c"])
    with pytest.raises(ValueError, match="positions"):
        joint_arrays(JointState(name=["a", "b"], position=[1.0]), ["a"])


def test_joint_cache_merges_drivers_and_keeps_what_it_had_on_bad_input():
    cache = JointCache(["arm", "finger"])
    cache.update(JointState(name=["arm"], position=[1.0], velocity=[0.1]))
    with pytest.raises(ValueError, match="lacks joints"):
        cache.arrays()
    cache.update(JointState(name=["finger"], position=[0.04]))  # a gripper driver, no velocity
    q, dq = cache.arrays()
    assert q.tolist() == [1.0, 0.04] and dq is None
    cache.update(JointState(name=["finger"], position=[0.03], velocity=[0.0]))
    with pytest.raises(ValueError, match="velocities"):
        cache.update(JointState(name=["arm"], position=[9.0], velocity=[1.0, 2.0]))
    q, dq = cache.arrays()
    assert q.tolist() == [1.0, 0.03] and dq.tolist() == [0.1, 0.0]


def test_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        m = quat_matrix(*q)
        np.testing.assert_allclose(quat_matrix(*matrix_quat(m)), m, atol=1e-12)

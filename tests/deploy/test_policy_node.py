"""The policy node: one action per new observation, the simulator's receding horizon when
inference fits the budget, the old chunk's next action (never a blocked tick) when it does not."""

import json
import threading
import time

import numpy as np
import pytest
import torch

from robot_rl.algos.chunk_runner import ChunkRunner
from robot_rl.core.errors import ConfigError
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.policy import PolicyNode
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
from robot_rl.envs import make
from robot_rl.msgs import String
from robot_rl.policies import FlowConfig, FlowPolicy


def tiny_policy(seed: int = 0) -> FlowPolicy:
    torch.manual_seed(seed)
    cfg = FlowConfig.from_dict(
        {"state_dim": 40, "action_dim": 7, "task": "arm_reach", "horizon": 8, "action_steps": 3,
         "unet": {"down_dims": [8, 16], "time_dim": 16}, "state_hidden": 16,
         "state_features": 16, "integration_steps": 2}
    )  # fmt: skip
    return FlowPolicy(cfg).eval()


def bridge_and_node(policy, budget=10.0, seed=0, noise_scale=1.0):
    env = make("arm_reach", 1, seed=seed)
    bridge = SimBridgeNode({"task": "arm_reach", "seed": seed}, ManualClock(), env=env)
    params = {"inference_budget_s": budget, "seed": 5, "noise_scale": noise_scale}
    node = PolicyNode(params, ManualClock(), policy=policy)
    return env, bridge, node


def feed(node, msgs):
    d = dict(msgs)
    node.on_cube(d["cube"])
    node.on_goal(d["goal"])
    return node.on_joints(d["joints"])


@pytest.mark.parametrize("noise_scale", [1.0, 0.0])
def test_the_node_acts_as_the_batched_simulators_runner(noise_scale):
    policy = tiny_policy()
    env, bridge, node = bridge_and_node(policy, noise_scale=noise_scale)
    runner = ChunkRunner(
        policy,
        1,
        state_names=env.state_names,
        noise_scale=noise_scale,
        generator=torch.Generator().manual_seed(5),
    )
    obs = env._observe()
    for step in range(12):
        msgs = bridge._observe()
        ((key, msg),) = feed(node, msgs)
        ours = np.asarray(msg.data)
        expected = runner(obs)[0].double().numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-4, err_msg=f"step {step}")
        bridge.command = np.asarray(env._q_des[0].tolist() + [0.04])
        obs, *_ = env.step(env._neutral_action()[None])
        bridge.sim_time += env.control_dt
    assert node.stats["replans"] == runner.replans == 4


def test_one_action_per_new_observation():
    _, bridge, node = bridge_and_node(tiny_policy())
    msgs = bridge._observe()
    assert len(feed(node, msgs)) == 1
    assert feed(node, msgs) == []  # the same stamp again: not a new observation
    assert node.stats["observations"] == 1


def test_missing_objects_or_nan_readings_give_no_action():
    _, bridge, node = bridge_and_node(tiny_policy())
    d = dict(bridge._observe())
    assert node.on_joints(d["joints"]) == []  # no cube / goal pose yet
    node.on_cube(d["cube"])
    node.on_goal(d["goal"])
    d["joints"].position[1] = float("nan")
    assert node.on_joints(d["joints"]) == []


def test_a_late_chunk_never_blocks_the_tick_and_skips_the_ticks_it_missed():
    policy = tiny_policy()
    _, bridge, node = bridge_and_node(policy, budget=0.02)
    gate = threading.Event()
    real = node._sample

    def slow(window):
        gate.wait(5)
        return real(window)

    node._sample = slow
    msgs = bridge._observe()
    t0 = time.monotonic()
    assert feed(node, msgs) == []  # the first chunk is late: nothing to execute yet
    assert time.monotonic() - t0 < 0.5
    assert node.stats["late_chunks"] == 1
    for _ in range(2):  # two more ticks pass without the chunk
        bridge.sim_time += 0.05
        assert feed(node, bridge._observe()) == []
    gate.set()
    node.pending.result(5)
    bridge.sim_time += 0.05
    ((_, msg),) = feed(node, bridge._observe())
    # the chunk was asked for 3 ticks ago: its actions 0..2 belong to ticks that passed
    np.testing.assert_allclose(np.asarray(msg.data), node.chunk[3])
    assert node.index == 4


def test_an_episode_start_clears_window_and_queue():
    _, bridge, node = bridge_and_node(tiny_policy())
    feed(node, bridge._observe())
    assert node.chunk is not None
    node.on_reset(String(data=json.dumps({"event": "start", "episode": 1})))
    assert node.chunk is None and not node.history.frames and node.last_stamp == -np.inf
    joints = dict(bridge._observe())["joints"]
    assert node.on_joints(joints) == []  # the poses were forgotten: no action without new ones
    assert node.chunk is None
    bridge.sim_time += 0.05
    assert len(feed(node, bridge._observe())) == 1
    node.on_reset(String(data="not json"))  # ignored
    assert node.chunk is not None


def test_unknown_or_mistyped_parameters_are_refused():
    with pytest.raises(Exception, match="unknown parameter"):
        PolicyNode({"checkpont": "x"}, ManualClock(), policy=tiny_policy())
    with pytest.raises(Exception, match="must be a float"):
        PolicyNode({"inference_budget_s": "soon"}, ManualClock(), policy=tiny_policy())
    with pytest.raises(Exception, match="checkpoint"):
        PolicyNode({}, ManualClock())
    with pytest.raises(ConfigError, match="noise_scale must be a finite number >= 0"):
        PolicyNode({"noise_scale": -0.5}, ManualClock(), policy=tiny_policy())

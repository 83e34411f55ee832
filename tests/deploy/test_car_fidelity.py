"""Deployment fidelity of the RC car without a transport: sim bridge, policy and safety node wired
on a manual clock run the same ``rccar_race`` episodes as the batched simulator with the car's
safety chain in the loop (``attach_safety``), step for step. The policy samples with zero noise
and the lidar is noiseless, so both sides are deterministic; the chain's scans differ only in
their beams (the graph's 1086-beam scan, the simulator's 1080), which decides nothing here."""

from pathlib import Path

import pytest

from robot_rl.deploy.graph import LocalGraph
from robot_rl.deploy.node import ManualClock
from robot_rl.deploy.nodes.policy import PolicyNode
from robot_rl.deploy.nodes.safety import SafetyNode
from robot_rl.deploy.nodes.sim_bridge import SimBridgeNode
from robot_rl.deploy.rosargs import NodeOptions
from robot_rl.envs import make
from robot_rl.policies import load
from tests.deploy.test_car import car_policy
from tests.deploy.test_fidelity import episode_lengths, zero_noise

CHECKPOINT = Path(__file__).resolve().parents[1] / "assets/policies/rccar_race_flow_small"
EPISODES, SEED, TRACK = 6, 3, "oval"
TASK = {"tracks": [TRACK], "lidar_noise_std": 0.0}


def batched_lengths(policy) -> list[int]:
    return episode_lengths(policy, "rccar_race", "rccar", EPISODES, SEED, **TASK)


def graph_results(policy) -> list[dict]:
    clock = ManualClock(1000.0)
    env = make("rccar_race", 1, seed=SEED, **TASK)
    bridge = SimBridgeNode({"task": "rccar_race", "seed": SEED, "episodes": EPISODES}, clock, env)
    car = {"profile": "rccar", "reset_topic": "/sim/episode"}
    node = PolicyNode({**car, "track": TRACK, "inference_budget_s": 60.0}, clock, policy=policy)
    safety = SafetyNode({**car, "safety": "rccar", "engage": True, "ramp_s": 0.1}, clock)
    nodes = (bridge, node, safety)
    for n in nodes:
        n.log = lambda text: None
    graph = LocalGraph([(n, NodeOptions(n.default_name)) for n in nodes], clock)
    graph.start()
    bridge.started = True
    while not bridge.done and clock.t < 1000.0 + 40.0 * EPISODES:
        graph.run_until(clock.t + 1.0)
    return bridge.results


@pytest.mark.slow
def test_the_car_graph_runs_the_batched_simulators_episodes():
    env = make("rccar_race", 1, seed=SEED, **TASK)
    policy = zero_noise(car_policy(env, seed=1))
    ref, ours = batched_lengths(policy), [r["length"] for r in graph_results(policy)]
    assert len(ours) == EPISODES
    # episode 0 starts while the safety node ramps to a stop; from then on the same episodes
    assert ours[1:] == ref[1:]


@pytest.mark.slow
def test_the_trained_car_policy_laps_the_same_through_the_graph():
    if not (CHECKPOINT / "config.json").is_file():
        pytest.skip(f"no trained car policy at {CHECKPOINT.name}")
    policy = zero_noise(load(CHECKPOINT))
    results = graph_results(policy)
    assert [r["length"] for r in results][1:] == batched_lengths(policy)[1:]
    assert sum(r["success"] for r in results) >= EPISODES - 1  # laps, not crashes

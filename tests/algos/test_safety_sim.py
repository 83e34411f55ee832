"""The safety chain inside the simulated arm: zero hard-limit violations under a random policy
that violates them without it, and a working task with the chain in the loop."""

from __future__ import annotations

import torch

from robot_rl.algos.safety_sim import SimSafety, ViolationMeter
from robot_rl.envs import make
from robot_rl.safety import SafetyConfig, build_chain


def violations(with_chain: bool, steps: int = 150) -> tuple[dict, SimSafety | None]:
    env = make("arm_push", 16, seed=3)
    cfg = SafetyConfig.load("arm")
    meter = ViolationMeter(env, cfg)
    sim = SimSafety(build_chain("arm", cfg), env) if with_chain else None
    env.reset(seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        env.step(torch.rand((16, 7), generator=g) * 2 - 1)
        meter.update()
    env.close()
    return meter.result.per_1000(), sim


def test_chain_removes_the_random_policys_violations():
    without, _ = violations(False)
    with_chain, sim = violations(True)
    assert without["workspace"] > 5  # random commands carry the tool out of its box
    assert sum(with_chain.values()) == 0.0, with_chain
    stats = sim.chain.stats.scalars()
    assert stats["safety/rate_limiter/rate"] > 0.5  # the rate limiter did the work
    assert (
        stats["safety/chain/fail_closed_rate"] == 0.0
        if "safety/chain/fail_closed_rate" in stats
        else True
    )


def test_episode_resets_restart_the_chain_from_the_measured_pose():
    env = make("arm_push", 4, seed=0)
    sim = SimSafety(build_chain("arm", SafetyConfig.load("arm")), env)
    env.reset(seed=0)
    for _ in range(env.max_episode_steps + 2):  # through one auto-reset
        env.step(torch.zeros(4, 7))
    q, _ = env.command_joints
    # after the reset the command is next to the new pose, not the last episode's
    assert (torch.as_tensor(sim.chain.last_command) - q).abs().max() < 0.2
    env.close()

import math

import torch

import robot_rl.envs as E
from robot_rl.algos.rollout import rollout
from robot_rl.algos.stats import wilson_interval
from robot_rl.envs.experts import make_expert


def test_wilson_interval_hand_computed():
    # p = 0.5, n = 100, z = 1.96: centre 0.5, half = 1.96·sqrt(0.0025 + 0.000096)/1.038416 = 0.0962
    lo, hi = wilson_interval(50, 100)
    assert math.isclose(lo, 0.5 - 0.09617, abs_tol=1e-4) and math.isclose(
        hi, 0.5 + 0.09617, abs_tol=1e-4
    )
    lo, hi = wilson_interval(200, 200)
    assert hi == 1.0 and 0.98 < lo < 0.985  # 100% of 200 still leaves a lower bound below 1


def test_rollout_collects_exact_count_with_full_episodes():
    env = E.make("arm_reach", 8, seed=0)
    expert = make_expert("arm_reach", env, noise=0.1, seed=0)
    episodes = []
    stats = rollout(
        env,
        expert.act,
        21,
        seed=0,
        on_reset=expert.reset,
        on_episode=lambda i, frames, ep: episodes.append((frames, ep)),
    )
    assert stats.episodes == 21 == len(episodes)
    for frames, ep in episodes:
        T = ep["length"]
        assert frames["observation.state"].shape == (T, 40)
        assert frames["action"].shape == (T, 7)
        # done flags only at the end; success flagged on the last frame of successful episodes
        assert not frames["next.done"][:-1].any()
        assert bool(frames["next.success"][-1]) == ep["success"]
        # the first frame is a fresh reset: joints near home
        assert torch.allclose(
            frames["observation.state"][0, :6],
            torch.tensor(env.profile.limits("default")),
            atol=0.03,
        )
        # consecutive frames are consecutive in time (small joint motion per step)
        assert (
            frames["observation.state"][1:, :6] - frames["observation.state"][:-1, :6]
        ).abs().max() < 0.3


def test_rollout_keeps_first_started_episodes_not_first_finished():
    # Env 0 follows the expert (episodes of ~8 steps), env 1 idles until the 60-step time limit.
    # Keeping the first episodes to *finish* would return env 0's only; keeping the first to
    # *start* must include env 1's long episode.
    env = E.make("arm_reach", 2, seed=0)
    expert = make_expert("arm_reach", env, seed=0)

    def controller(obs):
        a = expert.act(obs)
        a[1] = 0.0
        return a

    seen = []
    stats = rollout(
        env,
        controller,
        4,
        seed=0,
        on_reset=expert.reset,
        on_episode=lambda i, f, ep: seen.append(i),
    )
    assert stats.episodes == 4
    assert seen.count(1) == 1 and seen.count(0) == 3
    assert max(stats.lengths) == env.max_episode_steps

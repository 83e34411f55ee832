"""Every registered task builds, resets and steps at 64 envs for 200 steps: declared shapes, no NaN,
successes detectable."""

import pytest
import torch

import robot_rl.envs as E
from robot_rl.envs.experts import EXPERTS, make_expert

# a shorter race, so laps end within the 200 steps; 2 s humanoid episodes with a zero command, so
# standing still (their stand-in for an expert) reaches success
OVERRIDES = {
    "rccar_race": {"laps": 0.25},
    "humanoid_balance": {"episode_length": 100},
    "humanoid_walk": {"episode_length": 100, "lin_vel_x": [0, 0], "lin_vel_y": [0, 0]},
}


@pytest.mark.parametrize("task", E.task_names())
def test_task_contract_64_envs_200_steps(task):
    env = E.make(task, 64, seed=0, **OVERRIDES.get(task, {}))
    obs = env.reset(seed=0)
    spec = env.observation_spec
    assert set(obs) == set(spec)
    for key, s in spec.items():
        assert obs[key].shape == (64, *s.shape), key
        assert obs[key].dtype == s.dtype, key
    # tasks without a scripted expert (the humanoids) hold the neutral action: zero
    expert = make_expert(task, env, noise=0.05, seed=0) if task in EXPERTS else None
    gen = torch.Generator().manual_seed(0)
    successes = dones = 0
    for _t in range(200):
        # Half the envs follow the expert (so successes happen), half act randomly.
        action = expert.act(obs) if expert else torch.zeros(64, env.action_dim)
        action[32:] = torch.rand((32, env.action_dim), generator=gen) * 2 - 1
        obs, reward, terminated, truncated, info = env.step(action)
        assert reward.shape == (64,) and reward.dtype == torch.float32
        assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
        assert not (terminated & truncated).any()
        for key, s in spec.items():
            assert obs[key].shape == (64, *s.shape)
        assert torch.isfinite(obs["state"]).all() and torch.isfinite(reward).all()
        for name, term in info["reward_terms"].items():
            assert term.shape == (64,) and torch.isfinite(term).all(), name
        done = terminated | truncated
        successes += int(info["success"][:32].sum())
        dones += int(done.sum())
        if done.any() and expert:
            expert.reset(done.nonzero().flatten())
    assert successes > 0, f"{task}: no success detected in 200 steps"
    assert dones > 0
    env.close()


def test_reward_is_weighted_sum_of_terms():
    env = E.make("arm_push", 8, seed=1)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(torch.zeros(8, 7))
    w = env.cfg.reward_weights
    expected = sum(w.get(k, 0.0) * v for k, v in info["reward_terms"].items())
    torch.testing.assert_close(reward, expected)


def test_success_terminates_and_reports_episode_stats():
    env = E.make("arm_reach", 16, seed=3)
    expert = make_expert("arm_reach", env)
    obs = env.reset(seed=3)
    for _ in range(env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated.any():
            i = int(terminated.nonzero()[0])
            assert info["episode"]["success"][i]
            assert 0 < int(info["episode"]["length"][i]) <= env.max_episode_steps
            # the env was reset: its step counter restarted
            assert int(env.episode_step[i]) == 0
            return
    pytest.fail("the reach expert never succeeded")


def test_truncation_at_time_limit_keeps_final_obs():
    env = E.make("arm_push", 4, seed=0, episode_length=5)
    obs = env.reset(seed=0)
    for _t in range(5):
        prev = obs
        obs, _, terminated, truncated, info = env.step(torch.zeros(4, 7))
    assert truncated.all() and not terminated.any()
    final = info["final_obs"]["state"]
    # The final observation continues the episode; the returned one starts a fresh one.
    assert torch.allclose(final[:, :6], prev["state"][:, :6], atol=0.05)
    assert not torch.allclose(final, obs["state"])
    assert (env.episode_step == 0).all()


def test_cube_off_table_terminates_as_failure():
    env = E.make("arm_push", 2, seed=0)
    env.reset(seed=0)
    a = env._cube_qadr
    env._qpos[0, a : a + 3] = torch.tensor([1.5, 0.0, 0.5], dtype=torch.float64)  # beyond the table
    env.backend.forward()
    terminated = torch.zeros(2, dtype=torch.bool)
    for _ in range(30):
        _, _, terminated, _, info = env.step(torch.zeros(2, 7))
        if terminated[0]:
            break
    assert terminated[0] and not info["success"][0]


def test_bad_actions_are_rejected_with_clear_errors():
    env = E.make("arm_reach", 4, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(4, 7\)"):
        env.step(torch.zeros(4, 6))
    bad = torch.zeros(4, 7)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN/Inf .* envs \[2\]"):
        env.step(bad)


def test_out_of_range_actions_are_clamped():
    a = E.make("arm_reach", 2, seed=5)
    b = E.make("arm_reach", 2, seed=5)
    a.reset(seed=5)
    b.reset(seed=5)
    oa, *_ = a.step(torch.full((2, 7), 7.0))
    ob, *_ = b.step(torch.ones(2, 7))
    torch.testing.assert_close(oa["state"], ob["state"])


def test_push_reports_how_close_the_cube_came_to_the_goal():
    env = E.make("arm_push", 6, seed=2)
    expert = make_expert("arm_push", env, noise=0.5, seed=2)  # some successes, some misses
    obs = env.reset(seed=2)
    expert.reset(torch.arange(6))
    xy = [env.state_names.index(f"cube_to_goal.{a}") for a in "xy"]
    closest = obs["state"][:, xy].norm(dim=-1)
    seen = 0
    for _ in range(3 * env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        reached = info["final_obs"]["state"][:, xy].norm(dim=-1)
        closest = torch.minimum(closest, reached)
        done = terminated | truncated
        got = info["episode"]["metrics"]["closest_goal_distance"]
        for i in done.nonzero().flatten().tolist():
            assert got[i].item() == pytest.approx(closest[i].item(), abs=1e-5)
            if info["episode"]["success"][i]:
                assert got[i] < env.cfg.success_threshold
            seen += 1
        if done.any():
            expert.reset(done.nonzero().flatten())
            closest = torch.where(done, obs["state"][:, xy].norm(dim=-1), closest)
    assert seen >= 6

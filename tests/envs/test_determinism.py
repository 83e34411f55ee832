import torch

import robot_rl.envs as E

DR = {
    "friction": [0.5, 1.5],
    "mass": [0.7, 1.3],
    "joint_damping": [0.5, 2.0],
    "actuator_gain": [0.8, 1.2],
    "obs_noise_std": 0.01,
    "action_delay": 2,
}


def _rollout(seed: int, steps: int = 60) -> torch.Tensor:
    env = E.make("arm_pick_place", 8, seed=seed, episode_length=20, randomization=DR)
    obs = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(123)
    states = [obs["state"]]
    for _ in range(steps):
        obs, *_ = env.step(torch.rand((8, 7), generator=gen) * 2 - 1)
        states.append(obs["state"])
    env.close()
    return torch.stack(states)


def test_same_seed_same_trajectories_across_resets():
    a, b = _rollout(7), _rollout(7)
    assert torch.equal(a, b)  # bit-identical, including 3 auto-resets with randomization


def test_different_seed_different_trajectories():
    assert not torch.allclose(_rollout(7), _rollout(8))


def test_unseeded_env_leaves_torch_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    E.make("arm_reach", 1)
    assert torch.equal(torch.rand(3), expected)


def test_running_envs_keep_their_noisy_observation_when_others_reset():
    env = E.make("arm_reach", 4, seed=0, episode_length=3, randomization={"obs_noise_std": 0.05})
    env.reset(seed=0)
    env.episode_step[2:] = -5  # envs 2, 3 run longer than 0, 1
    for _ in range(3):
        obs, _, _, truncated, info = env.step(torch.zeros(4, 7))
    assert truncated[:2].all() and not truncated[2:].any()
    assert torch.equal(obs["state"][2:], info["final_obs"]["state"][2:])
    assert not torch.equal(obs["state"][:2], info["final_obs"]["state"][:2])

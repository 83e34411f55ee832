import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import robot_rl.envs  # noqa: F401  (registers the gymnasium ids)


def test_registered_ids_pass_gymnasium_checker():
    for gid in ("robot_rl/ArmReach-v0", "robot_rl/ArmPush-v0", "robot_rl/ArmPickPlace-v0"):
        env = gym.make(gid)
        check_env(env.unwrapped, skip_render_check=True)
        env.close()


def test_episode_ends_and_sync_vector_env_runs():
    env = gym.make("robot_rl/ArmReach-v0", episode_length=5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (40,) and obs.dtype == np.float32
    for _t in range(5):
        obs, r, term, trunc, info = env.step(np.zeros(7, dtype=np.float32))
    assert trunc and not term
    assert "reward/reach" in info
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("robot_rl/ArmPush-v0") for _ in range(2)])
    obs, _ = vec.reset(seed=0)
    obs, r, term, trunc, _ = vec.step(vec.action_space.sample())
    assert obs.shape == (2, 40) and np.isfinite(r).all()
    vec.close()

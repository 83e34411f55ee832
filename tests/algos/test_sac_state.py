"""The SAC baseline's training state round-trips through safetensors + JSON (no pickle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.algos.sac_state import load_sac, save_sac
from robot_rl.core.errors import ConfigError

sb3 = pytest.importorskip("stable_baselines3")
gym = pytest.importorskip("gymnasium")


def _sac(seed: int):
    env = gym.make("Pendulum-v1")
    return sb3.SAC("MlpPolicy", env, seed=seed, learning_starts=50, batch_size=32,
                   policy_kwargs={"net_arch": [16, 16]}, device="cpu")  # fmt: skip


def _one_update(model) -> None:
    # SB3 samples its buffer from numpy's legacy global stream, the actor from torch's
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))  # (a model that has not run learn() has none)
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    model.train(gradient_steps=1, batch_size=32)


def test_a_saved_sac_continues_exactly_where_it_stopped(tmp_path):
    model = _sac(0)
    model.learn(total_timesteps=120)
    save_sac(tmp_path / "sac", model, {"curve": [[0, 0.0]]})

    fresh = _sac(1)
    assert load_sac(tmp_path / "sac", fresh) == {"curve": [[0, 0.0]]}
    assert fresh.num_timesteps == model.num_timesteps == 120
    assert fresh.replay_buffer.pos == model.replay_buffer.pos == 120
    np.testing.assert_array_equal(
        fresh.replay_buffer.observations[:120], model.replay_buffer.observations[:120]
    )
    _one_update(model)
    _one_update(fresh)  # same moments, temperature and data: the same step
    for p, q in zip(model.policy.parameters(), fresh.policy.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(model.log_ent_coef, fresh.log_ent_coef)
    fresh.learn(total_timesteps=20, reset_num_timesteps=False)  # and it trains on from there
    assert fresh.num_timesteps == 140


def test_missing_and_damaged_sac_state(tmp_path):
    assert load_sac(tmp_path / "none", _sac(0)) is None  # nothing saved yet: start over
    model = _sac(0)
    model.learn(total_timesteps=60)
    save_sac(tmp_path / "sac", model, {})
    (tmp_path / "sac" / "sac.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ConfigError, match="unreadable"):
        load_sac(tmp_path / "sac", _sac(0))
    save_sac(tmp_path / "sac", model, {})
    wide = sb3.SAC("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"net_arch": [8]})
    with pytest.raises(ConfigError, match="does not fit"):
        load_sac(tmp_path / "sac", wide)


def test_a_state_of_other_settings_is_refused_before_anything_loads(tmp_path):
    model = _sac(0)
    model.learn(total_timesteps=60)
    save_sac(tmp_path / "sac", model, {"seed": 0, "eval_episodes": 200, "curve": []})
    fresh = _sac(1)
    before = [p.clone() for p in fresh.policy.parameters()]
    with pytest.raises(ConfigError, match="the run had seed=0; a resumed run keeps its settings"):
        load_sac(tmp_path / "sac", fresh, {"seed": 1, "eval_episodes": 200})
    assert all(torch.equal(p, q) for p, q in zip(before, fresh.policy.parameters()))
    assert fresh.num_timesteps == 0
    # a state saved before a setting was recorded is not compared on it
    assert load_sac(tmp_path / "sac", fresh, {"seed": 0, "task": "arm_push"}) is not None

"""Receding-horizon execution: replanning every Ta steps per env, fresh windows after resets."""

from __future__ import annotations

import pytest
import torch

from robot_rl.algos.chunk_runner import ChunkRunner
from robot_rl.core.errors import ConfigError
from tests.policies.conftest import tiny_config


class EchoPolicy:
    """Records every window it is asked about and answers a chunk whose action k is
    ``(latest state[0] + k, previous state[0])`` so the test can see what was executed."""

    def __init__(self, **overrides) -> None:
        self.config = tiny_config(
            "diffusion", state_dim=1, action_dim=2, obs_horizon=2, **overrides
        )
        self.calls: list[torch.Tensor] = []

    def act(self, obs, *, generator=None, steps=None, noise_scale=1.0) -> torch.Tensor:
        window = obs["observation.state"]  # (B, To, 1)
        self.calls.append(window.clone())
        k = torch.arange(self.config.horizon, dtype=torch.float32)
        latest, previous = window[:, -1, 0:1], window[:, -2, 0:1]
        return torch.stack([latest + k, previous.expand(-1, len(k))], dim=-1)


def _obs(values) -> dict[str, torch.Tensor]:
    v = torch.as_tensor(values, dtype=torch.float32)
    return {"state": v[:, None], "instruction": torch.zeros(len(v), dtype=torch.long)}


def test_executes_ta_actions_of_each_chunk_then_replans():
    policy = EchoPolicy()  # horizon 8, action_steps 4
    runner = ChunkRunner(policy, 2)
    executed = [runner(_obs([10.0 * t, 100.0 + t])) for t in range(9)]
    # Replans at t = 0, 4, 8 (batch of both envs each time), never in between.
    assert [len(c) for c in policy.calls] == [2, 2, 2]
    # At t = 5 env 0 runs action 1 of the chunk planned at t = 4 from state 40: 40 + 1.
    assert executed[5][0, 0].item() == 41.0
    assert executed[7][1, 0].item() == 104.0 + 3
    # The window at t = 4 holds states of t = 3 and t = 4.
    assert policy.calls[1][0, :, 0].tolist() == [30.0, 40.0]


def test_first_window_of_an_episode_repeats_its_first_observation():
    policy = EchoPolicy()
    runner = ChunkRunner(policy, 1)
    action = runner(_obs([7.0]))
    assert policy.calls[0][0, :, 0].tolist() == [7.0, 7.0]
    assert action[0, 1].item() == 7.0


def test_reset_env_replans_at_once_with_a_fresh_window_others_continue():
    policy = EchoPolicy()
    runner = ChunkRunner(policy, 3)
    for t in range(2):
        runner(_obs([t, 10 + t, 20 + t]))
    runner.reset(torch.tensor([1]))
    action = runner(_obs([2.0, 500.0, 22.0]))
    last = policy.calls[-1]
    assert len(last) == 1  # only env 1 replanned
    assert last[0, :, 0].tolist() == [500.0, 500.0]  # no frame of its old episode
    assert action[1].tolist() == [500.0, 500.0]
    assert action[0, 0].item() == 0.0 + 2  # env 0: action 2 of its first chunk
    runner(_obs([3.0, 501.0, 23.0]))
    # env 0's next plan (t = 4) sees frames 3 and 4 of its own episode.
    runner(_obs([4.0, 502.0, 24.0]))
    assert policy.calls[-1][0, :, 0].tolist() == [3.0, 4.0]


def test_action_steps_override_and_validation():
    policy = EchoPolicy()
    runner = ChunkRunner(policy, 1, action_steps=1)
    for t in range(3):
        runner(_obs([t]))
    assert len(policy.calls) == 3
    with pytest.raises(ConfigError, match="action_steps must be in"):
        ChunkRunner(policy, 1, action_steps=9)


def test_policy_cameras_must_be_rendered_by_the_env():
    policy = EchoPolicy(cameras=("wrist",))
    with pytest.raises(ConfigError, match=r"reads cameras \['wrist'\].*task.image.enabled"):
        ChunkRunner(policy, 1, cameras=("front",))


def test_policy_reading_a_state_subset_gets_those_entries():
    policy = EchoPolicy(state_names=("b",))
    runner = ChunkRunner(policy, 1, state_names=("a", "b"))
    obs = {"state": torch.tensor([[1.0, 2.0]]), "instruction": torch.zeros(1, dtype=torch.long)}
    runner(obs)
    assert policy.calls[0][0, :, 0].tolist() == [2.0, 2.0]
    with pytest.raises(ConfigError, match="state entries"):
        ChunkRunner(policy, 1, state_names=("a", "c"))


def test_language_policy_gets_each_envs_instruction_tokens():
    policy = EchoPolicy(instructions=("push the cube", "reach the goal"))
    seen = []
    act = policy.act
    policy.act = lambda obs, **kw: seen.append(obs["instruction"].clone()) or act(obs, **kw)
    runner = ChunkRunner(policy, 2, instructions=["reach the goal", "push the cube"])
    obs = _obs([0.0, 1.0])
    obs["instruction"] = torch.tensor([0, 1])  # env 0 is told to reach, env 1 to push
    runner(obs)
    vocab = policy.config.text.vocab
    words = [[vocab[i] for i in row if i > 2] for row in seen[0].tolist()]
    assert words == [["reach", "the", "goal"], ["push", "the", "cube"]]
    with pytest.raises(ConfigError, match="instructions"):
        ChunkRunner(policy, 1)

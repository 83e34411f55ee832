"""n-step targets of the vectorized replay buffer, worked out by hand."""

from __future__ import annotations

import pytest
import torch

from robot_rl.data.replay import ReplayBuffer

GAMMA = 0.5


def filled(capacity: int = 8) -> ReplayBuffer:
    """3 envs, 5 steps, rewards 1..5 in every env, obs = 10·step + env.

    env 0 never finishes; env 1 terminates at step 1 (auto-reset: step 2 starts a new episode);
    env 2 is truncated at step 0 with final observation 100 (its next obs at that step).
    """
    buf = ReplayBuffer(capacity, 3, {"state": (1,)}, action_dim=1)
    for t in range(5):
        obs = torch.tensor([[10.0 * t + i] for i in range(3)])
        nxt = torch.tensor([[10.0 * (t + 1) + i] for i in range(3)])
        terminated = torch.tensor([False, t == 1, False])
        truncated = torch.tensor([False, False, t == 0])
        if t == 0:
            nxt[2] = 100.0  # the final observation, not the reset one
        buf.add(
            {"state": obs},
            torch.full((3, 1), float(t)),
            torch.full((3,), float(t + 1)),
            terminated,
            truncated,
            {"state": nxt},
            base_action=torch.full((3, 1), -float(t)),
            next_base_action=torch.full((3, 1), -float(t + 1)),
        )
    return buf


def at(buf: ReplayBuffer, step: int, env: int, n: int = 3) -> dict[str, float]:
    out = buf.gather(torch.tensor([step]), torch.tensor([env]), n, GAMMA)
    return {k: v[0].item() if v[0].numel() == 1 else v[0].tolist() for k, v in out.items()}


def test_full_window_without_episode_end():
    b = at(filled(), 0, 0)
    # 1 + 0.5·2 + 0.25·3 = 2.75, bootstrap from next_obs of step 2 with 0.5^3.
    assert b["reward"] == pytest.approx(2.75)
    assert b["discount"] == pytest.approx(0.125)
    assert b["steps"] == 3
    assert b["next_obs.state"] == 30.0
    assert b["obs.state"] == 0.0 and b["action"] == 0.0 and b["base_action"] == -0.0
    assert b["next_base_action"] == -3.0  # read at the bootstrap row, step 2


def test_termination_cuts_the_return_and_the_bootstrap():
    b = at(filled(), 0, 1)
    assert b["reward"] == pytest.approx(1 + 0.5 * 2)  # step 1's reward counts, step 2's not
    assert b["steps"] == 2
    assert b["discount"] == 0.0


def test_no_leak_across_auto_reset():
    b = at(filled(), 2, 1)  # the new episode of env 1
    assert b["reward"] == pytest.approx(3 + 0.5 * 4 + 0.25 * 5)
    assert b["obs.state"] == 21.0 and b["next_obs.state"] == 51.0
    # One step before the reset: its window stops at the termination.
    b = at(filled(), 1, 1)
    assert b["reward"] == pytest.approx(2.0) and b["discount"] == 0.0


def test_truncation_bootstraps_from_the_final_observation():
    b = at(filled(), 0, 2)
    assert b["reward"] == pytest.approx(1.0)
    assert b["steps"] == 1
    assert b["discount"] == pytest.approx(0.5)
    assert b["next_obs.state"] == 100.0


def test_window_stops_at_the_newest_row():
    b = at(filled(), 3, 0)
    assert b["reward"] == pytest.approx(4 + 0.5 * 5)
    assert b["steps"] == 2
    assert b["discount"] == pytest.approx(0.25)
    assert b["next_obs.state"] == 50.0


def test_ring_overwrites_the_oldest_rows():
    buf = filled(capacity=4)  # step 0 was overwritten by step 4
    assert len(buf) == 12
    b = at(buf, 0, 0)  # the oldest row held is step 1
    assert b["obs.state"] == 10.0
    assert b["reward"] == pytest.approx(2 + 0.5 * 3 + 0.25 * 4)


def test_one_step_targets_and_uniform_sampling():
    buf = filled()
    b = at(buf, 4, 0, n=1)
    assert b["reward"] == 5.0 and b["discount"] == pytest.approx(0.5)
    batch = buf.sample(4000, n_step=3, gamma=GAMMA, generator=torch.Generator().manual_seed(0))
    assert batch["reward"].shape == (4000,) and batch["obs.state"].shape == (4000, 1)
    envs = batch["obs.state"][:, 0].long() % 10
    counts = torch.bincount(envs, minlength=3).float() / 4000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.03)


def test_bad_shapes_and_empty_buffer():
    buf = ReplayBuffer(4, 2, {"state": (1,)}, action_dim=1)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    with pytest.raises(ValueError, match="reward must have shape"):
        buf.add(
            {"state": torch.zeros(2, 1)},
            torch.zeros(2, 1),
            torch.zeros(3),
            torch.zeros(2, dtype=torch.bool),
            torch.zeros(2, dtype=torch.bool),
            {"state": torch.zeros(2, 1)},
        )


def test_extend_equals_step_by_step_adds_including_wraparound():
    steps = filled(capacity=8)  # 5 adds
    t = 11  # more than the capacity: only the newest 4 rows survive after the 5 adds
    rng = torch.Generator().manual_seed(0)
    block = {
        "obs": {"state": torch.randn(t, 3, 1, generator=rng)},
        "action": torch.randn(t, 3, 1, generator=rng),
        "reward": torch.randn(t, 3, generator=rng),
        "terminated": torch.rand(t, 3, generator=rng) < 0.2,
        "truncated": torch.rand(t, 3, generator=rng) < 0.2,
        "next_obs": {"state": torch.randn(t, 3, 1, generator=rng)},
        "base_action": torch.randn(t, 3, 1, generator=rng),
        "next_base_action": torch.randn(t, 3, 1, generator=rng),
    }
    bulk = filled(capacity=8)
    bulk.extend(**block)
    for i in range(t):
        steps.add(
            **{
                k: ({"state": v["state"][i]} if isinstance(v, dict) else v[i])
                for k, v in block.items()
            }
        )
    assert (bulk.head, bulk.rows) == (steps.head, steps.rows) == ((5 + t) % 8, 8)
    for name in ("action", "reward", "terminated", "truncated"):
        assert torch.equal(getattr(bulk, name), getattr(steps, name)), name
    assert torch.equal(bulk.obs["state"], steps.obs["state"])
    assert torch.equal(bulk.extras["next_base_action"], steps.extras["next_base_action"])


def test_saved_state_restores_into_a_fresh_buffer_and_resumption_cuts_the_episodes():
    buf = filled(capacity=4)  # wrapped: head 1, rows 4
    again = ReplayBuffer(4, 3, {"state": (1,)}, action_dim=1)
    again.load_state_tensors(buf.state_tensors(), buf.head, buf.rows)
    assert (again.head, again.rows) == (buf.head, buf.rows) == (1, 4)
    for env in range(3):
        assert at(again, 0, env) == at(buf, 0, env)
    # A resumed run starts new episodes: the newest row (step 4) becomes a truncation. Adding a
    # step of a new episode must not extend step 3's window into it.
    again.cut_episodes()
    again.add(
        {"state": torch.full((3, 1), 500.0)},
        torch.zeros(3, 1),
        torch.full((3,), 100.0),
        torch.zeros(3, dtype=torch.bool),
        torch.zeros(3, dtype=torch.bool),
        {"state": torch.full((3, 1), 510.0)},
        base_action=torch.zeros(3, 1),
        next_base_action=torch.zeros(3, 1),
    )
    b = at(again, 1, 0)  # step 3 (the oldest row held is now step 2)
    assert b["reward"] == pytest.approx(4 + 0.5 * 5)  # the new episode's 100 does not count
    assert b["discount"] == pytest.approx(0.25)  # a truncation still bootstraps
    assert b["next_obs.state"] == 50.0  # from the next observation stored before the stop
    assert at(again, 2, 0)["reward"] == pytest.approx(5.0)  # step 4 alone, bootstrapped
    assert at(again, 2, 0)["discount"] == pytest.approx(0.5)
    assert not buf.truncated[0].any()  # a copy: the saved buffer's newest row is untouched


def test_a_half_filled_buffer_saves_its_written_rows_and_restores_them_to_grow_and_wrap():
    buf = filled()  # capacity 8, 5 rows: the ring has not wrapped
    state = buf.state_tensors()
    assert {tuple(v.shape[:2]) for v in state.values()} == {(5, 3)}
    again = ReplayBuffer(8, 3, {"state": (1,)}, action_dim=1)
    again.load_state_tensors(state, buf.head, buf.rows)
    assert again.extras["base_action"].shape == (8, 3, 1)  # room for the rows still to come
    for step in range(5):
        for env in range(3):
            assert at(again, step, env) == at(buf, step, env), (step, env)
    # checkpoints written before the rows-only format hold whole columns: read to rows
    legacy = ReplayBuffer(8, 3, {"state": (1,)}, action_dim=1)
    legacy.load_state_tensors(buf._columns(), buf.head, buf.rows)
    assert at(legacy, 3, 1) == at(buf, 3, 1)
    for t in range(5):  # both grow on and wrap as the original would
        step = ({"state": torch.full((3, 1), 60.0 + t)}, torch.zeros(3, 1), torch.ones(3))
        no = torch.zeros(3, dtype=torch.bool)
        extras = {"base_action": torch.zeros(3, 1), "next_base_action": torch.zeros(3, 1)}
        for b in (buf, again):
            b.add(step[0], step[1], step[2], no, no, step[0], **extras)
    assert (again.head, again.rows) == (buf.head, buf.rows) == (2, 8)
    for name, column in buf.state_tensors().items():
        assert torch.equal(again.state_tensors()[name], column), name


def test_a_mismatched_saved_state_is_refused_and_changes_nothing():
    buf = filled()
    state = buf.state_tensors()
    assert state["action"].shape == (5, 3, 1)  # the written rows only, not the capacity of 8
    small = ReplayBuffer(8, 3, {"state": (2,)}, action_dim=1)
    with pytest.raises(ValueError, match="replay column obs.state"):
        small.load_state_tensors(state, buf.head, buf.rows)
    assert small.rows == 0 and small.extras == {}
    with pytest.raises(ValueError, match="outside capacity"):
        ReplayBuffer(4, 3, {"state": (1,)}, action_dim=1).load_state_tensors(state, 1, 5)
    same = ReplayBuffer(8, 3, {"state": (1,)}, action_dim=1)
    with pytest.raises(ValueError, match="lacks"):
        same.load_state_tensors({k: v for k, v in state.items() if k != "reward"}, 5, 5)
    with pytest.raises(ValueError, match="outside capacity"):
        same.load_state_tensors(state, 9, 5)
    with pytest.raises(ValueError, match="must equal rows 5 until the ring wraps"):
        same.load_state_tensors(state, 3, 5)
    assert same.rows == 0 and not same.action.any()

"""Demonstrations for residual RL: dataset episodes as replay transitions, relabeled with the base.

RLPD samples half of every batch from demonstrations. For a residual learner a demonstration's
action is not enough: the actor and critic also take the action the frozen *base* would have
taken in that state, so every demonstration is replayed through the base (a receding-horizon
ChunkRunner over all episodes at once, one column per episode) and that action is stored next to
it (ResFiT relabels its demonstrations the same way).
"""

from __future__ import annotations

import numpy as np
import torch

from robot_rl.algos.chunk_runner import ChunkRunner
from robot_rl.algos.residual import Potential, ResidualConfig, shaped_reward
from robot_rl.core.errors import DatasetError
from robot_rl.data import LeRobotDataset
from robot_rl.data.replay import ReplayBuffer
from robot_rl.policies import Policy


def base_actions_on_episodes(
    policy: Policy,
    states: list[np.ndarray],
    tasks: list[int],
    instructions: list[str],
    state_names: list[str] | None = None,
    noise_scale: float = 1.0,
) -> list[torch.Tensor]:
    """The base's action at every frame of every episode, as it would run them: episodes are
    columns of one batch, stepped in time together. Returns ``(T_e, A)`` per episode."""
    n, horizon = len(states), max(len(s) for s in states)
    padded = np.stack([np.concatenate([s, np.repeat(s[-1:], horizon - len(s), 0)]) for s in states])
    runner = ChunkRunner(
        policy,
        n,
        instructions=instructions,
        state_names=state_names or (),
        noise_scale=noise_scale,
        generator=torch.Generator().manual_seed(0),
    )
    task = torch.tensor(tasks, dtype=torch.long)
    out = []
    for t in range(horizon):
        out.append(runner({"state": torch.from_numpy(padded[:, t]), "instruction": task}))
    actions = torch.stack(out, dim=1).clamp(-1.0, 1.0)  # (E, L, A)
    return [actions[e, : len(s)] for e, s in enumerate(states)]


def demo_buffer(
    ds: LeRobotDataset,
    policy: Policy,
    cfg: ResidualConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    noise_scale: float = 1.0,
) -> ReplayBuffer:
    """Every frame of ``ds`` as one transition in a single-column buffer (episodes one after
    the other; their last frames are done, so n-step windows stop there).

    Rewards as the learner's ``cfg`` (default :class:`ResidualConfig`) gives online
    transitions: ``reward="success"`` rewards the frame whose ``next.success`` is set, else
    ``next.reward``; ``cfg.shaping`` adds the potential-based term. ``noise_scale`` scales the
    base's sampling noise for the relabeled base actions.
    The dataset keeps no observation after an episode's last frame: that frame bootstraps from
    itself (irrelevant when the episode terminated, which successful demonstrations do). An
    episode whose last frame is done without ``next.success`` ended on its time limit and is
    stored as truncated, so its value bootstraps instead of counting as a dead end.
    """
    cfg = cfg or ResidualConfig()
    reward = cfg.reward
    feats = ds.features
    need = ["observation.state", "action", "next.done"]
    need.append("next.success" if reward == "success" else "next.reward")
    missing = [k for k in need if k not in feats]
    if missing:
        raise DatasetError(f"{ds.root} lacks {missing}, needed for demonstrations in residual RL")
    episodes = [ds.episode(i, decode_video=False) for i in range(ds.num_episodes)]
    if not episodes:
        raise DatasetError(f"{ds.root} has no episodes")
    states = [e["observation.state"].astype(np.float32) for e in episodes]
    base = base_actions_on_episodes(
        policy,
        states,
        [int(e["task_index"][0]) for e in episodes],
        ds.tasks,
        feats["observation.state"].names,
        noise_scale,
    )
    cols = {k: [] for k in ("s", "a", "r", "term", "trunc", "ns", "base", "next_base")}
    for e, s, b in zip(episodes, states, base):
        t = len(s)
        done = e["next.done"].reshape(t).astype(bool)
        r = e["next.success" if reward == "success" else "next.reward"].reshape(t)
        cols["s"].append(s)
        cols["a"].append(e["action"].astype(np.float32).clip(-1.0, 1.0))
        cols["r"].append(r.astype(np.float32))
        # A recorded episode ends in success (terminal: nothing to bootstrap) or on the time
        # limit (truncated: bootstrap). The dataset does not say which, but next.success does.
        success = e["next.success"].reshape(t).astype(bool) if "next.success" in feats else done
        last = np.arange(t) == t - 1
        cols["term"].append(done & success)
        cols["trunc"].append(last & ~(done & success))
        cols["ns"].append(np.concatenate([s[1:], s[-1:]]))
        cols["base"].append(b.numpy())
        cols["next_base"].append(np.concatenate([b.numpy()[1:], b.numpy()[-1:]]))
    cat = {k: torch.from_numpy(np.concatenate(v))[:, None].to(device) for k, v in cols.items()}
    if cfg.shaping:
        potential = Potential(cfg.shaping, feats["observation.state"].names or [])
        cat["r"] = shaped_reward(cat["r"], cat["s"], cat["ns"], potential, cfg)
    total = cat["s"].shape[0]
    buffer = ReplayBuffer(
        total, 1, {"state": (cat["s"].shape[-1],)}, cat["a"].shape[-1], device=device
    )
    buffer.extend(
        {"state": cat["s"]},
        cat["a"],
        cat["r"],
        cat["term"],
        cat["trunc"],
        {"state": cat["ns"]},
        base_action=cat["base"],
        next_base_action=cat["next_base"],
    )
    return buffer
